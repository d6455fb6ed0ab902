//! Reading a Hugging Face model directory: config.json decides the
//! architecture and task, safetensors give the weights, tokenizer.json and
//! the sentence-transformers files give tokenization and pooling.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::models::bert::{self, BertConfig};
use super::models::distilbert;
use super::models::gemma3::Gemma3;
use super::models::gte::{self, Gte};
use super::models::jina_bert::JinaBert;
use super::models::modernbert::ModernBertEmbedder;
use super::models::mpnet::MpNet;
use super::models::nomic_bert::NomicBert;
use super::models::qwen2::{Decoder, Flavour};
use super::models::qwen3::{self, Qwen3};
use super::models::xlm_roberta;
use super::pooling::Pooling;
use super::sentence_modules::{SentenceModules, WithPostSteps};
use super::tokenize::{TextOptions, TextTokenizer};
use super::{Backend, InferenceError, Task};
use crate::config::ModelConfig;

/// How a request's text becomes model input.
#[derive(Clone, Debug)]
pub enum InputFormat {
    /// One text per input (embedders).
    Single,
    /// `[CLS] query [SEP] document [SEP]` (cross-encoders).
    Pair,
    /// Qwen3-Reranker's chat prompt around instruction, query and document.
    Qwen3Rerank {
        /// Tokens of the system prompt.
        prefix: Vec<u32>,
        /// Tokens of the assistant turn.
        suffix: Vec<u32>,
        /// The instruction when the request gives none.
        instruction: String,
    },
}

/// A model ready to be put behind a queue.
pub struct LoadedParts {
    /// The weights and forward pass.
    pub backend: Box<dyn Backend>,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// config.json's architecture.
    pub architecture: String,
    /// What it does.
    pub task: Task,
    /// How inputs are built.
    pub format: InputFormat,
    /// Pooling of an embedder.
    pub pooling: Option<Pooling>,
    /// Width of an embedder's vectors (after its Dense layers).
    pub dimensions: Option<usize>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
}

/// The name a model is known by: `name:`, else the directory's name.
pub fn model_name(cfg: &ModelConfig) -> String {
    cfg.name.clone().unwrap_or_else(|| {
        Path::new(&cfg.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| cfg.path.clone())
    })
}

