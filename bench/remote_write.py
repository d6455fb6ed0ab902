#!/usr/bin/env python3
"""remote_write cost: infermon vs Prometheus, both scraping the same target and
writing to the same VictoriaMetrics.

Target: a static exposition of SERIES gauges served by python's http.server.
Four runs, one after the other, each WARMUP s then MEASURE s measured:
infermon with and without remote_write, Prometheus with and without. Per run:
whole-process CPU (utime+stime from /proc/<pid>/stat) over the measured
window, samples scraped (infermon_scrape_samples_appended_total /
prometheus_tsdb_head_samples_appended_total) and samples sent
(infermon_remote_write_samples_sent_total / prometheus_remote_storage_samples_total).
The sender's CPU cannot be isolated inside a process, so the table shows
whole-process CPU per scraped sample both ways and the difference (the cost
remote_write adds) per sample sent.

Usage: bench/remote_write.py [INFERMON_BINARY]  (default target/bench-storage/infermon)
Env: SERIES (10000), WARMUP (15), MEASURE (60). Appends JSON lines to
bench/results/remote-write-<time>.jsonl and prints a markdown table.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SERIES = int(os.environ.get("SERIES", "10000"))
WARMUP = int(os.environ.get("WARMUP", "15"))
MEASURE = int(os.environ.get("MEASURE", "60"))
TICK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFERMON = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench-storage/infermon")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def wait_ok(url, secs=60):
    end = time.time() + secs
    while time.time() < end:
        try:
            get(url)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric_sum(url, names):
    text = get(url)
    for name in names:
        vals = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
        if vals:
            return sum(vals)
    return 0.0


def main():
    work = tempfile.mkdtemp(prefix="rw-bench-")
    procs = []
    try:
        # The target: SERIES gauges in 100 metric names.
        os.makedirs(f"{work}/www")
        with open(f"{work}/www/metrics", "w") as f:
            for m in range(100):
                f.write(f"# TYPE bench_metric_{m} gauge\n")
                for i in range(SERIES // 100):
                    f.write(f'bench_metric_{m}{{idx="{i}",pod="pod-{i % 37}"}} {(m * 7919 + i) % 1000 / 7}\n')
        tport = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(tport), "--bind", "127.0.0.1",
                                       "--directory", f"{work}/www"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_ok(f"http://127.0.0.1:{tport}/metrics")
        vport = free_port()
        procs.append(subprocess.Popen(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vport}",
                                       f"-storageDataPath={work}/vm", "-loggerLevel=ERROR"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_ok(f"http://127.0.0.1:{vport}/health")
        write_url = f"http://127.0.0.1:{vport}/api/v1/write"
        results = []
        for system in ("infermon", "prometheus"):
            for rw in (True, False):
                port = free_port()
                d = f"{work}/{system}-{rw}"
                os.makedirs(d)
                remote = f"remote_write: [{{url: '{write_url}', name: bench}}]\n" if rw else ""
                scrape = (f"global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n"
                          f"scrape_configs:\n  - job_name: target\n    static_configs: [{{targets: ['127.0.0.1:{tport}']}}]\n")
                if system == "infermon":
                    # Self-scrape off, so both scrape exactly the same target.
                    cfg = (f"server: {{listen: '127.0.0.1:{port}'}}\nstorage: {{path: '{d}/data'}}\n" + scrape
                           + "  - job_name: infermon\n    static_configs: []\n" + remote)
                    with open(f"{d}/infermon.yml", "w") as f:
                        f.write(cfg)
                    cmd = [INFERMON, "serve", "--config", f"{d}/infermon.yml"]
                    ready = f"http://127.0.0.1:{port}/ready"
                    scraped = ["infermon_scrape_samples_appended_total"]
                    sent = ["infermon_remote_write_samples_sent_total"]
                else:
                    with open(f"{d}/prometheus.yml", "w") as f:
                        f.write(scrape + remote)
                    cmd = ["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"]
                    ready = f"http://127.0.0.1:{port}/-/ready"
                    scraped = ["prometheus_tsdb_head_samples_appended_total"]
                    sent = ["prometheus_remote_storage_samples_total",
                            "prometheus_remote_storage_succeeded_samples_total"]
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
                procs.append(p)
                wait_ok(ready)
                murl = f"http://127.0.0.1:{port}/metrics"
                time.sleep(WARMUP)
                c0, s0, x0 = cpu_s(p.pid), metric_sum(murl, scraped), metric_sum(murl, sent)
                time.sleep(MEASURE)
                c1, s1, x1 = cpu_s(p.pid), metric_sum(murl, scraped), metric_sum(murl, sent)
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
                r = {"system": system, "remote_write": rw, "series": SERIES, "secs": MEASURE,
                     "cpu_s": round(c1 - c0, 3), "scraped": int(s1 - s0), "sent": int(x1 - x0)}
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
        os.makedirs(f"{ROOT}/bench/results", exist_ok=True)
        out = time.strftime(f"{ROOT}/bench/results/remote-write-%Y%m%dT%H%M%SZ.jsonl", time.gmtime())
        with open(out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
        table(results)
        print(f"\nraw: {os.path.relpath(out, ROOT)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def table(results):
    by = {(r["system"], r["remote_write"]): r for r in results}
    print("| system | remote_write | samples scraped | samples sent | sent/s | CPU s | CPU µs/scraped sample | remote_write CPU µs/sent sample |")
    print("|---|---|---|---|---|---|---|---|")
    extra = {}
    for system in ("infermon", "prometheus"):
        on, off = by[(system, True)], by[(system, False)]
        per_on = on["cpu_s"] / max(on["scraped"], 1) * 1e6
        per_off = off["cpu_s"] / max(off["scraped"], 1) * 1e6
        # What remote_write adds, per sample it sent.
        extra[system] = (per_on - per_off) * on["scraped"] / max(on["sent"], 1)
        for r, per in ((on, per_on), (off, per_off)):
            add = f"{extra[system]:.2f}" if r is on else ""
            print(f"| {system} | {'on' if r['remote_write'] else 'off'} | {r['scraped']} | {r['sent']} | "
                  f"{r['sent'] / r['secs']:.0f} | {r['cpu_s']:.2f} | {per:.2f} | {add} |")
    i_on, p_on = by[("infermon", True)], by[("prometheus", True)]
    whole = (i_on["cpu_s"] / max(i_on["scraped"], 1)) / (p_on["cpu_s"] / max(p_on["scraped"], 1))
    print(f"\ninfermon/Prometheus, whole-process CPU per sample with remote_write on: {whole:.2f}x")
    if extra["prometheus"] > 0:
        print(f"infermon/Prometheus, CPU remote_write adds per sample sent: {extra['infermon'] / extra['prometheus']:.2f}x")


if __name__ == "__main__":
    main()
