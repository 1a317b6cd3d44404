#!/usr/bin/env bash
# Peers (optional, not CI): the same per-category totals query in DuckDB and Polars over
# the same generated transactions file, checked against kappa's result to the cent
# before timing. Appends wall times to the results CSV.
#
#   scripts/bench-peers.sh [--rows N] [--runs N] [--out PATH]
#
# Installs duckdb, polars and matplotlib with pip into a venv ($KAPPA_BENCH_VENV,
# default target/bench-venv). Spark and Flink (JVM installs) are not included.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rows=1000000 runs=5 out="$root/bench/results.csv"
while [[ $# -gt 0 ]]; do
    case $1 in
        --rows) rows=$2; shift ;;
        --runs) runs=$2; shift ;;
        --out) out=$2; shift ;;
        --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "bench-peers.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
venv=${KAPPA_BENCH_VENV:-$root/target/bench-venv}
dir=${KAPPA_BENCH_DIR:-$root/target/bench}
bin="$root/target/release"
[[ -x $bin/category_totals && -x $bin/gen ]] || { echo "bench-peers.sh: run cargo build --release" >&2; exit 2; }
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import duckdb, polars' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q duckdb polars matplotlib
fi
mkdir -p "$dir" "$(dirname "$out")"
file="$dir/transactions-$rows.csv"
[[ -s $file ]] || "$bin/gen" transactions --rows "$rows" --seed 42 --output "$file"
[[ -s $out ]] || echo "date,commit,cores,cpu,load1,suite,config,metric,value,unit" >"$out"
"$venv/bin/python" "$here/bench_peers.py" "$file" "$runs" "$out" "$bin" "$(git -C "$root" rev-parse --short HEAD)"