/// Loads the model `cfg` describes; relative paths are resolved against `base_dir`.
pub fn load(cfg: &ModelConfig, base_dir: &Path) -> Result<LoadedParts, InferenceError> {
    let name = model_name(cfg);
    let dir = base_dir.join(&cfg.path);
    if !dir.is_dir() {
        return Err(InferenceError::ModelDirMissing { name, path: dir });
    }
    let bad = |message: String| InferenceError::BadModelConfig {
        name: name.clone(),
        message,
    };
    let file_err = |path: &Path, reason: String| InferenceError::ModelFile {
        name: name.clone(),
        path: path.to_path_buf(),
        reason,
    };

    let config_path = dir.join("config.json");
    let config_text =
        std::fs::read_to_string(&config_path).map_err(|e| file_err(&config_path, e.to_string()))?;
    let config: serde_json::Value =
        serde_json::from_str(&config_text).map_err(|e| file_err(&config_path, e.to_string()))?;
    let architecture = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .or_else(|| {
            config
                .get("model_type")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<none in config.json>".to_string());

    let device_name = cfg.device.trim().to_string();
    let device = open_device(&name, &device_name)?;
    let dtype_name = cfg
        .dtype
        .clone()
        .unwrap_or_else(|| if device.is_cpu() { "f32" } else { "f16" }.to_string());
    let dtype = match dtype_name.as_str() {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => return Err(bad(format!("dtype {other:?} is not f32, f16 or bf16"))),
    };
    let wanted_task = match cfg.task.as_deref() {
        None => None,
        Some("embed") => Some(Task::Embed),
        Some("rerank") => Some(Task::Rerank),
        Some(other) => return Err(bad(format!("task {other:?} is not embed or rerank"))),
    };
    let mut modules =
        SentenceModules::read(&dir).map_err(|(path, reason)| file_err(&path, reason))?;
    let pooling = match cfg.pooling.as_deref() {
        Some(p) => Some(Pooling::parse(p).ok_or_else(|| {
            bad(format!(
                "pooling {p:?} is not mean, cls, last_token, max, mean_sqrt_len_tokens or weightedmean"
            ))
        })?),
        None => modules.pooling,
    };

    let unsupported = || InferenceError::UnsupportedArchitecture {
        name: name.clone(),
        architecture: architecture.clone(),
        path: config_path.clone(),
        supported: supported_architectures().join(", "),
    };
    let family = family_of(&architecture).ok_or_else(unsupported)?;
    let is_classifier = architecture.ends_with("ForSequenceClassification");
    let task = match (family, wanted_task) {
        (_, Some(t)) => t,
        (Family::Qwen3, None) if architecture == "Qwen3ForCausalLM" && pooling.is_none() => {
            Task::Rerank
        }
        (_, None) if is_classifier => Task::Rerank,
        _ => Task::Embed,
    };
    if task == Task::Rerank && family != Family::Qwen3 && !is_classifier {
        return Err(bad(format!(
            "task: rerank needs a *ForSequenceClassification model; {architecture} has no classifier"
        )));
    }
    if task == Task::Rerank && family == Family::Qwen3 && architecture != "Qwen3ForCausalLM" {
        return Err(bad(
            "Qwen3 reranking needs Qwen3ForCausalLM (Qwen3-Reranker)".to_string(),
        ));
    }

    let vb = weights(&dir, dtype, &device).map_err(|(path, reason)| file_err(&path, reason))?;
    let sentence_max = sentence_max_seq_length(&dir);

    // Encoders other than BERT/XLM-R have no historical default: a folder
    // without a Pooling module must say how to pool.
    let explicit_pooling = || {
        pooling.ok_or_else(|| {
            bad(format!(
                "{architecture} needs a pooling mode: add a sentence-transformers 1_Pooling module or set models[].pooling"
            ))
        })
    };
    let last_token_only = || match pooling {
        None | Some(Pooling::LastToken) => Ok(Pooling::LastToken),
        Some(p) => Err(bad(format!(
            "{architecture} embeddings use last_token pooling, not {}",
            p.as_str()
        ))),
    };
    let hidden_key = match family {
        Family::DistilBert => "dim",
        Family::NomicBert => "n_embd",
        _ => "hidden_size",
    };
    let (backend, positions, format, pooling): (
        Box<dyn Backend>,
        usize,
        InputFormat,
        Option<Pooling>,
    ) = match family {
        Family::DistilBert => {
            let c: distilbert::DistilBertConfig = serde_json::from_str(&config_text)
                .map_err(|e| file_err(&config_path, e.to_string()))?;
            let pool = explicit_pooling()?;
            let m = distilbert::load(vb, &c, pool, cfg.candle_only).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::MpNet => {
            let pool = explicit_pooling()?;
            let m = MpNet::load(vb, &config_text, pool).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::ModernBert if task == Task::Rerank => {
            let m = ModernBertEmbedder::load(vb, &config_text, None).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Pair, None)
        }
        Family::ModernBert => {
            let pool = explicit_pooling()?;
            let m = ModernBertEmbedder::load(vb, &config_text, Some(pool)).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::Gte => {
            if architecture == "GteModel" && !gte::has_authors_layout(&vb) {
                return Err(bad(
                    "GteModel weights are not in Alibaba-NLP/new-impl's layout (encoder.layer.N.attention.qkv_proj); transformers' own GTE layout is not supported".to_string(),
                ));
            }
            if task == Task::Rerank {
                let m = Gte::load(vb, &config_text, None).map_err(bad)?;
                let n = m.max_positions();
                (Box::new(m), n, InputFormat::Pair, None)
            } else {
                let pool = explicit_pooling()?;
                let m = Gte::load(vb, &config_text, Some(pool)).map_err(bad)?;
                let n = m.max_positions();
                (Box::new(m), n, InputFormat::Single, Some(pool))
            }
        }
        Family::NomicBert => {
            let pool = explicit_pooling()?;
            let m = NomicBert::load(vb, &config_text, pool).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::JinaBert => {
            let pool = explicit_pooling()?;
            let m = JinaBert::load(vb, &config_text, pool).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::Gemma3 => {
            let pool = explicit_pooling()?;
            let m = Gemma3::load(vb, &config_text, pool).map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::Qwen2 | Family::Mistral => {
            let pool = last_token_only()?;
            let flavour = if family == Family::Qwen2 {
                Flavour::Qwen2
            } else {
                Flavour::Mistral
            };
            let m = Decoder::load(vb, &config_text, flavour).map_err(bad)?;
            let n = m.max_positions().min(8192);
            (Box::new(m), n, InputFormat::Single, Some(pool))
        }
        Family::Bert | Family::XlmRoberta => {
            let bert_cfg: BertConfig = serde_json::from_str(&config_text)
                .map_err(|e| file_err(&config_path, e.to_string()))?;
            let pool = (task == Task::Embed).then(|| pooling.unwrap_or(Pooling::Cls));
            let format = if task == Task::Embed {
                InputFormat::Single
            } else {
                InputFormat::Pair
            };
            let m = if family == Family::Bert {
                bert::load(vb, &bert_cfg, pool, cfg.candle_only)
            } else {
                xlm_roberta::load(vb, &bert_cfg, pool, cfg.candle_only)
            }
            .map_err(bad)?;
            let n = m.max_positions();
            (Box::new(m), n, format, pool)
        }
        Family::Qwen3 => {
            let q_cfg: candle_transformers::models::qwen3::Config =
                serde_json::from_str(&config_text)
                    .map_err(|e| file_err(&config_path, e.to_string()))?;
            let positions = q_cfg.max_position_embeddings.min(8192);
            if task == Task::Rerank {
                let tok = TextTokenizer::load(&dir, positions, TextOptions::default())
                    .map_err(|(path, reason)| file_err(&path, reason))?;
                let id = |t: &str| {
                    tok.plain()
                        .token_to_id(t)
                        .ok_or_else(|| bad(format!("tokenizer has no {t:?} token for reranking")))
                };
                let (yes, no) = (id("yes")?, id("no")?);
                let m = Qwen3::load(vb, &q_cfg, Some((yes, no))).map_err(bad)?;
                let format = InputFormat::Qwen3Rerank {
                    prefix: tok.ids(qwen3::RERANK_PREFIX)?,
                    suffix: tok.ids(qwen3::RERANK_SUFFIX)?,
                    instruction: cfg
                        .instruction
                        .clone()
                        .unwrap_or_else(|| qwen3::DEFAULT_INSTRUCTION.to_string()),
                };
                (Box::new(m), positions, format, None)
            } else {
                let m = Qwen3::load(vb, &q_cfg, None).map_err(bad)?;
                (
                    Box::new(m),
                    positions,
                    InputFormat::Single,
                    Some(Pooling::LastToken),
                )
            }
        }
    };
    if pooling.is_some_and(|p| p != Pooling::LastToken) && family == Family::Qwen3 {
        return Err(bad("Qwen3 embeddings use last_token pooling".to_string()));
    }
    // Dense/Normalize modules after pooling, checked against the pooled width.
    let (backend, dimensions) = if task == Task::Embed {
        let width = config
            .get(hidden_key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_default() as usize;
        let dimensions = modules
            .output_width(width)
            .map_err(|m| file_err(&dir.join("modules.json"), m))?;
        let steps = std::mem::take(&mut modules.after_pooling);
        (WithPostSteps::wrap(backend, steps), Some(dimensions))
    } else {
        (backend, None)
    };

    let default_max = sentence_max.unwrap_or(positions).min(positions);
    let max_input_length = match cfg.max_input_length {
        Some(n) if n > positions => {
            return Err(bad(format!(
                "max_input_length {n} is more than the model's {positions} positions"
            )));
        }
        Some(n) => n,
        None => default_max,
    };
    let tokenizer = TextTokenizer::load(&dir, max_input_length, modules.text)
        .map_err(|(path, reason)| file_err(&path, reason))?;
    Ok(LoadedParts {
        backend,
        tokenizer,
        architecture,
        task,
        format,
        pooling,
        dimensions,
        device: device_name,
        dtype: dtype_name,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Bert,
    XlmRoberta,
    Qwen3,
    DistilBert,
    MpNet,
    Qwen2,
    Mistral,
    ModernBert,
    Gemma3,
    NomicBert,
    Gte,
    JinaBert,
}

/// The `architectures` entries (and bare `model_type`s) infermon runs,
/// each with the code that runs it.
const ARCHITECTURES: &[(&str, Family)] = &[
    ("BertModel", Family::Bert),
    ("BertForMaskedLM", Family::Bert),
    ("BertForSequenceClassification", Family::Bert),
    ("bert", Family::Bert),
    ("XLMRobertaModel", Family::XlmRoberta),
    ("XLMRobertaForMaskedLM", Family::XlmRoberta),
    ("XLMRobertaForSequenceClassification", Family::XlmRoberta),
    ("xlm-roberta", Family::XlmRoberta),
    // RoBERTa and CamemBERT share XLM-RoBERTa's layout and position ids.
    ("RobertaModel", Family::XlmRoberta),
    ("RobertaForMaskedLM", Family::XlmRoberta),
    ("RobertaForSequenceClassification", Family::XlmRoberta),
    ("roberta", Family::XlmRoberta),
    ("CamembertModel", Family::XlmRoberta),
    ("CamembertForMaskedLM", Family::XlmRoberta),
    ("CamembertForSequenceClassification", Family::XlmRoberta),
    ("camembert", Family::XlmRoberta),
    ("DistilBertModel", Family::DistilBert),
    ("DistilBertForMaskedLM", Family::DistilBert),
    ("distilbert", Family::DistilBert),
    ("MPNetModel", Family::MpNet),
    ("MPNetForMaskedLM", Family::MpNet),
    ("mpnet", Family::MpNet),
    ("ModernBertModel", Family::ModernBert),
    ("ModernBertForMaskedLM", Family::ModernBert),
    ("ModernBertForSequenceClassification", Family::ModernBert),
    ("modernbert", Family::ModernBert),
    ("NomicBertModel", Family::NomicBert),
    ("nomic_bert", Family::NomicBert),
    // Alibaba's GTE from the hub's Alibaba-NLP/new-impl code.
    ("NewModel", Family::Gte),
    ("NewForTokenClassification", Family::Gte),
    ("NewForSequenceClassification", Family::Gte),
    ("GteModel", Family::Gte),
    ("new", Family::Gte),
    // jina-embeddings-v2 from the hub's jinaai/jina-bert-implementation code
    // (model_type "bert": only the class name tells it apart).
    ("JinaBertModel", Family::JinaBert),
    ("JinaBertForMaskedLM", Family::JinaBert),
    ("Gemma3TextModel", Family::Gemma3),
    ("gemma3_text", Family::Gemma3),
    ("Qwen2Model", Family::Qwen2),
    ("Qwen2ForCausalLM", Family::Qwen2),
    ("qwen2", Family::Qwen2),
    ("MistralModel", Family::Mistral),
    ("MistralForCausalLM", Family::Mistral),
    ("mistral", Family::Mistral),
    ("Qwen3Model", Family::Qwen3),
    ("Qwen3ForCausalLM", Family::Qwen3),
    ("qwen3", Family::Qwen3),
];

/// The `architectures` names infermon runs (the class names, without the
/// bare `model_type` fallbacks), for error messages and docs.
pub fn supported_architectures() -> Vec<&'static str> {
    ARCHITECTURES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| name.chars().any(|c| c.is_ascii_uppercase()))
        .collect()
}

fn family_of(architecture: &str) -> Option<Family> {
    ARCHITECTURES
        .iter()
        .find(|(name, _)| *name == architecture)
        .map(|(_, f)| *f)
}

/// Opens `cpu` or `cuda[:N]`; CUDA needs a build with the `cuda` feature.
fn open_device(name: &str, spec: &str) -> Result<Device, InferenceError> {
    let err = |reason: String| InferenceError::Device {
        name: name.to_string(),
        device: spec.to_string(),
        reason,
    };
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(rest) = spec.strip_prefix("cuda") else {
        return Err(err("devices are `cpu` or `cuda:N`".to_string()));
    };
    let index: usize = match rest.strip_prefix(':') {
        None if rest.is_empty() => 0,
        Some(n) => n
            .parse()
            .map_err(|_| err(format!("{n:?} is not a GPU number")))?,
        None => return Err(err("devices are `cpu` or `cuda:N`".to_string())),
    };
    if cfg!(feature = "cuda") {
        Device::new_cuda(index).map_err(|e| {
            err(format!(
                "cannot open GPU {index} (is an NVIDIA driver installed and the GPU visible?): {e}"
            ))
        })
    } else {
        Err(err(
            "this infermon was built without the `cuda` feature; rebuild with `cargo build --release --features cuda` or use `device: cpu`"
                .to_string(),
        ))
    }
}

/// The weights of the model folder `dir`: `model.safetensors` (single or
/// sharded), else PyTorch `pytorch_model.bin` (single or sharded).
pub(super) fn weights(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, (PathBuf, String)> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let bin = dir.join("pytorch_model.bin");
    let bin_index = dir.join("pytorch_model.bin.index.json");
    let (files, pickled) = if single.is_file() {
        (vec![single], false)
    } else if index.is_file() {
        (shards(dir, &index)?, false)
    } else if bin.is_file() {
        (vec![bin], true)
    } else if bin_index.is_file() {
        (shards(dir, &bin_index)?, true)
    } else {
        return Err((single, "missing: infermon reads safetensors weights (model.safetensors or model.safetensors.index.json) or PyTorch ones (pytorch_model.bin or pytorch_model.bin.index.json)".to_string()));
    };
    for f in &files {
        if !f.is_file() {
            return Err((f.clone(), "missing".to_string()));
        }
    }
    if pickled {
        // candle's pickle reader understands tensors only and runs no
        // pickle code, so a .bin cannot execute anything.
        let mut tensors = std::collections::HashMap::new();
        for f in &files {
            let read = candle_core::pickle::read_all(f).map_err(|e| (f.clone(), e.to_string()))?;
            if read.is_empty() {
                return Err((f.clone(), "holds no tensors".to_string()));
            }
            tensors.extend(read);
        }
        tracing::info!(file = %files[0].display(), "reading PyTorch .bin weights (no safetensors in the folder)");
        return Ok(VarBuilder::from_tensors(tensors, dtype, device));
    }
    // SAFETY: the files are memory-mapped read-only; infermon never writes
    // them, and a model directory changing under a running server is outside
    // what any model server can guard against.
    unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device) }
        .map_err(|e| (files[0].clone(), e.to_string()))
}

/// The shard files a `*.index.json` weight map names.
fn shards(dir: &Path, index: &Path) -> Result<Vec<PathBuf>, (PathBuf, String)> {
    let text = std::fs::read_to_string(index).map_err(|e| (index.to_path_buf(), e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| (index.to_path_buf(), e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| (index.to_path_buf(), "no weight_map".to_string()))?;
    let mut shards: Vec<PathBuf> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| {
            // Shards sit beside the index; a path elsewhere is refused.
            if Path::new(f).components().count() == 1 {
                Ok(dir.join(f))
            } else {
                Err((
                    index.to_path_buf(),
                    format!("shard {f:?} is not a file name in the folder"),
                ))
            }
        })
        .collect::<Result<_, _>>()?;
    shards.sort();
    shards.dedup();
    Ok(shards)
}

/// The length sentence-transformers truncates at: `max_seq_length` in
/// `sentence_bert_config.json`, or (sentence-transformers 6 writes it there
/// instead) `model_max_length` in `tokenizer_config.json` of a folder that
/// has a `sentence_bert_config.json`. Values above a million are
/// transformers' "no limit" marker and are ignored.
fn sentence_max_seq_length(dir: &Path) -> Option<usize> {
    let read = |file: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).ok()?).ok()
    };
    let st = read("sentence_bert_config.json")?;
    let sane = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_u64)
            .filter(|n| *n > 0 && *n < 1_000_000)
            .map(|n| n as usize)
    };
    sane(st.get("max_seq_length"))
        .or_else(|| sane(read("tokenizer_config.json")?.get("model_max_length")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_list_names_every_family_once_per_class() {
        let listed = supported_architectures();
        for (name, family) in ARCHITECTURES {
            assert!(
                listed.iter().any(|n| family_of(n) == Some(*family)),
                "{name}: its family has no class name in the list"
            );
        }
        for name in [
            "RobertaModel",
            "CamembertModel",
            "DistilBertModel",
            "MPNetModel",
        ] {
            assert!(listed.contains(&name), "{name}");
        }
        for name in [
            "Gemma3TextModel",
            "ModernBertForSequenceClassification",
            "MistralModel",
        ] {
            assert!(listed.contains(&name), "{name}");
        }
        assert!(
            !listed.contains(&"bert"),
            "model_type fallbacks are not listed"
        );
        for name in ["NomicBertModel", "NewModel", "NewForSequenceClassification"] {
            assert!(family_of(name).is_some(), "{name}");
            assert!(listed.contains(&name), "{name}");
        }
        for name in ["JinaBertModel", "JinaBertForMaskedLM"] {
            assert_eq!(family_of(name), Some(Family::JinaBert), "{name}");
            assert!(listed.contains(&name), "{name}");
        }
    }
}
