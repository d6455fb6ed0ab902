//! sentence-transformers' module stack (`modules.json`), read exactly: the
//! Pooling mode, `Dense` layers with their activation and a `Normalize` in
//! the middle of the stack are applied as sentence-transformers applies
//! them; a module or option infermon does not implement is a load error that
//! names the file and key, never a silent fallback to something else.
//! The same holds for the text options around the modules: prompts
//! (`config_sentence_transformers.json`), `do_lower_case`
//! (`sentence_bert_config.json`) and the Pooling module's `include_prompt`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::pooling::{Pooling, normalize};
use super::tokenize::TextOptions;
use super::{Backend, Encoded, InferenceError};

/// Why a module could not be read: the file and the reason.
pub type ModuleError = (PathBuf, String);

/// What follows the transformer in a sentence-transformers folder.
#[derive(Debug, Default)]
pub struct SentenceModules {
    /// The Pooling module's mode; `None` when the folder declares none.
    pub pooling: Option<Pooling>,
    /// Steps after pooling, in order (a trailing Normalize is left to the
    /// request's `normalize` flag, as TEI does).
    pub after_pooling: Vec<PostStep>,
    /// Prompts, lowercasing and whether prompts are pooled.
    pub text: TextOptions,
}

/// One step applied to the pooled vector.
#[derive(Debug)]
pub enum PostStep {
    /// `sentence_transformers.models.Dense`.
    Dense(DenseLayer),
    /// `sentence_transformers.models.Normalize` followed by more modules.
    Normalize,
}

/// The activations sentence-transformers' Dense accepts that infermon implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseActivation {
    /// `torch.nn.modules.linear.Identity`.
    Identity,
    /// `torch.nn.modules.activation.Tanh` (sentence-transformers' default).
    Tanh,
    /// `torch.nn.modules.activation.ReLU`.
    Relu,
    /// `torch.nn.modules.activation.GELU` (erf form).
    Gelu,
    /// `torch.nn.modules.activation.Sigmoid`.
    Sigmoid,
}

impl DenseActivation {
    fn parse(name: &str) -> Option<DenseActivation> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short {
            "Identity" => Some(DenseActivation::Identity),
            "Tanh" => Some(DenseActivation::Tanh),
            "ReLU" => Some(DenseActivation::Relu),
            "GELU" => Some(DenseActivation::Gelu),
            "Sigmoid" => Some(DenseActivation::Sigmoid),
            _ => None,
        }
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            DenseActivation::Identity => x,
            DenseActivation::Tanh => x.tanh(),
            DenseActivation::Relu => x.max(0.0),
            DenseActivation::Gelu => {
                let x = x as f64;
                (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
            }
            DenseActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

/// The error function by Abramowitz–Stegun 7.1.26: its error (< 1.5e-7)
/// is below the f32 resolution of the activations it feeds.
fn erf(x: f64) -> f64 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

/// A Dense layer: `activation(weight · x + bias)`.
#[derive(Debug)]
pub struct DenseLayer {
    in_features: usize,
    out_features: usize,
    /// Row-major `[out_features, in_features]`.
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: DenseActivation,
}

impl DenseLayer {
    /// Loads a Dense module folder: `config.json` plus `model.safetensors`
    /// or `pytorch_model.bin` (read by candle's pickle reader, which runs no
    /// pickle code).
    pub fn load(dir: &Path) -> Result<DenseLayer, ModuleError> {
        let config_path = dir.join("config.json");
        let err = |path: &Path, m: String| (path.to_path_buf(), m);
        let config = read_json(&config_path)?;
        let usize_key = |key: &str| {
            config
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| err(&config_path, format!("{key} is missing or not a number")))
        };
        let (in_features, out_features) = (usize_key("in_features")?, usize_key("out_features")?);
        let has_bias = config
            .get("bias")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let activation = match config.get("activation_function") {
            None => DenseActivation::Tanh,
            Some(v) => {
                let name = v.as_str().unwrap_or_default();
                DenseActivation::parse(name).ok_or_else(|| {
                    err(
                        &config_path,
                        format!(
                            "activation_function {name:?} is not supported (Identity, Tanh, ReLU, GELU, Sigmoid)"
                        ),
                    )
                })?
            }
        };
        // The same weight files, in the same order of preference, as the model's own.
        let vb = super::loader::weights(dir, DType::F32, &Device::Cpu)?;
        let tensor = |key: &str, shape: &[usize]| -> Result<Vec<f32>, ModuleError> {
            vb.get(shape, key)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| {
                    err(
                        dir,
                        format!("{key} (config.json says shape {shape:?}): {e}"),
                    )
                })
        };
        let weight = tensor("linear.weight", &[out_features, in_features])?;
        let bias = if has_bias {
            Some(tensor("linear.bias", &[out_features])?)
        } else {
            None
        };
        Ok(DenseLayer {
            in_features,
            out_features,
            weight,
            bias,
            activation,
        })
    }

