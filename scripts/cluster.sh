#!/usr/bin/env bash
# Runs one kappa job as one process per hostfile line, over ssh.
#
#   scripts/cluster.sh HOSTFILE -- JOB [ARGS...]
#
# HOSTFILE has one `host:port` a line (blank lines and `#` comments allowed), the
# address process I listens on. For every line I, runs on that host
#
#   cd $KAPPA_REMOTE_DIR && exec JOB ARGS -n N -p I -h HOSTS
#
# where HOSTS is a copy of the address list written on that host, so hosts need no
# shared storage (JOB and any input paths must exist there; relative paths are taken
# from KAPPA_REMOTE_DIR, by default this directory). Process 0's stdout is the job's
# result; every log line is prefixed with `[pI HOST]`. When one process fails, the
# others are stopped and the script exits 1 naming the first process that failed.
#
# Environment: KAPPA_SSH (default `ssh -o BatchMode=yes`), KAPPA_REMOTE_DIR (default
# $PWD), KAPPA_STOP_GRACE (seconds the others get to stop by themselves, default 3).
set -euo pipefail

usage() {
    echo "usage: $0 HOSTFILE -- JOB [ARGS...]" >&2
    exit 2
}

[[ $# -ge 3 && $2 == "--" ]] || usage
hostfile=$1
shift 2
job=$1
shift
[[ -r $hostfile ]] || { echo "$0: error: cannot read hostfile $hostfile" >&2; exit 2; }

addresses=()
while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    line=$(echo "$line" | tr -d '[:space:]')
    [[ -n $line ]] || continue
    [[ $line == *:* ]] || { echo "$0: error: hostfile $hostfile: '$line' is not host:port" >&2; exit 2; }
    addresses+=("$line")
done <"$hostfile"
n=${#addresses[@]}
((n > 0)) || { echo "$0: error: hostfile $hostfile lists no addresses" >&2; exit 2; }

read -r -a ssh <<<"${KAPPA_SSH:-ssh -o BatchMode=yes}"
remote_dir=${KAPPA_REMOTE_DIR:-$PWD}
run="kappa-$(date +%s)-$$"

host_of() {
    local host=${1%:*}
    host=${host#[}
    echo "${host%]}"
}

# The command that process I runs on its host, quoted for the remote shell.
remote_command() {
    local p=$1 files="/tmp/$run-p$1"
    shift
    printf 'cd %q && printf %%s\\\\n %s > %q && echo $$ > %q && exec %s -n %d -p %d -h %q' \
        "$remote_dir" "$(printf '%q ' "${addresses[@]}")" "$files.hosts" "$files.pid" \
        "$(printf '%q ' "$job" "$@")" "$n" "$p" "$files.hosts"
}

# shellcheck disable=SC2317 # called through SUPERVISE_STOP_HOOK
stop_remote() {
    local p=$1 signal=$2
    "${ssh[@]}" "$(host_of "${addresses[p]}")" \
        "kill -$signal \$(cat /tmp/$run-p$p.pid 2>/dev/null) 2>/dev/null" </dev/null >/dev/null 2>&1 || true
}

cleanup_remote() {
    local p
    for p in "${!addresses[@]}"; do
        "${ssh[@]}" "$(host_of "${addresses[p]}")" "rm -f /tmp/$run-p$p.hosts /tmp/$run-p$p.pid" \
            </dev/null >/dev/null 2>&1 &
    done
    wait
}

SUPERVISE_NAME=cluster
# shellcheck source=SCRIPTDIR/lib/supervise.sh
source "$(dirname "$0")/lib/supervise.sh"
SUPERVISE_STOP_HOOK=stop_remote
supervise_trap
for p in "${!addresses[@]}"; do
    host=$(host_of "${addresses[p]}")
    supervise_start "$p" "p$p $host" "${ssh[@]}" "$host" "$(remote_command "$p" "$@")"
done
echo "cluster: started $n processes on ${addresses[*]} (local pids ${SUPERVISE_PIDS[*]})" >&2
status=0
supervise_wait || status=$?
cleanup_remote
exit "$status"
