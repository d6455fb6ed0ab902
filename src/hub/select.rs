//! Which files of a model repository infermon needs: its config, tokenizer
//! and sentence-transformers files, and one copy of the weights per folder
//! (safetensors over PyTorch `.bin`); never the ONNX, OpenVINO, TensorFlow,
//! Flax or GGUF copies many repositories also carry.

use std::collections::BTreeMap;

use super::Sibling;

/// Files read from the model folder's root when present.
const ROOT_FILES: [&str; 14] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// A repository path that is a plain relative path (no `..`, no hidden or
/// absolute parts), so it cannot write outside the model folder.
fn safe(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'))
}

/// sentence-transformers module folders: `1_Pooling`, `2_Dense`, …
fn is_module_folder(name: &str) -> bool {
    name.split_once('_').is_some_and(|(n, rest)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
    })
}

/// The weight files of one folder's `names`, in infermon's order of
/// preference: `model.safetensors`, sharded safetensors, `pytorch_model.bin`,
/// sharded `.bin`.
fn weights<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let has = |n: &str| names.contains(&n);
    let shards = |prefix: &str, suffix: &str| -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .collect()
    };
    if has("model.safetensors") {
        vec!["model.safetensors"]
    } else if has("model.safetensors.index.json") {
        let mut v = shards("model-", ".safetensors");
        v.push("model.safetensors.index.json");
        v
    } else if has("pytorch_model.bin") {
        vec!["pytorch_model.bin"]
    } else if has("pytorch_model.bin.index.json") {
        let mut v = shards("pytorch_model-", ".bin");
        v.push("pytorch_model.bin.index.json");
        v
    } else {
        Vec::new()
    }
}

/// The files of `siblings` a model needs, in the listing's order.
pub fn needed_files(siblings: &[Sibling]) -> Vec<Sibling> {
    // Files by folder ("" is the root); only the root and module folders count.
    let mut folders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in siblings.iter().filter(|s| safe(&s.rfilename)) {
        let (folder, name) = s.rfilename.rsplit_once('/').unwrap_or(("", &s.rfilename));
        if folder.is_empty() || is_module_folder(folder) {
            folders.entry(folder).or_default().push(name);
        }
    }
    let mut keep: Vec<String> = Vec::new();
    for (folder, names) in &folders {
        let join = |n: &str| {
            if folder.is_empty() {
                n.to_string()
            } else {
                format!("{folder}/{n}")
            }
        };
        let extra: Vec<&str> = if folder.is_empty() {
            ROOT_FILES.to_vec()
        } else {
            vec!["config.json"]
        };
        for n in names {
            if extra.contains(n) {
                keep.push(join(n));
            }
        }
        keep.extend(weights(names).into_iter().map(join));
    }
    siblings
        .iter()
        .filter(|s| keep.contains(&s.rfilename))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[&str]) -> Vec<String> {
        let siblings: Vec<Sibling> = files
            .iter()
            .map(|f| Sibling {
                rfilename: f.to_string(),
                size: None,
                lfs: None,
                blob_id: None,
            })
            .collect();
        needed_files(&siblings)
            .into_iter()
            .map(|s| s.rfilename)
            .collect()
    }

    #[test]
    fn keeps_config_tokenizer_modules_and_one_copy_of_the_weights() {
        let got = names(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "tf_model.h5",
            "flax_model.msgpack",
            "rust_model.ot",
            "onnx/model.onnx",
            "onnx/config.json",
            "openvino/openvino_model.xml",
            "tokenizer.json",
            "vocab.txt",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
            "2_Dense/config.json",
            "2_Dense/pytorch_model.bin",
            "2_Dense/model.safetensors",
            "../evil/config.json",
            "a/../config.json",
        ]);
        assert_eq!(
            got,
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "vocab.txt",
                "modules.json",
                "sentence_bert_config.json",
                "1_Pooling/config.json",
                "2_Dense/config.json",
                "2_Dense/model.safetensors",
            ]
        );
    }

    #[test]
    fn sharded_and_pickled_weights_when_there_is_nothing_better() {
        let got = names(&[
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model.bin.index.json",
        ]);
        assert_eq!(
            got,
            [
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
            ]
        );
        assert_eq!(
            names(&["config.json", "pytorch_model.bin", "model.onnx"]),
            ["config.json", "pytorch_model.bin"]
        );
    }
}
