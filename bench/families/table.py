#!/usr/bin/env python3
"""Prints the markdown table of a bench/families/run.sh results file.

    python3 bench/families/table.py bench/results/families-TIME.jsonl

Standard library only. One row per family: its check against
sentence-transformers, then texts/s of infermon and PyTorch at batch 32 and
batch 1 and their ratio; a family whose check failed gets no speed numbers.
"""

import json
import sys


def main() -> None:
    rows: dict = {}
    for line in open(sys.argv[1], encoding="utf-8"):
        record = json.loads(line)
        family = record.get("family")
        if family is None:
            continue
        row = rows.setdefault(family, {})
        if record.get("phase") == "check":
            row["check"] = record
        elif record.get("phase") == "offline" and "texts_per_s" in record:
            side = "infermon" if record["engine"] == "infermon" else "pytorch"
            row[(side, record["batch_size"])] = record["texts_per_s"]

    print("| family | architecture | params | cosine / centred vs PyTorch | "
          "batch 32: infermon texts/s | PyTorch | ratio | batch 1: infermon texts/s | PyTorch | ratio |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for family, row in rows.items():
        check = row.get("check", {})
        params = f"{check['params'] / 1e6:.1f} M" if "params" in check else "?"
        if "cosine" in check:
            agreement = f"{check['cosine']:.7f} / {check['centred_cosine']:.7f}"
        else:
            agreement = f"widths {check.get('infermon_dimensions')} vs {check.get('dimensions')}"
        if not check.get("ok"):
            agreement = f"**check failed**: {agreement}"
        cells = [family, check.get("architecture", "?"), params, agreement]
        for batch in (32, 1):
            ours, theirs = row.get(("infermon", batch)), row.get(("pytorch", batch))
            ratio = f"{ours / theirs:.2f}×" if ours and theirs else "—"
            cells += [f"{ours:.1f}" if ours else "—", f"{theirs:.1f}" if theirs else "—", ratio]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
