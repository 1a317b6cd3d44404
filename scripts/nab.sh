#!/usr/bin/env bash
# Runs the anomalies job over the whole NAB corpus (58 files) and scores it with the
# project's NAB scorer (nab_score), printing the normalised score per profile:
#
#   scripts/nab.sh entropy                 # ranges learned causally: one run, 58 keys
#   scripts/nab.sh entropy --range nab     # NAB's convention: each file's min and max given
#                                          # (and, for cad, its rest period from the file's length)
#   scripts/nab.sh gaussian -w 2
#
# Environment: KAPPA_NAB (the corpus; default ../shared/fixtures/nab beside the repo or
# its worktree directory), KAPPA_BIN (default target/release), KAPPA_NAB_OUT (where the
# results go; default a temporary directory, removed at the end). NAB scores every row,
# including the rows some of its files repeat, so the job keeps duplicates here.
set -euo pipefail

usage() {
  echo "usage: $0 DETECTOR [--range learned|nab] [-w N]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
detector=$1
shift
range=learned
workers=1
while [ $# -gt 0 ]; do
  case $1 in
    --range) [ $# -ge 2 ] || usage; range=$2; shift 2 ;;
    -w) [ $# -ge 2 ] || usage; workers=$2; shift 2 ;;
    *) usage ;;
  esac
done
case $range in learned|nab) ;; *) usage ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${KAPPA_BIN:-$here/target/release}
nab=${KAPPA_NAB:-}
if [ -z "$nab" ]; then
  for candidate in "$here/../shared/fixtures/nab" "$here/../../shared/fixtures/nab"; do
    if [ -f "$candidate/labels/combined_windows.json" ]; then
      nab=$candidate
      break
    fi
  done
fi
if [ -z "$nab" ] || [ ! -d "$nab/data" ]; then
  echo "$0: error: no NAB corpus: set KAPPA_NAB" >&2
  exit 2
fi
for b in anomalies nab_score; do
  if [ ! -x "$bin/$b" ]; then
    echo "$0: error: no $bin/$b: run cargo build --release" >&2
    exit 2
  fi
done

out=${KAPPA_NAB_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

files=()
while IFS= read -r f; do
  files+=("${f#"$nab/data/"}")
done < <(find "$nab/data" -mindepth 2 -maxdepth 2 -name '*.csv' | sort)

if [ "$range" = learned ]; then
  # One input, one key per file: timestamp,value,key.
  {
    echo "timestamp,value,key"
    for f in "${files[@]}"; do
      awk -v key="$f" 'NR > 1 { sub(/\r$/, ""); print $0 "," key }' "$nab/data/$f"
    done
  } > "$out/corpus.csv"
  "$bin/anomalies" --input "$out/corpus.csv" --detector "$detector" -w "$workers" --keep-duplicates \
    --labels "$nab/labels/combined_windows.json" --output "$out/scores.csv" 2> "$out/job.log"
  grep -E '(overall|summary):' "$out/job.log" >&2 || true
  "$bin/nab_score" --nab "$nab" "$out/scores.csv"
else
  # NAB's convention: each file on its own, with its min and max given in advance.
  results=()
  for f in "${files[@]}"; do
    name=${f//\//_}
    minmax=$(tail -n +2 "$nab/data/$f" | awk -F, 'NR == 1 { lo = $2 + 0; hi = lo }
      { v = $2 + 0; if (v < lo) lo = v; if (v > hi) hi = v }
      END { if (lo < hi) printf "%.17g:%.17g", lo, hi }')
    args=(--input "$nab/data/$f" --key "$f" --detector "$detector" -w "$workers" -q --keep-duplicates --output "$out/$name")
    if [ -n "$minmax" ]; then
      args+=("--range=$minmax")
    fi
    if [ "$detector" = cad ]; then
      # NAB also gives CAD OSE a fifth of the file's probationary period as its rest.
      rows=$(tail -n +2 "$nab/data/$f" | wc -l)
      args+=(--rest "$(awk -v n="$rows" 'BEGIN { p = int(0.15 * n); if (p > 750) p = 750; print int(p / 5) }')")
    fi
    "$bin/anomalies" "${args[@]}"
    results+=("$out/$name")
  done
  "$bin/nab_score" --nab "$nab" "${results[@]}"
fi
