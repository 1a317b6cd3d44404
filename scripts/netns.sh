#!/usr/bin/env bash
# A network of separate hosts on one machine, made of network namespaces, for running
# kappa clusters across a real network path (veth pairs and a bridge, real TCP).
#
#   scripts/netns.sh up NAME N       make hosts NAME-h0..NAME-h(N-1), host I at 10.77.0.(I+1)
#   scripts/netns.sh down NAME       remove them
#   scripts/netns.sh exec NAME I CMD...   run CMD on host I
#   scripts/netns.sh ssh HOST CMD    stand-in for ssh: run CMD (a shell command) on the
#                                    host with address HOST, in the network KAPPA_NETNS
#   scripts/netns.sh cluster N [--port P] -- JOB ARGS...
#                                    make a network, run the job with scripts/cluster.sh
#                                    (one process per host, ssh replaced by this script),
#                                    and remove the network again
#
# Everything lives inside namespaces this script creates: the bridge sits in NAME-sw,
# each host's eth0 is one end of a veth pair whose other end is on that bridge, so the
# machine's own network is not touched and several networks (even with the same
# addresses) can exist side by side. Needs root and `ip`; without them it says so and
# exits 77 (skipped).
set -euo pipefail

SKIP=77
subnet=10.77.0

need_root() {
    if [[ $(id -u) != 0 ]]; then
        echo "netns: skipped: network namespaces need root (running as uid $(id -u))" >&2
        exit "$SKIP"
    fi
    if ! command -v ip >/dev/null; then
        echo "netns: skipped: the 'ip' command (iproute2) is not installed" >&2
        exit "$SKIP"
    fi
}

up() {
    local name=$1 n=$2 i sw="$1-sw"
    need_root
    if ! ip netns add "$sw" 2>/dev/null; then
        echo "netns: skipped: cannot create network namespaces here ('ip netns add' failed)" >&2
        exit "$SKIP"
    fi
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    for ((i = 0; i < n; i++)); do
        local ns="$name-h$i"
        ip netns add "$ns"
        ip -n "$ns" link add eth0 type veth peer name "h$i" netns "$sw"
        ip -n "$sw" link set "h$i" master br0 up
        ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
    done
}

down() {
    local name=$1 ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        if [[ $ns == "$name-sw" || $ns == "$name"-h[0-9]* ]]; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

ns_of_address() {
    local host=$1 last
    [[ $host == "$subnet".* ]] || { echo "netns: $host is not a host of this network ($subnet.0/24)" >&2; exit 2; }
    last=${host##*.}
    echo "${KAPPA_NETNS:?KAPPA_NETNS names the network}-h$((last - 1))"
}

case ${1:-} in
up)
    [[ $# == 3 ]] || { echo "usage: $0 up NAME N" >&2; exit 2; }
    up "$2" "$3"
    ;;
down)
    [[ $# == 2 ]] || { echo "usage: $0 down NAME" >&2; exit 2; }
    down "$2"
    ;;
exec)
    [[ $# -ge 4 ]] || { echo "usage: $0 exec NAME I CMD..." >&2; exit 2; }
    name=$2 i=$3
    shift 3
    exec ip netns exec "$name-h$i" "$@"
    ;;
ssh)
    [[ $# -ge 3 ]] || { echo "usage: $0 ssh HOST CMD..." >&2; exit 2; }
    ns=$(ns_of_address "$2")
    shift 2
    # Like ssh: the arguments joined by spaces form one command for the remote shell.
    exec ip netns exec "$ns" sh -c "$*"
    ;;
cluster)
    shift
    [[ $# -ge 1 ]] || { echo "usage: $0 cluster N [--port P] -- JOB ARGS..." >&2; exit 2; }
    n=$1
    shift
    port=2101
    if [[ ${1:-} == --port ]]; then
        port=$2
        shift 2
    fi
    [[ ${1:-} == "--" ]] || { echo "usage: $0 cluster N [--port P] -- JOB ARGS..." >&2; exit 2; }
    shift
    need_root
    name="kappa$$"
    hosts=$(mktemp)
    trap 'down "$name"; rm -f "$hosts"' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    up "$name" "$n"
    for ((i = 0; i < n; i++)); do
        echo "$subnet.$((i + 1)):$port"
    done >"$hosts"
    here=$(cd "$(dirname "$0")" && pwd)
    status=0
    KAPPA_NETNS=$name KAPPA_SSH="$here/netns.sh ssh" "$here/cluster.sh" "$hosts" -- "$@" || status=$?
    exit "$status"
    ;;
*)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
