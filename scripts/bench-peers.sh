#!/usr/bin/env bash
# Peers (optional, not CI): the same per-category totals query in DuckDB and Polars (and
# with --with-jvm Spark and Flink, batch and streaming) over the same generated
# transactions file, checked against kappa's result to the cent before timing. Appends
# wall times (and the JVM engines' start and trivial-job times) to the results CSV.
#
#   scripts/bench-peers.sh [--rows N] [--runs N] [--out PATH] [--with-jvm | --engines LIST]
#
# LIST is a comma list of duckdb,polars,spark,flink (default duckdb,polars; --with-jvm
# means all four). Installs duckdb, polars and matplotlib with pip into a venv
# ($KAPPA_BENCH_VENV, default target/bench-venv); pyspark and apache-flink only when
# asked for (they need Java 17 on the PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rows=1000000 runs=5 out="$root/bench/results.csv" engines=duckdb,polars
while [[ $# -gt 0 ]]; do
    case $1 in
        --rows) rows=$2; shift ;;
        --runs) runs=$2; shift ;;
        --out) out=$2; shift ;;
        --engines) engines=$2; shift ;;
        --with-jvm) engines=duckdb,polars,spark,flink ;;
        --help) sed -n '2,12p' "$0"; exit 0 ;;
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
if [[ ,$engines, == *,spark,* ]] && ! "$venv/bin/python" -c 'import pyspark' 2>/dev/null; then
    "$venv/bin/pip" install -q pyspark
fi
if [[ ,$engines, == *,flink,* ]] && ! "$venv/bin/python" -c 'import pyflink.table' 2>/dev/null; then
    "$venv/bin/pip" install -q apache-flink
fi
mkdir -p "$dir" "$(dirname "$out")"
file="$dir/transactions-$rows.csv"
[[ -s $file ]] || "$bin/gen" transactions --rows "$rows" --seed 42 --output "$file"
[[ -s $out ]] || echo "date,commit,cores,cpu,load1,suite,config,metric,value,unit" >"$out"
"$venv/bin/python" "$here/bench_peers.py" "$file" "$runs" "$out" "$bin" "$(git -C "$root" rev-parse --short HEAD)" "$engines"
