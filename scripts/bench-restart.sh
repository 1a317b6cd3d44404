#!/usr/bin/env bash
# Restart time of a transactions job after a crash: from process start to its first new
# output row, and to its end.
#
#   [KAPPA_JOB=fraud_signals] scripts/bench-restart.sh ROWS CRASH_AT [RUNS] [-- JOB ARGS]
#
# Generates a time-ordered `gen transactions --rows ROWS` once (in $KAPPA_BENCH_DIR,
# default /tmp/kappa-bench), runs `$KAPPA_JOB JOB ARGS --lateness 5m -w 2
# --checkpoint-every 1s` (default: `category_totals --window 1h`) with
# KAPPA_CRASH_AT=CRASH_AT (`snapshotted:N` after the Nth
# complete snapshot round; `renamed:N` after the (N-1)th output commit), restarts it
# with the same command, and polls the output until it grows past its committed length.
# Each run's output is compared with an uninterrupted run's. Needs a release build.
set -euo pipefail

rows=${1:?rows}
crash=${2:?crash point}
runs=${3:-3}
shift $(($# < 3 ? $# : 3))
[[ ${1:-} == -- ]] && shift
here=$(cd "$(dirname "$0")" && pwd)
bin=${KAPPA_BIN:-$here/../target/release}
dir=${KAPPA_BENCH_DIR:-/tmp/kappa-bench}
data="$dir/transactions-$rows-ordered.csv"
job=${KAPPA_JOB:-category_totals}
if (($# == 0)) && [[ $job == category_totals ]]; then set -- --window 1h; fi
for b in "$job" gen; do
    [[ -x $bin/$b ]] || { echo "$0: error: $bin/$b missing; run cargo build --release" >&2; exit 2; }
done
mkdir -p "$dir"
[[ -s $data ]] || "$bin/gen" transactions --rows "$rows" --seed 1 --ordered --jitter 1m -o "$data" 2>/dev/null
args=(--input "$data" --lateness 5m -w 2 "$@")
reference="$dir/restart-reference-$job-$rows.csv"
"$bin/$job" "${args[@]}" -q --output "$reference"

now() { date +%s.%N; }
for run in $(seq "$runs"); do
    work=$(mktemp -d "$dir/restart.XXXX")
    ck=(--output "$work/out.csv" --checkpoint "$work/ck" --checkpoint-every 1s)
    KAPPA_CRASH_AT=$crash "$bin/$job" "${args[@]}" "${ck[@]}" -q 2>/dev/null || true
    committed=$(awk '{print $2}' "$work/ck/p0/commit-output")
    start=$(now)
    "$bin/$job" "${args[@]}" "${ck[@]}" 2>"$work/stderr" &
    pid=$!
    first=""
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -z $first && $(stat -c %s "$work/out.csv") -gt $committed ]]; then first=$(now); fi
        sleep 0.005
    done
    wait "$pid"
    end=$(now)
    first=${first:-$end}
    same=$(cmp -s "$work/out.csv" "$reference" && echo identical || echo DIFFERENT)
    resumed=$(grep -o "round [0-9]*" "$work/stderr" || echo "no snapshot")
    printf 'run %d: first new output %.3f s, restart total %.3f s, %s, output %s\n' \
        "$run" "$(echo "$first - $start" | bc)" "$(echo "$end - $start" | bc)" "$resumed" "$same"
    rm -rf "$work"
done
