"""Plots of the benchmark CSV: incremental epoch latency, open-loop latency, throughput."""

import csv
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    latest = {}
    for row in csv.DictReader(open(results)):
        latest[(row["suite"], row["config"], row["metric"])] = float(row["value"] or "nan")

    # Incremental epoch latency (p50, p99) vs update batch size, one line per key and history.
    fig, ax = plt.subplots()
    series = {}
    for (suite, config, metric), v in latest.items():
        m = re.match(r"(\w+) h=(\d+) b=(\d+) w=1", config)
        if suite == "incremental" and m and metric in ("epoch_p50_us", "epoch_p99_us"):
            series.setdefault((m[1], m[2], metric[6:9]), []).append((int(m[3]), v / 1000))
    for (key, h, q), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key} H={int(h):,} {q}")
    ax.set(xscale="log", yscale="log", xlabel="update batch (records)", ylabel="epoch latency (ms)",
           title="Incremental update: time to absorb a batch and report changes")
    ax.legend(fontsize="small")
    fig.savefig(os.path.join(out, "incremental.png"), dpi=120)

    # Open-loop latency vs offered rate.
    fig, ax = plt.subplots()
    series = {}
    for (suite, config, metric), v in latest.items():
        m = re.match(r"category_totals (.*) rate=(\d+) w=2", config)
        if suite == "latency" and m and metric in ("p50_ms", "p99_ms", "p99.9_ms", "max_ms"):
            series.setdefault((m[1], metric[:-3]), []).append((int(m[2]), v))
    for (cfg, q), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{cfg} {q}")
    ax.set(xscale="log", yscale="log", xlabel="offered rate (records/s)", ylabel="output latency (ms)",
           title="Open-loop latency, category_totals -w 2")
    ax.legend(fontsize="x-small")
    fig.savefig(os.path.join(out, "latency.png"), dpi=120)

    # Throughput by mode and layout.
    fig, ax = plt.subplots()
    bars = sorted((config.replace("category_totals ", ""), v) for (suite, config, metric), v in latest.items()
                  if suite == "throughput" and metric == "records_per_s")
    ax.barh([b[0] for b in bars], [b[1] / 1e6 for b in bars])
    ax.set(xlabel="million records/s", title="category_totals throughput from a file")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=120)
    print(f"plots in {out}")


if __name__ == "__main__":
    main()
