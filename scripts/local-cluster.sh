#!/usr/bin/env bash
# Runs one kappa job as N processes on this machine, over loopback.
#
#   scripts/local-cluster.sh [--restart R] N -- JOB [ARGS...]
#
# Starts `JOB ARGS -n N -p I` for I in 0..N-1 (add -w and --port-base to ARGS as
# needed: process I listens on localhost:PORT_BASE+I). Process 0's stdout is the job's
# result; every log line is prefixed with `[pI]`. Waits for all; when one fails, stops
# the others and exits 1 naming the first process that failed. With `--restart R`, a
# failure stops all and starts all again, up to R times: with `--checkpoint DIR` in
# ARGS the job resumes from its checkpoint.
set -euo pipefail

usage() {
    echo "usage: $0 [--restart R] N -- JOB [ARGS...]" >&2
    exit 2
}

restarts=0
if [[ ${1:-} == --restart ]]; then
    [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "$0: error: --restart needs a number of restarts" >&2; exit 2; }
    restarts=$2
    shift 2
fi

[[ $# -ge 3 && $2 == "--" ]] || usage
n=$1
shift 2
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$0: error: N must be a positive number, not '$n'" >&2; exit 2; }
job=$1
shift
if [[ $job != */* ]]; then
    # A bare job name: the one on PATH, else the release build next to this repository.
    # Either way a path, so the check below does not test the bare name as a relative path.
    if found=$(command -v "$job"); then
        job=$found
    else
        job="$(cd "$(dirname "$0")/.." && pwd)/target/release/$job"
    fi
fi
[[ -x $job ]] || { echo "$0: error: $job is not an executable job" >&2; exit 2; }

SUPERVISE_NAME=local-cluster
# shellcheck source=SCRIPTDIR/lib/supervise.sh
source "$(dirname "$0")/lib/supervise.sh"
supervise_trap
for ((attempt = 0; ; attempt++)); do
    SUPERVISE_PIDS=()
    SUPERVISE_LABELS=()
    SUPERVISE_LIVE=()
    for ((p = 0; p < n; p++)); do
        supervise_start "$p" "p$p" "$job" "$@" -n "$n" -p "$p"
    done
    echo "local-cluster: started $n processes: pids ${SUPERVISE_PIDS[*]}" >&2
    if supervise_wait; then
        exit 0
    fi
    ((attempt < restarts)) || exit 1
    echo "local-cluster: restarting all $n processes ($((attempt + 1)) of $restarts restarts)" >&2
done
