#!/usr/bin/env python3
"""Builds tiny random sentence-transformers folders with reference outputs.

Run by hand (never by CI): it needs torch, transformers and
sentence-transformers from PyPI; the tests only read what it writes.

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install torch transformers sentence-transformers
    /tmp/fx/bin/python scripts/make-fixtures.py                  # every fixture
    /tmp/fx/bin/python scripts/make-fixtures.py tiny-arch-mpnet  # only the ones named
    # with the hub's remote code (see REMOTE; needs `pip install einops`):
    /tmp/fx/bin/python scripts/make-fixtures.py tiny-arch-nomic-bert tiny-arch-gte tiny-arch-gte-reranker \
        --nomic-code ~/nomic-bert-2048 --gte-code ~/new-impl

Each fixture is a BERT encoder with a small vocabulary (the first 3000
WordPiece entries of tests/fixtures/tiny-cross-encoder's tokenizer; other
words become [UNK] on both sides) followed by a Pooling mode and Dense
layers, initialised with a wide spread so that wrong pooling, a skipped
Dense layer or a wrong activation cannot pass. `reference.json` holds
sentence-transformers' outputs: `normalized` (the whole stack) and
`unnormalized` (everything before the final Normalize).

The `tiny-arch-*` fixtures are one tiny model per architecture family
(`arch_configs`), with the same vocabulary and reference format, on texts
that include Chinese, a single character and inputs cut at max_seq_length
(longer than the local attention windows).
"""

import json
import math
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


ARCH_TEXTS = TEXTS + [
    "短",
    "混合 mixed 中文 text with numbers 12345 and punctuation!?",
    " ".join(["a much longer input that runs past every local attention window"] * 6),
]


