#!/usr/bin/env bash
# Footprint of the control plane and the proxy with N services (default 200), each with one
# instance of a real example service in one region. Measures and prints; it is not a test.
#   bash bench/footprint/run.sh [BUILD_DIR] [N] [IDLE_SECONDS]
# Prints: the time to deploy every first release (all promoted), then for the server and the
# proxy their resident memory (VmRSS, and the peak VmHWM) and the CPU they used while idle for
# IDLE_SECONDS (default 20), the store's size, and the instances' total memory for scale.
# FOOTPRINT_HOLD=S keeps everything running S seconds before measuring, printing the server's pid
# (for a profiler: perf record --call-graph dwarf -p PID -- sleep 4).
# Ports: server 16070/16071, services 16100..16100+N-1 (loopback), instances 20000-26999.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${2:-200}
IDLE=${3:-20}
[ "$N" -ge 1 ] && [ "$N" -le 600 ] || { echo "footprint: N must be 1..600" >&2; exit 2; }
. "$ROOT/bench/server.sh"
bench_server footprint "${1:-$ROOT/build}" 16070

{
	printf 'kind: Environment\nname: production\nregions: [{name: local}]\n'
	printf 'policy: {allow_unknown_consumers: true}\n'
	for i in $(seq 0 $((N - 1))); do
		printf -- '---\nkind: Service\nname: svc%03d\nlisten_port: %d\n' "$i" $((16100 + i))
		printf 'health: {path: /healthz, interval: 1s}\ninstances: 1\n'
	done
} >"$D/all.yaml"
"$S" apply -f "$D/all.yaml" >/dev/null
for i in $(seq 0 $((N - 1))); do
	"$S" release push "$(printf 'svc%03d' "$i")" v1 --artifact "$EX/metadata-v1" >/dev/null
done

t0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
	"$S" deploy "$(printf 'svc%03d' "$i")" v1 >/dev/null
done
promoted=0
for _ in $(seq 600); do
	promoted=$(curl -s "$SLUICE_SERVER/v1/status" | grep -o '"stable": "v1"' | wc -l || true)
	[ "$promoted" -ge "$N" ] && break
	sleep 0.5
done
t1=$(date +%s.%N)
[ "$promoted" -ge "$N" ] || { echo "footprint: only $promoted of $N promoted"; tail -20 "$D/server.log"; exit 1; }
PROXY=$(cat "$D/data/proxy.pid")
ok=0
for i in $(seq 0 $((N - 1))); do curl -sf -o /dev/null "http://127.0.0.1:$((16100 + i))/items/1" && ok=$((ok + 1)); done

hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
[ -n "${FOOTPRINT_HOLD:-}" ] && { echo "holding: server pid $SERVER"; sleep "$FOOTPRINT_HOLD"; }
sleep 2 # the last promotions' old-version bookkeeping settles
s0=$(cpu "$SERVER") p0=$(cpu "$PROXY")
sleep "$IDLE"
s1=$(cpu "$SERVER") p1=$(cpu "$PROXY")
inst_kb=0
for p in $(pgrep -f "$D/data/artifacts"); do inst_kb=$((inst_kb + $(kb "$p" VmRSS))); done

calc() { awk "BEGIN {print $*}"; }
printf 'services                 %d (each 1 instance of examples/metadata-v1, 1 region)\n' "$N"
printf 'deploy all (promoted)    %.1f s\n' "$(calc "$t1 - $t0")"
printf 'routes answering         %d of %d\n' "$ok" "$N"
printf 'server  RSS              %6.1f MB  (%.1f MB of it its own heap and stacks, the rest shared library pages; peak %.1f MB)\n' \
	"$(calc "$(kb "$SERVER" VmRSS) / 1024")" "$(calc "$(kb "$SERVER" RssAnon) / 1024")" "$(calc "$(kb "$SERVER" VmHWM) / 1024")"
printf 'server  CPU while idle   %6.1f %% of one core over %d s\n' "$(calc "($s1 - $s0) * 100 / $hz / $IDLE")" "$IDLE"
printf 'proxy   RSS              %6.1f MB  (%.1f MB of it its own heap and stacks, the rest shared library pages; peak %.1f MB)\n' \
	"$(calc "$(kb "$PROXY" VmRSS) / 1024")" "$(calc "$(kb "$PROXY" RssAnon) / 1024")" "$(calc "$(kb "$PROXY" VmHWM) / 1024")"
printf 'proxy   CPU while idle   %6.1f %% of one core\n' "$(calc "($p1 - $p0) * 100 / $hz / $IDLE")"
printf 'store   size             %6.1f MB  (sluice.db and its WAL)\n' \
	"$(du -cb "$D/data"/*.db* 2>/dev/null | tail -1 | awk '{print $1 / 1048576}')"
printf 'instances RSS (all)      %6.1f MB  (%d processes, for scale: not sluice)\n' \
	"$(calc "$inst_kb / 1024")" "$(pgrep -fc "$D/data/artifacts")"
