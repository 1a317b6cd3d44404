"""Per-category totals over one transactions CSV: kappa vs DuckDB vs Polars.

Run by scripts/bench-peers.sh (which makes the venv). Each engine reads the same file
end to end; results must match kappa's to the cent (total, count, quantity per
category) before any time is reported. Prints a table and appends rows to the CSV.

    bench_peers.py FILE RUNS RESULTS_CSV BIN_DIR COMMIT
"""

import csv
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal


def cents(text):
    """Exact cents of a decimal string such as '4222.60'."""
    return int(Decimal(str(text)) * 100)


def kappa(path, bin_dir, workers):
    out = subprocess.run(
        [os.path.join(bin_dir, "category_totals"), "--mode", "batch", "--input", path, "-w", str(workers)],
        check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(out.splitlines()))
    return {r["category"]: (cents(r["total"]), int(r["count"]), int(r["quantity"])) for r in rows}


def duckdb_totals(path):
    import duckdb
    con = duckdb.connect()
    rows = con.execute(
        """SELECT product_category, sum(total_amount), count(*), sum(quantity)
           FROM read_csv(?, header = true,
                         types = {'total_amount': 'DECIMAL(18,2)', 'product_price': 'DECIMAL(18,2)'})
           GROUP BY product_category""", [path]).fetchall()
    return {c: (cents(t), int(n), int(q)) for c, t, n, q in rows}


def polars_totals(path):
    import polars as pl
    df = (pl.scan_csv(path, schema_overrides={"total_amount": pl.String})
          .with_columns(pl.col("total_amount").str.split_exact(".", 1).alias("parts"))
          .with_columns((pl.col("parts").struct.field("field_0").cast(pl.Int64) * 100
                         + pl.col("parts").struct.field("field_1").str.pad_end(2, "0").cast(pl.Int64))
                        .alias("cents"))
          .group_by("product_category")
          .agg(pl.col("cents").sum(), pl.len(), pl.col("quantity").sum())
          .collect())
    return {c: (int(t), int(n), int(q)) for c, t, n, q in df.iter_rows()}


def main():
    path, runs, results, bin_dir, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    engines = [
        ("kappa w=1", lambda: kappa(path, bin_dir, 1)),
        ("kappa w=2", lambda: kappa(path, bin_dir, 2)),
        ("duckdb", lambda: duckdb_totals(path)),
        ("polars", lambda: polars_totals(path)),
    ]
    reference = engines[0][1]()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rows = sum(1 for _ in open(path)) - 1
    print(f"{rows} rows, {len(reference)} categories, {runs} runs each (median), file read end to end")
    for name, run in engines:
        got = run()  # warm-up, and the check
        if got != reference:
            sys.exit(f"bench_peers: {name} disagrees with kappa:\n{got}\nvs\n{reference}")
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        med = statistics.median(times)
        print(f"  {name:10} {med:8.3f} s  {rows / med:12.0f} records/s  (results match to the cent)")
        with open(results, "a") as f:
            load1 = open("/proc/loadavg").read().split()[0]
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(f"{stamp},{commit},{os.cpu_count()},{cpu.replace(',', '')},{load1},peers,"
                    f"{name} category totals h={rows},wall_s,{med:.4f},s\n")


if __name__ == "__main__":
    main()