def widen(model: torch.nn.Module) -> None:
    """Moves every 1-D parameter (norm scales, biases) off its neutral init
    (ones or zeros), so a swapped norm formula or a dropped bias shows."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)


def arch_configs() -> dict:
    """name -> (config, model class, pooling mode, dense layers, max_seq_length)."""
    import transformers as tf

    common = dict(vocab_size=VOCAB, initializer_range=0.3, pad_token_id=0)
    bert_like = dict(
        common,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    decoder = dict(
        common,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
    )
    return {
        # RoBERTa numbers positions from padding_idx + 1.
        "tiny-arch-roberta": (
            tf.RobertaConfig(**bert_like, max_position_embeddings=66, type_vocab_size=1),
            tf.RobertaModel,
            "mean",
            [],
            48,
        ),
        "tiny-arch-camembert": (
            tf.CamembertConfig(**bert_like, max_position_embeddings=66, type_vocab_size=1),
            tf.CamembertModel,
            "cls",
            [],
            48,
        ),
        "tiny-arch-distilbert": (
            tf.DistilBertConfig(
                vocab_size=VOCAB,
                dim=32,
                n_layers=2,
                n_heads=4,
                hidden_dim=64,
                max_position_embeddings=64,
                initializer_range=0.3,
                pad_token_id=0,
            ),
            tf.DistilBertModel,
            "mean",
            [],
            48,
        ),
        # Inputs up to 48 tokens reach MPNet's log-spaced relative buckets.
        "tiny-arch-mpnet": (
            tf.MPNetConfig(**bert_like, max_position_embeddings=66, relative_attention_num_buckets=32),
            tf.MPNetModel,
            "mean",
            [],
            48,
        ),
        "tiny-arch-qwen2": (
            tf.Qwen2Config(**decoder, rope_theta=10000.0, use_sliding_window=False),
            tf.Qwen2Model,
            "lasttoken",
            [],
            48,
        ),
        # A 16-token sliding window that the long input runs past.
        "tiny-arch-mistral": (
            tf.MistralConfig(**decoder, rope_theta=10000.0, sliding_window=16),
            tf.MistralModel,
            "lasttoken",
            [],
            48,
        ),
        # Layers 0 and 3 global, 1 and 2 local with an 8-token window (±4).
        "tiny-arch-modernbert": (
            tf.ModernBertConfig(
                **dict(common, pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3),
                hidden_size=32,
                num_hidden_layers=4,
                num_attention_heads=4,
                intermediate_size=48,
                max_position_embeddings=128,
                local_attention=8,
                global_attn_every_n_layers=3,
                global_rope_theta=160000.0,
                local_rope_theta=10000.0,
            ),
            tf.ModernBertModel,
            "mean",
            [],
            64,
        ),
        # EmbeddingGemma's shape: bidirectional, sliding window (here ±4),
        # mean pooling, two Dense layers without bias or activation.
        "tiny-arch-gemma3": (
            tf.Gemma3TextConfig(
                **dict(decoder, num_hidden_layers=3),
                head_dim=16,
                sliding_window=8,
                layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                use_bidirectional_attention=True,
                query_pre_attn_scalar=16,
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
                hidden_activation="gelu_pytorch_tanh",
            ),
            tf.Gemma3TextModel,
            "mean",
            [(64, torch.nn.Identity(), False), (32, torch.nn.Identity(), False)],
            64,
        ),
    }


def make_arch(name: str, config, model_cls, mode: str, dense: list, max_seq: int) -> None:
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    small_tokenizer(out)
    model = model_cls(config).eval()
    widen(model)
    model.save_pretrained(out, safe_serialization=True)

    word = models.Transformer(str(out), max_seq_length=max_seq)
    width = word.get_word_embedding_dimension()
    stack = [word, models.Pooling(width, pooling_mode=mode)]
    for out_features, activation, bias in dense:
        layer = models.Dense(width, out_features, bias=bias, activation_function=activation)
        with torch.no_grad():
            layer.linear.weight.normal_(0.0, 0.3)
            if bias:
                layer.linear.bias.normal_(0.0, 0.3)
        stack.append(layer)
        width = out_features
    stack.append(models.Normalize())
    st = SentenceTransformer(modules=stack, device="cpu")
    st.save(str(out))
    (out / "README.md").unlink(missing_ok=True)

    before_norm = SentenceTransformer(modules=stack[:-1], device="cpu")
    batched = before_norm.encode(ARCH_TEXTS, convert_to_numpy=True, batch_size=len(ARCH_TEXTS))
    # The reference itself must not depend on padding.
    for i, text in enumerate(ARCH_TEXTS):
        single = before_norm.encode([text], convert_to_numpy=True)[0]
        gap = float(abs(single - batched[i]).max())
        assert gap < 1e-5, f"{name}: batched differs from single by {gap} for {text!r}"
    lengths = [len(word.tokenizer(t, truncation=True, max_length=max_seq)["input_ids"]) for t in ARCH_TEXTS]
    normalized = st.encode(ARCH_TEXTS, convert_to_numpy=True, batch_size=len(ARCH_TEXTS))
    reference = {
        "texts": ARCH_TEXTS,
        "architecture": model.config.architectures[0],
        "pooling": mode,
        "dimensions": width,
        "max_seq_length": max_seq,
        "token_counts": lengths,
        "normalized": normalized.tolist(),
        "unnormalized": batched.tolist(),
    }
    (out / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{name}: {reference['architecture']}, {width} dims, pooling {mode}, tokens {lengths}, {size // 1024} KiB")


RERANK_CASES = [
    (
        "what is the p95 latency alert threshold?",
        [
            "The alert fires when P95 latency exceeds 2 seconds for 5 minutes.",
            "GPU memory is sampled every ten seconds.",
            "延迟告警阈值是两秒",
            "a",
            " ".join(["latency thresholds and alerting rules for the embedding service"] * 8),
        ],
    ),
    ("短", ["短", "long " * 40, "向量检索"]),
]


def roberta_pair_tokenizer(out: pathlib.Path) -> None:
    """The small vocabulary with RoBERTa's pair layout: `[CLS] A [SEP] [SEP] B
    [SEP]`, every token in segment 0 (RoBERTa has one segment embedding)."""
    small_tokenizer(out)
    spec = json.loads((out / "tokenizer.json").read_text())
    spec["post_processor"]["pair"] = [
        {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
        {"Sequence": {"id": "A", "type_id": 0}},
        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
        {"Sequence": {"id": "B", "type_id": 0}},
        {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
    ]
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=48,
    )
    tok.save_pretrained(out)
    sep = tok.convert_tokens_to_ids("[SEP]")
    ids = tok("a", "b")["input_ids"]
    assert ids.count(sep) == 3 and ids[2:4] == [sep, sep], ids


def reranker_configs() -> dict:
    """name -> (config, model class, tokenizer writer, max_length, what it is)."""
    import transformers as tf

    return {
        # bge-reranker-v2-m3's head: dense, tanh, out_proj over the first token.
        "tiny-arch-roberta-reranker": (
            tf.RobertaConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                max_position_embeddings=66,
                type_vocab_size=1,
                pad_token_id=0,
                initializer_range=0.3,
                num_labels=1,
            ),
            tf.RobertaForSequenceClassification,
            roberta_pair_tokenizer,
            48,
            "RobertaForSequenceClassification (2 layers, hidden 32), one label",
        ),
        # gte-reranker-modernbert's head: mean of the token states, dense,
        # GELU, LayerNorm, classifier; pairs longer than the ±4 local window.
        "tiny-arch-modernbert-reranker": (
            tf.ModernBertConfig(
                vocab_size=VOCAB,
                pad_token_id=0,
                bos_token_id=2,
                eos_token_id=3,
                cls_token_id=2,
                sep_token_id=3,
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                intermediate_size=48,
                max_position_embeddings=128,
                local_attention=8,
                global_attn_every_n_layers=2,
                initializer_range=0.3,
                classifier_pooling="mean",
                num_labels=1,
            ),
            tf.ModernBertForSequenceClassification,
            small_tokenizer,
            64,
            "ModernBertForSequenceClassification (3 layers, hidden 32, mean pooling), one label",
        ),
    }


def make_reranker(name: str, config, model_cls, write_tokenizer, max_length: int, what: str) -> None:
    """A cross-encoder with transformers' scores for (query, document)
    pairs cut `only_second` at `max_length` tokens."""
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_tokenizer(out)
    model = model_cls(config).eval()
    widen(model)
    model.save_pretrained(out, safe_serialization=True)
    tok = PreTrainedTokenizerFast.from_pretrained(out)
    cases = []
    for query, docs in RERANK_CASES:
        results = []
        for doc in docs:
            enc = tok(query, doc, truncation="only_second", max_length=max_length, return_tensors="pt")
            with torch.no_grad():
                raw = float(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0, 0])
            results.append(
                {
                    "text": doc,
                    "raw_score": round(raw, 6),
                    "score": round(1 / (1 + pow(2.718281828459045, -raw)), 6),
                    "n_tokens": int(enc["input_ids"].shape[1]),
                }
            )
        cases.append({"query": query, "results": results})
    reference = {
        "model": f"tiny random {what}",
        "reference": f"transformers; pairs (query, document), truncation only_second, max_length {max_length}; score = sigmoid(raw_score)",
        "max_length": max_length,
        "cases": cases,
    }
    (out / "reference-scores.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: tokens {[r['n_tokens'] for c in cases for r in c['results']]}")


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


# Models whose modeling code lives on the hub (trust_remote_code) rather than
# in transformers. Their code is not in this repository: pass the folder that
# holds it, e.g. `--nomic-code DIR` with modeling_hf_nomic_bert.py and
# configuration_hf_nomic_bert.py from nomic-ai/nomic-bert-2048 on the hub
# (the same files are src/contrastors/models/huggingface/ in
# github.com/nomic-ai/contrastors). The fixture is written with a local
# auto_map, sentence-transformers loads it with trust_remote_code (the way
# users run it), and then the code files are removed and auto_map is set to
# the hub's form.
REMOTE = {
    "tiny-arch-nomic-bert": dict(
        flag="--nomic-code",
        files=["configuration_hf_nomic_bert.py", "modeling_hf_nomic_bert.py"],
        auto_map={
            "AutoConfig": "configuration_hf_nomic_bert.NomicBertConfig",
            "AutoModel": "modeling_hf_nomic_bert.NomicBertModel",
        },
        hub_repo="nomic-ai/nomic-bert-2048",
        architecture="NomicBertModel",
        # nomic-embed-text-v1.5's config, scaled down; n_inner is not a
        # multiple of 256, which the gated MLP rounds up to.
        config=dict(
            model_type="nomic_bert",
            vocab_size=VOCAB,
            n_embd=32,
            n_head=4,
            n_layer=2,
            n_inner=96,
            n_positions=8192,
            max_trained_positions=2048,
            type_vocab_size=2,
            activation_function="swiglu",
            layer_norm_epsilon=1e-12,
            rotary_emb_fraction=1.0,
            rotary_emb_base=1000,
            rotary_emb_interleaved=False,
            rotary_emb_scale_base=None,
            rotary_scaling_factor=None,
            qkv_proj_bias=False,
            mlp_fc1_bias=False,
            mlp_fc2_bias=False,
            prenorm=False,
            causal=False,
            use_flash_attn=False,
            fused_bias_fc=False,
            fused_dropout_add_ln=False,
            pad_vocab_size_multiple=1,
            initializer_range=0.3,
            pad_token_id=0,
            bos_token_id=None,
            eos_token_id=None,
            embd_pdrop=0.0,
            resid_pdrop=0.0,
            attn_pdrop=0.0,
            summary_first_dropout=0.0,
            tie_word_embeddings=True,
        ),
        mode="mean",
        max_seq=64,
    ),
    # Alibaba's GTE `NewModel` (gte-multilingual-base, gte-*-en-v1.5,
    # snowflake-arctic-embed-m-v2.0): --gte-code DIR with modeling.py and
    # configuration.py from Alibaba-NLP/new-impl on the hub. RoPE with fixed
    # NTK scaling as gte-multilingual-base has it, packed q/k/v, gated GELU.
    "tiny-arch-gte": dict(
        flag="--gte-code",
        files=["configuration.py", "modeling.py"],
        auto_map={
            "AutoConfig": "configuration.NewConfig",
            "AutoModel": "modeling.NewModel",
        },
        hub_repo="Alibaba-NLP/new-impl",
        architecture="NewModel",
        config=dict(
            model_type="new",
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=48,
            hidden_act="gelu",
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            max_position_embeddings=8192,
            type_vocab_size=1,
            initializer_range=0.3,
            layer_norm_type="layer_norm",
            layer_norm_eps=1e-12,
            pad_token_id=0,
            position_embedding_type="rope",
            rope_theta=20000,
            rope_scaling={"type": "ntk", "factor": 8.0},
            pack_qkv=True,
            unpad_inputs=False,
            use_memory_efficient_attention=False,
            logn_attention_scale=False,
            logn_attention_clip1=False,
        ),
        mode="cls",
        max_seq=64,
        # Rebuilds the RoPE module from the restored rope_scaling, with the
        # authors' own code.
        rebuild=lambda m: m.embeddings._init_rope(m.config),
    ),
}


def legacy_extended_attention_mask(self, attention_mask, input_shape, *args):
    """transformers 4's `ModuleUtilsMixin.get_extended_attention_mask` for an
    encoder's `[batch, seq]` mask, which remote code written for it calls and
    transformers 5 no longer has: 0 where attended, the dtype's minimum where
    padded, shaped `[batch, 1, 1, seq]`."""
    extended = attention_mask[:, None, None, :].to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def restore_dropped_keys(cfg, config: dict) -> bool:
    """transformers 5 moves `rope_scaling` into `rope_parameters` before the
    remote config class sees it, so NewConfig stores None and the model would
    run unscaled RoPE; put back what config.json says. True if anything was."""
    changed = False
    for key in ("rope_scaling",):
        if config.get(key) is not None and getattr(cfg, key, None) != config[key]:
            # A copy: transformers edits RoPE dicts in place.
            setattr(cfg, key, json.loads(json.dumps(config[key])))
            changed = True
    return changed


def install_legacy_shims() -> None:
    from transformers import PreTrainedModel

    if not hasattr(PreTrainedModel, "get_extended_attention_mask"):
        PreTrainedModel.get_extended_attention_mask = legacy_extended_attention_mask


def make_remote(name: str, code_dir: pathlib.Path, spec: dict) -> None:
    install_legacy_shims()
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    small_tokenizer(out)
    for f in spec["files"]:
        shutil.copy(code_dir / f, out / f)
    config = dict(spec["config"], architectures=[spec["architecture"]], auto_map=spec["auto_map"])
    (out / "config.json").write_text(json.dumps(config, indent=2))
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(str(out), trust_remote_code=True)
    restore_dropped_keys(cfg, config)
    model = AutoModel.from_config(cfg, trust_remote_code=True).eval()
    initial_buffers = {k: v.clone() for k, v in model.named_buffers()}
    widen(model)
    # The tensors the hub's checkpoints have: no buffers, and no pooler
    # (NomicBertModel.from_pretrained builds none).
    weights = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("pooler.")}
    from safetensors.torch import save_file

    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})

    max_seq = spec["max_seq"]
    word = models.Transformer(
        str(out),
        max_seq_length=max_seq,
        model_kwargs={"trust_remote_code": True},
        config_kwargs={"trust_remote_code": True},
    )
    loaded = dict(word.auto_model.state_dict())
    if restore_dropped_keys(word.auto_model.config, config) and "rebuild" in spec:
        spec["rebuild"](word.auto_model)
    # transformers 5 builds models on the meta device and leaves buffers the
    # checkpoint does not hold (position ids, RoPE tables) uninitialised,
    # where transformers 4, which this code was written for, kept what the
    # constructor computed: put those values back.
    built = {k: type(m).__name__ for k, m in model.named_modules()}
    for k, m in word.auto_model.named_modules():
        assert built.get(k, type(m).__name__) == type(m).__name__, f"{name}: {k} is built differently"
    for k, v in dict(word.auto_model.named_buffers()).items():
        if k in initial_buffers and not torch.equal(v.cpu(), initial_buffers[k]):
            gap = (v.cpu().double() - initial_buffers[k].double()).abs().max()
            print(f"{name}: restoring buffer {k} that loading left uninitialised (off by {gap})")
            with torch.no_grad():
                v.copy_(initial_buffers[k])
    # The upstream loader is not strict: check every tensor arrived.
    for k, v in weights.items():
        assert torch.equal(loaded[k], v), f"{name}: {k} did not load back"
    width = word.get_word_embedding_dimension()
    stack = [word, models.Pooling(width, pooling_mode=spec["mode"]), models.Normalize()]
    st = SentenceTransformer(modules=stack, device="cpu")
    st.save(str(out))
    (out / "README.md").unlink(missing_ok=True)
    before_norm = SentenceTransformer(modules=stack[:-1], device="cpu")
    batched = before_norm.encode(ARCH_TEXTS, convert_to_numpy=True, batch_size=len(ARCH_TEXTS))
    for i, text in enumerate(ARCH_TEXTS):
        single = before_norm.encode([text], convert_to_numpy=True)[0]
        gap = float(abs(single - batched[i]).max())
        assert gap < 1e-5, f"{name}: batched differs from single by {gap} for {text!r}"
    lengths = [len(word.tokenizer(t, truncation=True, max_length=max_seq)["input_ids"]) for t in ARCH_TEXTS]
    normalized = st.encode(ARCH_TEXTS, convert_to_numpy=True, batch_size=len(ARCH_TEXTS))
    # The folder as the hub has it: code referenced, not copied.
    for f in spec["files"]:
        (out / f).unlink()
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    # sentence-transformers saved the model again through transformers 5,
    # which writes its own config form (rope_scaling becomes
    # rope_parameters): put back the files as the hub has them.
    hub_config = dict(config, auto_map={k: f"{spec['hub_repo']}--{v}" for k, v in spec["auto_map"].items()})
    (out / "config.json").write_text(json.dumps(hub_config, indent=2))
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    reference = {
        "texts": ARCH_TEXTS,
        "architecture": spec["architecture"],
        "pooling": spec["mode"],
        "dimensions": width,
        "max_seq_length": max_seq,
        "token_counts": lengths,
        "normalized": normalized.tolist(),
        "unnormalized": batched.tolist(),
    }
    (out / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: {spec['architecture']} (remote code from {code_dir}), {width} dims, tokens {lengths}")


def make_remote_reranker(name: str, code_dir: pathlib.Path, base: dict, max_length: int) -> None:
    """gte-multilingual-reranker-base's `NewForSequenceClassification`
    (pooler over the first token, tanh, one-label classifier) with the
    authors' scores for the same pairs as the other cross-encoders."""
    install_legacy_shims()
    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    roberta_pair_tokenizer(out)
    for f in base["files"]:
        shutil.copy(code_dir / f, out / f)
    auto_map = dict(
        base["auto_map"], AutoModelForSequenceClassification="modeling.NewForSequenceClassification"
    )
    config = dict(
        base["config"],
        architectures=["NewForSequenceClassification"],
        auto_map=auto_map,
        num_labels=1,
        classifier_dropout=0.0,
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(str(out), trust_remote_code=True)
    restore_dropped_keys(cfg, config)
    model = AutoModelForSequenceClassification.from_config(cfg, trust_remote_code=True).eval()
    widen(model)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(k.startswith("new.encoder.") for k in weights), sorted(weights)[:5]
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    # Scores come from this model (built by the authors' constructor, so its
    # RoPE tables are real; see make_remote for what loading loses).
    tok = PreTrainedTokenizerFast.from_pretrained(out)
    cases = []
    for query, docs in RERANK_CASES:
        results = []
        for doc in docs:
            enc = tok(query, doc, truncation="only_second", max_length=max_length, return_tensors="pt")
            with torch.no_grad():
                raw = float(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0, 0])
            results.append(
                {
                    "text": doc,
                    "raw_score": round(raw, 6),
                    "score": round(1 / (1 + pow(2.718281828459045, -raw)), 6),
                    "n_tokens": int(enc["input_ids"].shape[1]),
                }
            )
        cases.append({"query": query, "results": results})
    for f in base["files"]:
        (out / f).unlink()
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    saved = json.loads((out / "config.json").read_text())
    saved["auto_map"] = {k: f"{base['hub_repo']}--{v}" for k, v in auto_map.items()}
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    reference = {
        "model": "tiny random NewForSequenceClassification (2 layers, hidden 32, NTK-scaled RoPE), one label",
        "reference": f"Alibaba-NLP/new-impl modeling.py; pairs (query, document), truncation only_second, max_length {max_length}; score = sigmoid(raw_score)",
        "max_length": max_length,
        "cases": cases,
    }
    (out / "reference-scores.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: tokens {[r['n_tokens'] for c in cases for r in c['results']]}")


# JinaBERT (`JinaBertModel`, jina-embeddings-v2-small/base-en/zh/de/es).
# Its authors' code (jinaai/jina-bert-implementation on the hub) has no copy
# that could be found, so the reference is this module, written from the
# published description (Günther et al. 2023, "Jina Embeddings 2") and the
# model cards' layout, with the ALiBi slopes as in ofirpress/attention_with_
# linear_biases (the same function the derived ports carry). infermon is
# also checked against candle-transformers' own JinaBERT (a third, independent
# implementation) in src/inference/models/jina_bert.rs.
class JinaBertReference(torch.nn.Module):
    """A post-norm BERT without position embeddings: symmetric ALiBi
    (-slope_h · |i - j| added to the attention scores) and a gated MLP
    `wo(act(first half) · second half)` of `gated_layers` (no bias),
    followed by `layernorm(out + residual)`. Module names are the hub
    checkpoints' tensor names."""

    def __init__(self, cfg: dict):
        super().__init__()
        nn = torch.nn
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.cfg = cfg
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(cfg["vocab_size"], h)
        self.embeddings.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], h)
        self.embeddings.LayerNorm = nn.LayerNorm(h, eps=eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList()
        for _ in range(cfg["num_hidden_layers"]):
            layer = nn.Module()
            layer.attention = nn.Module()
            layer.attention.self = nn.Module()
            for n in ("query", "key", "value"):
                setattr(layer.attention.self, n, nn.Linear(h, h))
            layer.attention.output = nn.Module()
            layer.attention.output.dense = nn.Linear(h, h)
            layer.attention.output.LayerNorm = nn.LayerNorm(h, eps=eps)
            layer.mlp = nn.Module()
            layer.mlp.gated_layers = nn.Linear(h, 2 * cfg["intermediate_size"], bias=False)
            layer.mlp.wo = nn.Linear(cfg["intermediate_size"], h)
            layer.mlp.layernorm = nn.LayerNorm(h, eps=eps)
            self.encoder.layer.append(layer)
        act = cfg["feed_forward_type"]
        self.act = {"geglu": nn.GELU(), "reglu": nn.ReLU()}[act]

    @staticmethod
    def slopes(n: int) -> list:
        def power_of_2(n):
            start = 2 ** (-(2 ** -(math.log2(n) - 3)))
            return [start * start**i for i in range(n)]

        if math.log2(n).is_integer():
            return power_of_2(n)
        closest = 2 ** math.floor(math.log2(n))
        return power_of_2(closest) + JinaBertReference.slopes(2 * closest)[0::2][: n - closest]

    def alibi(self, size: int) -> torch.Tensor:
        n = self.cfg["num_attention_heads"]
        pos = torch.arange(size)
        distance = (pos[None, :] - pos[:, None]).abs()
        slopes = torch.Tensor(self.slopes(n)) * -1
        return (slopes[:, None, None] * distance[None]).unsqueeze(0)  # [1, heads, seq, seq]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, seq = input_ids.shape
        heads = cfg["num_attention_heads"]
        d = cfg["hidden_size"] // heads
        e = self.embeddings
        x = e.word_embeddings(input_ids) + e.token_type_embeddings(torch.zeros_like(input_ids))
        x = e.LayerNorm(x)
        # transformers 4's extended mask: 0 where attended, the dtype's minimum where padded.
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        bias = self.alibi(seq)
        split = lambda t: t.view(b, seq, heads, d).permute(0, 2, 1, 3)
        for layer in self.encoder.layer:
            a = layer.attention.self
            q, k, v = split(a.query(x)), split(a.key(x)), split(a.value(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask
            probs = torch.softmax(scores + bias, dim=-1)
            ctx = (probs @ v).permute(0, 2, 1, 3).reshape(b, seq, heads * d)
            o = layer.attention.output
            x = o.LayerNorm(o.dense(ctx) + x)
            m = layer.mlp
            gated = m.gated_layers(x)
            inter = cfg["intermediate_size"]
            y = self.act(gated[..., :inter]) * gated[..., inter:]
            x = m.layernorm(m.wo(y) + x)
        return x


# jina-embeddings-v2-base-en's config.json, scaled down: 12 heads (as the
# base models; not a power of two, so the slopes' second series is used).
JINA_CONFIG = dict(
    _name_or_path="jinaai/jina-bert-implementation",
    architectures=["JinaBertForMaskedLM"],
    attention_probs_dropout_prob=0.0,
    attn_implementation="torch",
    auto_map={
        "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
        "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
        "AutoModelForMaskedLM": "jinaai/jina-bert-implementation--modeling_bert.JinaBertForMaskedLM",
        "AutoModelForSequenceClassification": "jinaai/jina-bert-implementation--modeling_bert.JinaBertForSequenceClassification",
    },
    classifier_dropout=None,
    emb_pooler="mean",
    feed_forward_type="geglu",
    gradient_checkpointing=False,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    hidden_size=48,
    initializer_range=0.3,
    intermediate_size=64,
    layer_norm_eps=1e-12,
    max_position_embeddings=8192,
    model_max_length=8192,
    model_type="bert",
    num_attention_heads=12,
    num_hidden_layers=2,
    pad_token_id=0,
    position_embedding_type="alibi",
    torch_dtype="float32",
    type_vocab_size=2,
    use_cache=True,
    vocab_size=VOCAB,
)


def make_jina(name: str, max_seq: int = 64) -> None:
    """A JinaBERT folder as the hub has it (config.json naming the authors'
    code, weights at the root, mean Pooling, Normalize) with the reference
    module's outputs, pooled by sentence-transformers' Pooling module."""
    from safetensors.torch import save_file

    torch.manual_seed(sum(map(ord, name)))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    small_tokenizer(out)
    cfg = dict(JINA_CONFIG)
    model = JinaBertReference(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, cfg["initializer_range"])
    widen(model)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    width = cfg["hidden_size"]
    (out / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
    )
    pooling = models.Pooling(width, pooling_mode="mean")
    for sub, module in (("1_Pooling", pooling), ("2_Normalize", models.Normalize())):
        (out / sub).mkdir()
        module.save(str(out / sub))
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq, "do_lower_case": False}, indent=2)
    )
    tok = PreTrainedTokenizerFast.from_pretrained(out)

    def encode(texts):
        enc = tok(texts, padding=True, truncation=True, max_length=max_seq, return_tensors="pt")
        with torch.no_grad():
            hidden = model(enc["input_ids"], enc["attention_mask"])
            pooled = pooling({"token_embeddings": hidden, "attention_mask": enc["attention_mask"]})
        return pooled["sentence_embedding"]

    batched = encode(ARCH_TEXTS)
    for i, text in enumerate(ARCH_TEXTS):
        gap = float((encode([text])[0] - batched[i]).abs().max())
        assert gap < 1e-5, f"{name}: batched differs from single by {gap} for {text!r}"
    normalized = torch.nn.functional.normalize(batched, p=2, dim=1)
    lengths = [len(tok(t, truncation=True, max_length=max_seq)["input_ids"]) for t in ARCH_TEXTS]
    reference = {
        "texts": ARCH_TEXTS,
        "architecture": cfg["architectures"][0],
        "reference": "JinaBertReference in scripts/make-fixtures.py (written from the published description; "
        "the authors' hub code could not be found), mean pooling by sentence-transformers' Pooling",
        "pooling": "mean",
        "dimensions": width,
        "max_seq_length": max_seq,
        "token_counts": lengths,
        "normalized": normalized.tolist(),
        "unnormalized": batched.tolist(),
    }
    (out / "reference.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1))
    print(f"{name}: JinaBERT (reference module), {width} dims, tokens {lengths}")


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    code_dirs = {}
    for spec in REMOTE.values():
        if spec["flag"] in args:
            i = args.index(spec["flag"])
            code_dirs[spec["flag"]] = pathlib.Path(args[i + 1])
            del args[i : i + 2]
    only = set(args)
    if not only:
        for name, (mode, dense) in FIXTURES_TO_MAKE.items():
            make(name, mode, dense)
        pytorch_bin_copy("tiny-st-max-dense", "tiny-st-bin-weights")
    if not only or "tiny-st-prompts" in only:
        prompts_fixture("tiny-st-prompts")
    for name, args in arch_configs().items():
        if not only or name in only:
            make_arch(name, *args)
    for name, args in reranker_configs().items():
        if not only or name in only:
            make_reranker(name, *args)
    for name, spec in REMOTE.items():
        if spec["flag"] in code_dirs and (not only or name in only):
            make_remote(name, code_dirs[spec["flag"]], spec)
        elif name in only or not only:
            print(f"{name}: skipped (needs {spec['flag']} DIR with {', '.join(spec['files'])})")
    if not only or "tiny-arch-jina-bert" in only:
        make_jina("tiny-arch-jina-bert")
    if "--gte-code" in code_dirs and (not only or "tiny-arch-gte-reranker" in only):
        make_remote_reranker("tiny-arch-gte-reranker", code_dirs["--gte-code"], REMOTE["tiny-arch-gte"], 48)
