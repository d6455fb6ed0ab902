#!/usr/bin/env python3
"""Writes one small random sentence-transformers model per architecture
family that transformers implements, for the speed rows of bench/README.md
(bench/families/run.sh times infermon and sentence-transformers on them).

    PYTHON bench/families/make_models.py [--minilm models/all-MiniLM-L6-v2] [--out bench/.families] [FAMILY ...]

PYTHON needs torch, transformers and sentence-transformers (bench/setup.sh's
venv has them). Every model is about MiniLM-L6's size and shape: hidden 384,
6 layers, and MLP weights of MiniLM's size (1536 wide; 1024 for the gated
MLPs, which have three matrices instead of two), so the families' rows can
be compared with MiniLM's and with each other. Every model uses
all-MiniLM-L6-v2's WordPiece tokenizer (30522 entries, which is most of
each model's parameters, as in MiniLM), so bench/texts.txt is 29 tokens per
text for all of them. The sentence-transformers modules are those of the
family's fixture in scripts/make-fixtures.py (its Pooling mode, Dense
layers, then Normalize); sizes, windows and head layout follow the family's
best-known embedding model, scaled down (see FAMILIES).

Weights are random (seeded per family, so a rerun writes the same files):
speed does not depend on their values. They are drawn with a spread that
keeps activations in range and 1-D parameters (norm scales, biases) moved off
their neutral init, so the outputs differ from text to text and
bench/families/check.py's comparison with sentence-transformers means
something.

NomicBERT and Alibaba GTE are not here: their references need the authors'
modeling code (trust_remote_code), which transformers does not ship.
"""

import argparse
import json
import pathlib
import shutil
import zlib

import torch
from sentence_transformers import SentenceTransformer, models
from transformers import PreTrainedTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
HIDDEN = 384
LAYERS = 6
MAX_SEQ = 256
# About twice 1/sqrt(hidden): wide enough that the random encoders' mean-pooled
# vectors differ from text to text (at 0.02, the usual init, they agree to
# 0.999), small enough that activations stay in range.
INIT = 0.1


