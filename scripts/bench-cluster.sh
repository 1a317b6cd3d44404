#!/usr/bin/env bash
# Throughput of category_totals (batch) in one process and split over two processes,
# on loopback and across network namespaces (a real veth/bridge path).
#
#   scripts/bench-cluster.sh [ROWS] [RUNS]      defaults: 10000000 rows, 3 runs
#
# Generates `gen transactions --rows ROWS` once (in $KAPPA_BENCH_DIR, default
# /tmp/kappa-bench), then runs each configuration RUNS times and prints the median
# wall time and records/s. Needs a release build (cargo build --release); the
# namespace run needs root and is skipped without it.
set -euo pipefail

rows=${1:-10000000}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/../target/release"
dir=${KAPPA_BENCH_DIR:-/tmp/kappa-bench}
data="$dir/transactions-$rows.csv"
for b in category_totals gen; do
    [[ -x $bin/$b ]] || { echo "$0: error: $bin/$b missing; run cargo build --release" >&2; exit 2; }
done
mkdir -p "$dir"
if [[ ! -s $data ]]; then
    echo "generating $rows rows into $data" >&2
    "$bin/gen" transactions --rows "$rows" --seed 1 --output "$data"
fi

# Runs one configuration once; prints "SECONDS" of wall time, checks the row count.
run_once() {
    local log start end
    log=$(mktemp)
    start=$(date +%s.%N)
    if ! "$@" >/dev/null 2>"$log"; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    end=$(date +%s.%N)
    if ! grep -q "summary: read $rows records" "$log"; then
        echo "$0: error: expected $rows records:" >&2
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    echo "$end - $start" | bc -l
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench() {
    local label=$1 times=() t i
    shift
    for ((i = 0; i < runs; i++)); do
        if ! t=$(run_once "$@"); then
            echo "$label: failed" >&2
            return 0
        fi
        times+=("$t")
    done
    t=$(printf '%s\n' "${times[@]}" | median)
    printf '%-36s median %6.2f s  %10.0f records/s  (runs: %s)\n' \
        "$label" "$t" "$(echo "$rows / $t" | bc -l)" "$(printf '%.2f ' "${times[@]}")"
}

job="$bin/category_totals"
echo "category_totals batch over $rows rows, $runs runs each, $(nproc) cores"
bench "-n 1 -w 2" "$job" --input "$data" -w 2
bench "-n 2 -w 1, loopback" "$here/local-cluster.sh" 2 -- "$job" --input "$data" --port-base 7901
if [[ $(id -u) == 0 ]] && command -v ip >/dev/null; then
    bench "-n 2 -w 1, network namespaces" "$here/netns.sh" cluster 2 -- "$job" --input "$data"
else
    echo "-n 2 -w 1, network namespaces: skipped (needs root and ip)"
fi
