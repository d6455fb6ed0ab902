#!/usr/bin/env python3
"""Turns a storage run's JSON lines into the markdown tables of bench/README.md."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ingest = {r["system"]: r for r in rows if not r.get("scrape")}
scrape = {r["system"]: r for r in rows if r.get("scrape")}


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


print("| system | samples | ingest samples/s | CPU s | CPU µs/sample | peak RSS MiB | bytes/sample |")
print("|---|---|---|---|---|---|---|")
for name in ["infermon", "prometheus", "victoria-metrics"]:
    r = ingest.get(name)
    if not r:
        continue
    n = r["samples"]
    print(
        f"| {name} | {n} | {n / r['wall_s']:.0f} | {r['cpu_s']:.1f} | {r['cpu_s'] / n * 1e6:.2f} "
        f"| {r['peak_rss_bytes'] / 2**20:.0f} | {r['bytes'] / n:.3f} |"
    )
if any("query_one_family_ms" in r for r in ingest.values()):
    print()
    print("| query_range over the whole span, step 345 s (median of 5) | " + " | ".join(
        f"{n} ms" for n in ingest) + " |")
    print("|---|" + "---|" * len(ingest))
    for key, label in [
        ("query_one_family_ms", "`sum(rate(bench_requests_0_total[5m]))`"),
        ("query_all_counters_ms", '`sum by (instance) ({__name__=~"bench_requests_.*_total"})`'),
    ]:
        print(f"| {label} | " + " | ".join(f"{r.get(key, 0):.1f}" for r in ingest.values()) + " |")
inf = ingest.get("infermon")
if inf and "old_bytes_per_sample" in inf:
    print()
    print(
        f"infermon ({inf.get('shape', 'int')} shape), data older than 3 h after its own maintenance: "
        f"{inf['old_bytes_per_sample']:.3f} bytes/sample in chunks, "
        f"{inf['old_file_bytes_per_sample_est']:.3f} with the file's overhead; "
        f"every day compacted: {inf['forced_bytes'] / inf['samples']:.3f} bytes/sample."
    )
    if "rollup_file_bytes_est" in inf:
        r = inf["rollup_file_bytes_est"]
        print()
        print(
            f"Of the store's {inf['bytes']} bytes, ~{r} are the 5-minute rollups (every block that ended 1 h ago) "
            f"(kept 400 d, which the peers do not keep); without them "
            f"{(inf['bytes'] - r) / inf['samples']:.3f} bytes/sample."
        )
    print()
    print("| kind | older than 3 h, bytes/sample | newer, bytes/sample |")
    print("|---|---|---|")
    for kind, k in sorted(inf.get("kinds", {}).items()):
        print(f"| {kind} | {k['old_bytes_per_sample']:.3f} | {k['new_bytes_per_sample']:.3f} |")
if inf:
    print()
    print("| infermon ÷ peer | ingest rate | CPU/sample | peak RSS | bytes/sample |")
    print("|---|---|---|---|---|")
    for name in ["prometheus", "victoria-metrics"]:
        p = ingest.get(name)
        if not p:
            continue
        print(
            f"| {name} | {ratio(inf['samples'] / inf['wall_s'], p['samples'] / p['wall_s'])} "
            f"| {ratio(inf['cpu_s'] / inf['samples'], p['cpu_s'] / p['samples'])} "
            f"| {ratio(inf['peak_rss_bytes'], p['peak_rss_bytes'])} | {ratio(inf['bytes'] / inf['samples'], p['bytes'] / p['samples'])} |"
        )
if scrape:
    print()
    print("| scraping node exporter at 1s | samples/scrape | CPU ms per 1k samples | RSS MiB |")
    print("|---|---|---|---|")
    for name, r in scrape.items():
        per_1k = r["cpu_s"] / (r["samples_per_scrape"] * r["secs"] / 1000) * 1000
        print(f"| {name} | {r['samples_per_scrape']} | {per_1k:.2f} | {r['rss_bytes'] / 2**20:.0f} |")