def families() -> dict:
    """family -> (config, model class, pooling mode, Dense widths, what it is scaled from)."""
    import transformers as tf

    vocab = 30522  # all-MiniLM-L6-v2's tokenizer
    common = dict(vocab_size=vocab, initializer_range=INIT, pad_token_id=0)
    bert_like = dict(
        common,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    decoder = dict(
        common,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        intermediate_size=1024,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
    )
    return {
        "bert": (
            tf.BertConfig(**bert_like, max_position_embeddings=512),
            tf.BertModel,
            "mean",
            [],
            "all-MiniLM-L6-v2 (same shape)",
        ),
        # XLM-RoBERTa numbers positions from padding_idx + 1 (hence 514).
        "xlm-roberta": (
            tf.XLMRobertaConfig(**bert_like, max_position_embeddings=514, type_vocab_size=1),
            tf.XLMRobertaModel,
            "mean",
            [],
            "multilingual-e5-small",
        ),
        "distilbert": (
            tf.DistilBertConfig(
                vocab_size=vocab,
                dim=HIDDEN,
                n_layers=LAYERS,
                n_heads=12,
                hidden_dim=1536,
                max_position_embeddings=512,
                initializer_range=INIT,
                pad_token_id=0,
            ),
            tf.DistilBertModel,
            "mean",
            [],
            "multi-qa-distilbert-cos-v1",
        ),
        "mpnet": (
            tf.MPNetConfig(**bert_like, max_position_embeddings=514, relative_attention_num_buckets=32),
            tf.MPNetModel,
            "mean",
            [],
            "all-mpnet-base-v2",
        ),
        # gte-modernbert-base: 64-wide heads, a 128-token local window,
        # every third layer global.
        "modernbert": (
            tf.ModernBertConfig(
                **dict(common, bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102),
                hidden_size=HIDDEN,
                num_hidden_layers=LAYERS,
                num_attention_heads=6,
                intermediate_size=1024,
                max_position_embeddings=8192,
                local_attention=128,
                global_attn_every_n_layers=3,
                global_rope_theta=160000.0,
                local_rope_theta=10000.0,
            ),
            tf.ModernBertModel,
            "mean",
            [],
            "gte-modernbert-base",
        ),
        # EmbeddingGemma: 3 query heads of 256 (here 128) and 1 key/value
        # head, five sliding (512-token) layers to one global, mean pooling
        # and two Dense layers out to 4x the width and back, no bias.
        "gemma3": (
            tf.Gemma3TextConfig(
                **dict(decoder, max_position_embeddings=2048),
                num_attention_heads=3,
                num_key_value_heads=1,
                head_dim=128,
                sliding_window=512,
                layer_types=["sliding_attention"] * 5 + ["full_attention"],
                use_bidirectional_attention=True,
                query_pre_attn_scalar=128,
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                hidden_activation="gelu_pytorch_tanh",
            ),
            tf.Gemma3TextModel,
            "mean",
            [4 * HIDDEN, HIDDEN],
            "embeddinggemma-300m",
        ),
        # gte-Qwen2: 128-wide heads (here 64), 6 query heads to 2 key/value
        # heads, q/k/v biases, last-token pooling.
        "qwen2": (
            tf.Qwen2Config(
                **decoder,
                num_attention_heads=6,
                num_key_value_heads=2,
                rope_theta=1000000.0,
                use_sliding_window=False,
            ),
            tf.Qwen2Model,
            "lasttoken",
            [],
            "gte-Qwen2-1.5B-instruct",
        ),
        # e5-mistral / SFR-Embedding-Mistral: 4096-token sliding window,
        # grouped key/values, no biases, last-token pooling.
        "mistral": (
            tf.MistralConfig(
                **decoder,
                num_attention_heads=6,
                num_key_value_heads=2,
                rope_theta=10000.0,
                sliding_window=4096,
            ),
            tf.MistralModel,
            "lasttoken",
            [],
            "e5-mistral-7b-instruct",
        ),
    }


def write_tokenizer(minilm: pathlib.Path, out: pathlib.Path) -> None:
    """all-MiniLM-L6-v2's tokenizer without its fixed 128-token padding
    (sentence-transformers and infermon pad per batch anyway)."""
    spec = json.loads((minilm / "tokenizer.json").read_text())
    spec["truncation"] = None
    spec["padding"] = None
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=True,
        model_max_length=512,
    )
    tok.save_pretrained(out)


def make(name: str, spec: tuple, minilm: pathlib.Path, root: pathlib.Path) -> dict:
    config, model_cls, mode, dense, scaled_from = spec
    torch.manual_seed(zlib.crc32(name.encode()))
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_tokenizer(minilm, out)
    model = model_cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(out, safe_serialization=True)

    word = models.Transformer(str(out), max_seq_length=MAX_SEQ)
    width = word.get_word_embedding_dimension()
    stack = [word, models.Pooling(width, pooling_mode=mode)]
    for out_features in dense:
        layer = models.Dense(width, out_features, bias=False, activation_function=torch.nn.Identity())
        with torch.no_grad():
            layer.linear.weight.normal_(0.0, INIT)
        stack.append(layer)
        width = out_features
    stack.append(models.Normalize())
    st = SentenceTransformer(modules=stack, device="cpu")
    st.save(str(out))
    (out / "README.md").unlink(missing_ok=True)  # a generated model card
    params = sum(p.numel() for p in st.parameters())
    info = {
        "family": name,
        "architecture": model.config.architectures[0],
        "scaled_from": scaled_from,
        "pooling": mode,
        "dimensions": width,
        "params": params,
    }
    print(json.dumps(info), flush=True)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minilm", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--out", default=str(ROOT / "bench" / ".families"))
    parser.add_argument("family", nargs="*", help="only these (default: all)")
    args = parser.parse_args()
    minilm = pathlib.Path(args.minilm)
    if not (minilm / "tokenizer.json").is_file():
        raise SystemExit(f"{minilm}/tokenizer.json is missing: run `make model` first")
    specs = families()
    unknown = [f for f in args.family if f not in specs]
    if unknown:
        raise SystemExit(f"unknown families {unknown}; known: {list(specs)}")
    root = pathlib.Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name in args.family or specs:
        make(name, specs[name], minilm, root)


if __name__ == "__main__":
    main()