    /// Width of the vectors it takes.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Width of the vectors it gives.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Applies the layer to one vector of `in_features` components.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.in_features)
            .enumerate()
            .map(|(o, row)| {
                let dot: f32 = row.iter().zip(x).map(|(w, v)| w * v).sum();
                let b = self.bias.as_ref().map_or(0.0, |b| b[o]);
                self.activation.apply(dot + b)
            })
            .collect()
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, ModuleError> {
    let text = std::fs::read_to_string(path).map_err(|e| (path.to_path_buf(), e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| (path.to_path_buf(), format!("not JSON: {e}")))
}

/// The module types infermon implements, by their last path segment.
const SUPPORTED: &str = "Transformer, Pooling, Dense, Normalize";

impl SentenceModules {
    /// Reads `modules.json` under `dir`; a folder without one is read the
    /// way older sentence-transformers folders are (`1_Pooling/` if present).
    /// The text options come from the files beside it.
    pub fn read(dir: &Path) -> Result<SentenceModules, ModuleError> {
        let mut out = Self::read_modules(dir)?;
        let (prompts, default_prompt_name) = read_prompts(dir)?;
        out.text.prompts = prompts;
        out.text.default_prompt_name = default_prompt_name;
        out.text.lowercase = read_do_lower_case(dir)?;
        Ok(out)
    }

    fn read_modules(dir: &Path) -> Result<SentenceModules, ModuleError> {
        let modules_path = dir.join("modules.json");
        if !modules_path.is_file() {
            let pooling_config = dir.join("1_Pooling/config.json");
            let mut out = SentenceModules::default();
            if pooling_config.is_file() {
                out.read_pooling(&pooling_config)?;
            }
            return Ok(out);
        }
        let list = read_json(&modules_path)?;
        let entries = list
            .as_array()
            .ok_or_else(|| (modules_path.clone(), "is not a list of modules".to_string()))?;
        let mut out = SentenceModules::default();
        let mut saw_transformer = false;
        for (i, entry) in entries.iter().enumerate() {
            let field = |key: &str| entry.get(key).and_then(serde_json::Value::as_str);
            let kind = field("type").unwrap_or_default();
            let path = dir.join(field("path").unwrap_or_default());
            let bad = |m: String| (modules_path.clone(), format!("module {i} ({kind}): {m}"));
            match kind.rsplit('.').next().unwrap_or_default() {
                "Transformer" if i == 0 => saw_transformer = true,
                "Pooling" if saw_transformer && out.pooling.is_none() => {
                    out.read_pooling(&path.join("config.json"))?;
                }
                "Dense" if out.pooling.is_some() => {
                    let layer = DenseLayer::load(&path)?;
                    out.after_pooling.push(PostStep::Dense(layer));
                }
                "Normalize" if out.pooling.is_some() => out.after_pooling.push(PostStep::Normalize),
                "Transformer" | "Pooling" | "Dense" | "Normalize" => {
                    return Err(bad(
                        "is out of the order infermon serves (Transformer first, then Pooling, then Dense/Normalize)"
                            .into(),
                    ));
                }
                _ => {
                    return Err(bad(format!(
                        "type {kind:?} is not supported (supported: {SUPPORTED})"
                    )));
                }
            }
        }
        // A Normalize at the end is the request's `normalize` flag.
        if matches!(out.after_pooling.last(), Some(PostStep::Normalize)) {
            out.after_pooling.pop();
        }
        Ok(out)
    }

    /// Reads a Pooling module's `config.json`: its mode and `include_prompt`.
    fn read_pooling(&mut self, config: &Path) -> Result<(), ModuleError> {
        let value = read_json(config)?;
        check_keys(config, &value, |key| {
            key == "embedding_dimension"
                || key == "word_embedding_dimension"
                || key == "include_prompt"
                || key.starts_with("pooling_mode")
        })?;
        self.pooling = Some(
            Pooling::from_sentence_transformers(config).map_err(|m| (config.to_path_buf(), m))?,
        );
        self.text.exclude_prompt_from_pooling = match value.get("include_prompt") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => !b,
            Some(other) => {
                return Err((
                    config.to_path_buf(),
                    format!("include_prompt is {other}, not true or false"),
                ));
            }
        };
        Ok(())
    }

    /// Checks that the Dense layers chain from the pooled width `width`;
    /// returns the width of the final vectors.
    pub fn output_width(&self, width: usize) -> Result<usize, String> {
        let mut width = width;
        for step in &self.after_pooling {
            if let PostStep::Dense(d) = step {
                if d.in_features() != width {
                    return Err(format!(
                        "a Dense layer takes {} features but receives {width}",
                        d.in_features()
                    ));
                }
                width = d.out_features();
            }
        }
        Ok(width)
    }
}

/// Refuses keys of a JSON object that `known` does not accept, naming the
/// file and key: an option infermon would otherwise ignore silently.
fn check_keys(
    path: &Path,
    value: &serde_json::Value,
    known: impl Fn(&str) -> bool,
) -> Result<(), ModuleError> {
    let Some(object) = value.as_object() else {
        return Err((path.to_path_buf(), "is not a JSON object".to_string()));
    };
    match object.keys().find(|k| !known(k)) {
        Some(key) => Err((
            path.to_path_buf(),
            format!("key {key:?} is not supported by infermon (it would change the outputs)"),
        )),
        None => Ok(()),
    }
}

/// `prompts` and `default_prompt_name` of `config_sentence_transformers.json`;
/// other keys that change what `encode` returns are refused.
fn read_prompts(
    dir: &Path,
) -> Result<(std::collections::BTreeMap<String, String>, Option<String>), ModuleError> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(Default::default());
    }
    let value = read_json(&path)?;
    let bad = |m: String| (path.clone(), m);
    match value.get("model_type").and_then(|t| t.as_str()) {
        None | Some("SentenceTransformer") => {}
        // A cross-encoder's options belong to the reranking path.
        Some("CrossEncoder") => return Ok(Default::default()),
        Some(other) => {
            return Err(bad(format!(
                "model_type {other:?} is not supported (infermon serves SentenceTransformer embedders and cross-encoders)"
            )));
        }
    }
    check_keys(&path, &value, |key| {
        matches!(
            key,
            "__version__" | "prompts" | "default_prompt_name" | "similarity_fn_name" | "model_type"
        ) || (key == "truncate_dim" && value[key].is_null())
    })?;
    let mut prompts = std::collections::BTreeMap::new();
    match value.get("prompts") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (name, text) in map {
                let text = text
                    .as_str()
                    .ok_or_else(|| bad(format!("prompts.{name} is not a string")))?;
                prompts.insert(name.clone(), text.to_string());
            }
        }
        Some(_) => return Err(bad("prompts is not an object of name: text".to_string())),
    }
    let default = match value.get("default_prompt_name") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) if prompts.contains_key(name) => Some(name.clone()),
        Some(other) => {
            return Err(bad(format!(
                "default_prompt_name {other} is not one of the prompts ({})",
                prompts.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    Ok((prompts, default))
}

/// `do_lower_case` of `sentence_bert_config.json`, refusing the keys that
/// would make its Transformer module do something else than infermon does.
fn read_do_lower_case(dir: &Path) -> Result<bool, ModuleError> {
    let path = dir.join("sentence_bert_config.json");
    if !path.is_file() {
        return Ok(false);
    }
    let value = read_json(&path)?;
    let bad = |key: &str| {
        Err((
            path.clone(),
            format!(
                "key {key:?} = {} is not supported by infermon (it would change the outputs)",
                value[key]
            ),
        ))
    };
    let Some(object) = value.as_object() else {
        return Err((path.clone(), "is not a JSON object".to_string()));
    };
    for (key, v) in object {
        let fine = match key.as_str() {
            // max_seq_length is read by the loader; unpad_inputs is speed only.
            "max_seq_length" | "do_lower_case" | "unpad_inputs" => true,
            "transformer_task" => v == "feature-extraction",
            "module_output_name" => v == "token_embeddings",
            "modality_config" => {
                v.as_object().is_some_and(|m| m.len() == 1)
                    && v["text"]["method_output_name"] == "last_hidden_state"
            }
            "processing_kwargs" => v.as_object().is_some_and(|m| m.is_empty()) || v.is_null(),
            "query_length" | "document_length" | "query_expansion" => v.is_null(),
            _ => false,
        };
        if !fine {
            return bad(key);
        }
    }
    match value.get("do_lower_case") {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(_) => bad("do_lower_case"),
    }
}

/// A backend whose pooled vectors go through the steps after pooling.
pub struct WithPostSteps {
    inner: Box<dyn Backend>,
    steps: Vec<PostStep>,
}

impl WithPostSteps {
    /// Wraps `inner` (which pools) with `steps`; returns `inner` as it is
    /// when there are none.
    pub fn wrap(inner: Box<dyn Backend>, steps: Vec<PostStep>) -> Box<dyn Backend> {
        if steps.is_empty() {
            inner
        } else {
            Box::new(WithPostSteps { inner, steps })
        }
    }
}

impl Backend for WithPostSteps {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let mut out = self.inner.forward(batch)?;
        for v in &mut out {
            for step in &self.steps {
                match step {
                    PostStep::Dense(d) => *v = d.apply(v),
                    PostStep::Normalize => normalize(v),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Tensor;

    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn dense_folder(dir: &Path, activation: &str) {
        write(
            dir,
            "2_Dense/config.json",
            &format!(
                r#"{{"in_features": 2, "out_features": 3, "bias": true, "activation_function": "{activation}"}}"#
            ),
        );
        let weight = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, -1.0]], &Device::Cpu).unwrap();
        let bias = Tensor::new(&[0.5f32, 0.0, 0.0], &Device::Cpu).unwrap();
        candle_core::safetensors::save(
            &HashMap::from([
                ("linear.weight".to_string(), weight),
                ("linear.bias".to_string(), bias),
            ]),
            dir.join("2_Dense/model.safetensors"),
        )
        .unwrap();
    }

    const STACK: &str = r#"[
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]"#;

    #[test]
    fn reads_pooling_dense_and_a_trailing_normalize() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "modules.json", STACK);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_max_tokens": true}"#,
        );
        dense_folder(dir.path(), "torch.nn.modules.activation.Tanh");
        let m = SentenceModules::read(dir.path()).unwrap();
        assert_eq!(m.pooling, Some(Pooling::Max));
        assert_eq!(
            m.after_pooling.len(),
            1,
            "the trailing Normalize is the request's"
        );
        assert_eq!(m.output_width(2), Ok(3));
        assert!(m.output_width(4).unwrap_err().contains("takes 2 features"));
        let PostStep::Dense(d) = &m.after_pooling[0] else {
            panic!("a Dense step")
        };
        let y = d.apply(&[1.0, 2.0]);
        let want = [1.5f32.tanh(), 2f32.tanh(), (-1f32).tanh()];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn unknown_modules_and_options_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            &STACK.replace("models.Normalize", "models.LayerNorm"),
        );
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_tokens": true}"#,
        );
        dense_folder(dir.path(), "torch.nn.modules.activation.Tanh");
        let (file, msg) = SentenceModules::read(dir.path()).unwrap_err();
        assert!(
            file.ends_with("modules.json") && msg.contains("LayerNorm"),
            "{msg}"
        );

        write(dir.path(), "modules.json", STACK);
        dense_folder(dir.path(), "torch.nn.modules.activation.Softsign");
        let (file, msg) = SentenceModules::read(dir.path()).unwrap_err();
        assert!(file.ends_with("2_Dense/config.json"), "{}", file.display());
        assert!(
            msg.contains("activation_function") && msg.contains("Softsign"),
            "{msg}"
        );

        dense_folder(dir.path(), "torch.nn.modules.linear.Identity");
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#,
        );
        let (file, msg) = SentenceModules::read(dir.path()).unwrap_err();
        assert!(
            file.ends_with("1_Pooling/config.json") && msg.contains("concatenated"),
            "{msg}"
        );
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x})");
        }
    }
}
