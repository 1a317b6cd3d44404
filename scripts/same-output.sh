#!/usr/bin/env bash
# Runs every job over a fixed set of inputs and configurations and writes each run's
# output, rejects, late and side files into one folder, so that two builds can be
# compared byte for byte:
#
#   scripts/same-output.sh OLD_BIN_DIR /tmp/old
#   scripts/same-output.sh target/release /tmp/new
#   diff -r /tmp/old /tmp/new && echo identical
#
# Inputs: the fixtures, and files written by the first build's `gen` (so both builds
# read the same bytes). Configurations: batch and incremental, -w 1 and -w 3, windows.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BIN_DIR OUT_DIR" >&2
  exit 2
fi
bin=$(cd "$1" && pwd)
out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
data=${SAME_OUTPUT_DATA:-/tmp/kappa-same-output-data}
mkdir -p "$out" "$data"

# Shared inputs, generated once by whichever build runs first.
if [ ! -f "$data/done" ]; then
  "$bin/gen" transactions --rows 200000 --seed 7 -o "$data/tx.csv"
  "$bin/gen" transactions --rows 50000 --seed 8 --burst-every 500 -o "$data/tx-bursts.csv"
  "$bin/gen" transactions --rows 50000 --seed 9 --ordered --jitter 2s --days 1 -o "$data/tx-ordered.csv"
  "$bin/gen" clicks --rows 100000 --seed 7 -o "$data/clicks.jsonl"
  "$bin/gen" access-log --rows 100000 --seed 7 -o "$data/access.log"
  cp "$here/tests/fixtures/access_log_elastic_sample.log" "$data/elastic.log"
  # Bad lines mixed into good ones.
  { head -n 1000 "$data/tx.csv"; printf 'x,y\n\nT1,C1,Books,abc,1,2026-10-01T00:00:00Z,30,Paris,Card,1.00\n'; sed -n 1001,2000p "$data/tx.csv"; } > "$data/tx-bad.csv"
  { head -n 500 "$data/clicks.jsonl"; printf '{"event_id": 1\nnot json\n'; sed -n 501,1000p "$data/clicks.jsonl"; } > "$data/clicks-bad.jsonl"
  touch "$data/done"
fi

run() {
  local name=$1
  shift
  local dir="$out/$name"
  mkdir -p "$dir"
  ( cd "$dir" && "$@" --output out --rejects rejects -q >stdout 2>stderr; echo $? > code ) || true
}

for w in 1 3; do
  for mode in batch incremental; do
    run "ct-$mode-w$w" "$bin/category_totals" --input "$data/tx.csv" --mode "$mode" -w "$w"
    run "ct-$mode-1h-w$w" "$bin/category_totals" --input "$data/tx.csv" --mode "$mode" --window 1h -w "$w"
    run "ct-$mode-slide-w$w" "$bin/category_totals" --input "$data/tx.csv" --mode "$mode" --window 1d --slide 6h -w "$w"
    run "ct-$mode-bad-w$w" "$bin/category_totals" --input "$data/tx-bad.csv" --mode "$mode" -w "$w" --format table
    run "ct-$mode-late-w$w" "$bin/category_totals" --input "$data/tx-ordered.csv" --mode "$mode" --window 1m -w "$w" --lateness 1s --late "late"
    run "ec-$mode-w$w" "$bin/event_counts" --input "$data/clicks.jsonl" --mode "$mode" -w "$w"
    run "ec-$mode-1h-w$w" "$bin/event_counts" --input "$data/clicks.jsonl" --mode "$mode" --window 1h -w "$w" --format json
    run "ec-$mode-bad-w$w" "$bin/event_counts" --input "$data/clicks-bad.jsonl" --mode "$mode" -w "$w"
    run "ip-$mode-w$w" "$bin/ip_counts" --input "$data/access.log" --mode "$mode" -w "$w" --top 10 --alerts "alerts" --report "report"
    run "ip-$mode-1h-w$w" "$bin/ip_counts" --input "$data/access.log" --mode "$mode" --window 1h -w "$w" --alerts "alerts"
    run "ip-$mode-elastic-w$w" "$bin/ip_counts" --input "$data/elastic.log" --mode "$mode" -w "$w" --report "report" --format table
    run "er-$mode-w$w" "$bin/ecommerce_report" --input "$data/tx.csv" --mode "$mode" -w "$w" --emit-every 1d
    run "er-$mode-table-w$w" "$bin/ecommerce_report" --input "$data/tx-bad.csv" --mode "$mode" -w "$w" --format table
  done
  run "fs-w$w" "$bin/fraud_signals" --input "$data/tx-bursts.csv" -w "$w"
  run "fs-json-w$w" "$bin/fraud_signals" --input "$data/tx.csv" -w "$w" --format json
  run "ct-default-w$w" "$bin/category_totals" -w "$w"
  run "ip-default-w$w" "$bin/ip_counts" -w "$w"
done
# Usage errors: the message and the exit code.
run "usage-window" "$bin/category_totals" --window 1m --slide 7s
run "usage-missing" "$bin/category_totals" --input /nonexistent
run "usage-fraud-incremental" "$bin/fraud_signals" --mode incremental
echo "$(find "$out" -name out | wc -l) runs in $out"
