#!/usr/bin/env python3
"""Compares infermon's vector for the first text of TEXTS_FILE (written by
embed_offline with VECTOR_OUT) with sentence-transformers' on the same
model, so that bench/families/run.sh times only a model infermon computes
right. Prints one JSON line; exits 1 when the widths differ, the cosine is
below --min-cosine, or the centred cosine is below --min-centred.

The centred cosine is the cosine after subtracting sentence-transformers'
mean vector over all the texts from both vectors. Random models give every
text a similar vector (the texts share words and length), so a plain cosine
of 0.999 can hide an error in the part that tells texts apart; the centred
cosine measures that part alone.

    PYTHON bench/families/check.py MODEL_DIR TEXTS_FILE VECTOR_FILE THREADS
"""

import argparse
import json
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("texts_file")
    parser.add_argument("vector_file")
    parser.add_argument("threads", type=int)
    parser.add_argument("--min-cosine", type=float, default=0.999)
    parser.add_argument("--min-centred", type=float, default=0.99)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = [line.rstrip("\n") for line in open(args.texts_file, encoding="utf-8") if line.strip()]
    model = SentenceTransformer(args.model_dir, device="cpu")
    ours = np.asarray(json.load(open(args.vector_file)), dtype=np.float64)
    theirs = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    theirs = theirs.astype(np.float64)
    config = json.load(open(f"{args.model_dir}/config.json"))
    out = {
        "phase": "check",
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "params": sum(p.numel() for p in model.parameters()),
        "dimensions": int(theirs.shape[1]),
        "infermon_dimensions": int(ours.shape[0]),
    }
    ok = ours.shape[0] == theirs.shape[1]
    if ok:
        mean = theirs.mean(axis=0)
        cosine, centred = cos(ours, theirs[0]), cos(ours - mean, theirs[0] - mean)
        out.update(
            cosine=round(cosine, 9),
            centred_cosine=round(centred, 9),
            # How alike the model's vectors of different texts are: the
            # closer to 1, the less the plain cosine can tell.
            nearest_other_text_cosine=round(max(cos(theirs[0], v) for v in theirs[1:]), 6),
        )
        ok = cosine >= args.min_cosine and centred >= args.min_centred
    out["ok"] = ok
    print(json.dumps(out), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
