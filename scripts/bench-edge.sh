#!/usr/bin/env bash
# Bytes that cross the network per million readings when an edge site pre-aggregates
# (sensor_stats --ship partials, the default) against shipping every reading to the
# centre (--ship readings). Two hosts in network namespaces (scripts/netns.sh): process 0
# is the centre, process 1 an edge site reading its own shard; the figure is what left the
# edge host's interface while the job ran (timely's data and progress traffic, TCP
# headers included). Needs root and iproute2; exits 77 without them.
#
#   scripts/bench-edge.sh [ROWS]      ROWS readings per site (default 1000000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${KAPPA_BIN:-$here/../target/release}
rows=${1:-1000000}
work=$(mktemp -d)
net=edge$$
trap '"$here/netns.sh" down "$net" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$bin/gen" sensors --sensors 100 --rows "$rows" --seed 1 --metadata "$work/meta.csv" -o "$work/site-0.csv"
"$bin/gen" sensors --sensors 100 --rows "$rows" --seed 2 -o "$work/site-1.csv"
printf '10.77.0.1:2101\n10.77.0.2:2101\n' > "$work/hosts"
"$here/netns.sh" up "$net" 2

sent() { ip netns exec "$net-h1" cat /sys/class/net/eth0/statistics/tx_bytes; }

echo "ship,rows_per_site,edge_tx_bytes,bytes_per_million_readings,seconds"
for ship in partials readings; do
    before=$(sent)
    start=$(date +%s.%N)
    for p in 1 0; do
        ip netns exec "$net-h$p" "$bin/sensor_stats" --input "$work/site-{p}.csv" \
            --sensors "$work/meta.csv" --ship "$ship" -n 2 -p "$p" -h "$work/hosts" -q \
            --output "$work/out-$ship.csv" &
    done
    wait
    end=$(date +%s.%N)
    bytes=$(( $(sent) - before ))
    echo "$ship,$rows,$bytes,$(( bytes * 1000000 / rows )),$(echo "$end - $start" | bc)"
done
cmp "$work/out-partials.csv" "$work/out-readings.csv" >/dev/null ||
    { echo "bench-edge: the two runs' outputs differ" >&2; exit 1; }
