#!/usr/bin/env python3
"""Builds tiny random sentence-transformers folders with reference outputs.

Run by hand (never by CI): it needs torch, transformers and
sentence-transformers from PyPI; the tests only read what it writes.

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install torch transformers sentence-transformers
    /tmp/fx/bin/python scripts/make-fixtures.py

Each fixture is a BERT encoder with a small vocabulary (the first 3000
WordPiece entries of tests/fixtures/tiny-cross-encoder's tokenizer; other
words become [UNK] on both sides) followed by a Pooling mode and Dense
layers, initialised with a wide spread so that wrong pooling, a skipped
Dense layer or a wrong activation cannot pass. `reference.json` holds
sentence-transformers' outputs: `normalized` (the whole stack) and
`unnormalized` (everything before the final Normalize).
"""

import json
import pathlib
import shutil

import torch
from sentence_transformers import SentenceTransformer, models
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
VOCAB = 3000
TEXTS = [
    "hello world",
    "a",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "向量检索 and reranking for RAG",
    " ".join(["longer than the window"] * 20),
]

# name -> (pooling mode, [(out_features, activation, bias)])
FIXTURES_TO_MAKE = {
    "tiny-st-max-dense": ("max", [(16, torch.nn.Tanh(), True)]),
    "tiny-st-weightedmean-dense": (
        "weightedmean",
        [(24, torch.nn.Identity(), False), (12, torch.nn.ReLU(), True)],
    ),
    "tiny-st-mean-sqrt-len": ("mean_sqrt_len_tokens", []),
}


def small_tokenizer(out: pathlib.Path) -> None:
    spec = json.loads((FIXTURES / "tiny-cross-encoder" / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    spec["model"]["vocab"] = {t: i for t, i in vocab.items() if i < VOCAB}
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
    )
    tok.save_pretrained(out)


def make(name: str, mode: str, dense: list) -> None:
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    small_tokenizer(out)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.3,
    )
    BertModel(config).eval().save_pretrained(out, safe_serialization=True)

    word = models.Transformer(str(out), max_seq_length=32)
    stack = [word, models.Pooling(32, pooling_mode=mode)]
    width = 32
    for out_features, activation, bias in dense:
        layer = models.Dense(width, out_features, bias=bias, activation_function=activation)
        with torch.no_grad():
            layer.linear.weight.normal_(0.0, 0.5)
            if bias:
                layer.linear.bias.normal_(0.0, 0.5)
        stack.append(layer)
        width = out_features
    stack.append(models.Normalize())
    st = SentenceTransformer(modules=stack, device="cpu")
    st.save(str(out))
    (out / "README.md").unlink(missing_ok=True)  # a generated model card, not needed

    normalized = st.encode(TEXTS, convert_to_numpy=True, batch_size=len(TEXTS))
    before_norm = SentenceTransformer(modules=stack[:-1], device="cpu")
    unnormalized = before_norm.encode(TEXTS, convert_to_numpy=True, batch_size=len(TEXTS))
    reference = {
        "texts": TEXTS,
        "pooling": mode,
        "dimensions": width,
        "max_seq_length": 32,
        "normalized": normalized.tolist(),
        "unnormalized": unnormalized.tolist(),
    }
    (out / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: {width} dims, pooling {mode}")


def pytorch_bin_copy(source: str, name: str) -> None:
    """The same folder with PyTorch .bin weights only (older models ship so)."""
    from safetensors.torch import load_file

    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(FIXTURES / source, out)
    for st in sorted(out.rglob("model.safetensors")):
        torch.save(load_file(st), st.with_name("pytorch_model.bin"))
        st.unlink()
    print(f"{name}: {source} with pytorch_model.bin weights")


PROMPT_TEXTS = [
    "Hello World",
    "A",
    "The Quick Brown Fox jumps over the LAZY dog.",
    "向量检索 and Reranking for RAG",
    " ".join(["Longer than the window"] * 20),
]


def prompts_fixture(name: str) -> None:
    """Prompts, `include_prompt: false` and a legacy `do_lower_case`.

    The tokenizer is made cased (its BertNormalizer no longer lowercases, so
    the uncased vocabulary turns capitalised words into [UNK]); the folder's
    sentence_bert_config.json is the older form with `do_lower_case: true`,
    which sentence-transformers applies by lowercasing before tokenizing.
    Mean pooling leaves the prompt tokens out (`include_prompt: false`).
    """
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    small_tokenizer(out)
    spec = json.loads((out / "tokenizer.json").read_text())
    spec["normalizer"]["lowercase"] = False
    spec["normalizer"]["strip_accents"] = False
    cased = json.dumps(spec, ensure_ascii=False)
    (out / "tokenizer.json").write_text(cased)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.3,
    )
    BertModel(config).eval().save_pretrained(out, safe_serialization=True)
    word = models.Transformer(str(out), max_seq_length=32)
    pooling = models.Pooling(32, pooling_mode="mean", include_prompt=False)
    prompts = {"query": "query: ", "passage": "Passage: "}
    st = SentenceTransformer(
        modules=[word, pooling], device="cpu", prompts=prompts, default_prompt_name="query"
    )
    st.save(str(out))
    (out / "README.md").unlink(missing_ok=True)
    # The older file form, and the cased tokenizer (save wrote its own).
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 32, "do_lower_case": True}, indent=2)
    )
    (out / "tokenizer.json").write_text(cased)

    st = SentenceTransformer(str(out), device="cpu")
    assert st.default_prompt_name == "query", st.default_prompt_name
    assert not st[1].include_prompt
    enc = lambda **kw: st.encode(
        PROMPT_TEXTS, convert_to_numpy=True, batch_size=len(PROMPT_TEXTS), **kw
    ).tolist()
    lower = st.encode(["hello world"], prompt="query: ", convert_to_numpy=True)[0]
    upper = st.encode(["HELLO World"], prompt="QUERY: ", convert_to_numpy=True)[0]
    assert abs(lower - upper).max() < 1e-6, "do_lower_case is applied"
    reference = {
        "texts": PROMPT_TEXTS,
        "pooling": "mean",
        "dimensions": 32,
        "max_seq_length": 32,
        "prompts": prompts,
        "default_prompt_name": "query",
        # Unnormalized (the folder has no Normalize module).
        "default": enc(),
        "passage": enc(prompt_name="passage"),
        "custom": enc(prompt="Represent this: "),
        "no_prompt": enc(prompt=""),
    }
    (out / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: prompts {prompts}, include_prompt false, do_lower_case")


if __name__ == "__main__":
    for name, (mode, dense) in FIXTURES_TO_MAKE.items():
        make(name, mode, dense)
    pytorch_bin_copy("tiny-st-max-dense", "tiny-st-bin-weights")
    prompts_fixture("tiny-st-prompts")
