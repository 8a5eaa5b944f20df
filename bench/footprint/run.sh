#!/usr/bin/env bash
# Footprint of the control plane and the proxy with N services (default 200), each with one
# instance per region. Measures and prints; it is not a test.
#   bash bench/footprint/run.sh [BUILD_DIR] [N] [IDLE_SECONDS]
# Prints: the time to deploy every first release (all promoted), then for the server and the
# proxy their resident memory (VmRSS, and the peak VmHWM) and the CPU they used while idle for
# IDLE_SECONDS (default 20), the store's size, and the instances' total memory for scale.
# Settings (environment):
#   FOOTPRINT_REGIONS=R    regions of the one environment, 1..3 (default 1), one wave each
#   FOOTPRINT_STUB=1       deploy bench/footprint/footprint-stub (a one-thread epoll answerer of
#                          a few hundred KB) instead of examples/metadata-v1
#   FOOTPRINT_HEALTH=D     the services' health check interval (default 1s)
#   FOOTPRINT_SCALE=1      then also measure (docs/architecture.md, "Footprint"): `sluice status`
#                          of every service; the time from the deploy call of a canary (svc000 v2)
#                          to the first request its proxy sends to the canary; one rolling
#                          deployment alone (svc001 v2, `deploy --wait`) and then 50 of other
#                          services at once (svc002..svc051), each timed the same way
#   FOOTPRINT_PROFILE=CMD  run CMD during the 50 deployments at once, {} replaced by the server's
#                          pid: 'perf record -g -o /tmp/p.data -p {}', 'strace -c -w -o /tmp/s -p {}'
#   FOOTPRINT_EVENTS=FILE  the events of svc002's deployment of the 50, as the API gives them
#   FOOTPRINT_HOLD=S       keep everything running S seconds before the idle measurement,
#                          printing the server's pid (perf record --call-graph dwarf -p PID)
# Ports: server 16070/16071, service S in region r 10100+S+1000*r (loopback), instances
# 20000-26999.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${2:-200}
IDLE=${3:-20}
R=${FOOTPRINT_REGIONS:-1}
HEALTH=${FOOTPRINT_HEALTH:-1s}
[ "$N" -ge 1 ] && [ "$N" -le 1000 ] || { echo "footprint: N must be 1..1000" >&2; exit 2; }
[ "$R" -ge 1 ] && [ "$R" -le 3 ] || { echo "footprint: FOOTPRINT_REGIONS must be 1..3" >&2; exit 2; }
[ -z "${FOOTPRINT_SCALE:-}" ] || [ "$N" -ge 52 ] || { echo "footprint: FOOTPRINT_SCALE needs N >= 52" >&2; exit 2; }
. "$ROOT/bench/server.sh"
bench_server footprint "${1:-$ROOT/build}" 16070
export SLUICE_DATA=$D/data # the CLI reads the admin token there
for _ in $(seq 50); do [ -s "$D/data/admin.token" ] && break; sleep 0.1; done
AUTH="Authorization: Bearer $(cat "$D/data/admin.token")"
if [ -n "${FOOTPRINT_STUB:-}" ]; then
	ART=$B/bench/footprint/footprint-stub ARTNAME=footprint-stub
else
	ART=$EX/metadata-v1 ARTNAME=examples/metadata-v1
fi
name() { printf 'svc%03d' "$1"; }

# At most 1000 manifests per file: the environment, then the services 500 at a time.
{
	printf 'kind: Environment\nname: production\nregions:\n'
	for r in $(seq 0 $((R - 1))); do printf '  - {name: r%d, port_offset: %d}\n' "$r" $((1000 * r)); done
	printf 'policy: {allow_unknown_consumers: true}\n'
} >"$D/env.yaml"
"$S" apply -f "$D/env.yaml" >/dev/null
for lo in $(seq 0 500 $((N - 1))); do
	for i in $(seq "$lo" $((lo + 499 < N - 1 ? lo + 499 : N - 1))); do
		printf -- '---\nkind: Service\nname: %s\nlisten_port: %d\n' "$(name "$i")" $((10100 + i))
		printf 'health: {path: /healthz, interval: %s}\ninstances: 1\n' "$HEALTH"
		[ -n "${FOOTPRINT_STUB:-}" ] && printf 'run: {args: ["--port", "{port}", "--version", "{version}"]}\n'
		# svc000 is the canary of the scale measurements; the others roll
		[ "$i" -gt 0 ] && printf 'strategy: {type: rolling}\n'
	done >"$D/svc$lo.yaml"
	"$S" apply -f "$D/svc$lo.yaml" >/dev/null
done
for i in $(seq 0 $((N - 1))); do
	"$S" release push "$(name "$i")" v1 --artifact "$ART" >/dev/null
done

status_count() { curl -s -H "$AUTH" "$SLUICE_SERVER/v1/status" | grep -o "\"stable\": \"$1\"" | wc -l || true; }
t0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
	"$S" deploy "$(name "$i")" v1 >/dev/null
done
promoted=0
for _ in $(seq 1200); do
	promoted=$(status_count v1)
	[ "$promoted" -ge $((N * R)) ] && break
	sleep 0.5
done
t1=$(date +%s.%N)
[ "$promoted" -ge $((N * R)) ] || { echo "footprint: only $promoted of $((N * R)) regions promoted"; tail -20 "$D/server.log"; exit 1; }
# the proxy's serving process (its keeper, the pid in proxy.pid, holds only the listeners)
KEEPER=$(cat "$D/data/proxy.pid")
PROXY=$(pgrep -P "$KEEPER" | head -1)
PROXY=${PROXY:-$KEEPER}
ok=0
for r in $(seq 0 $((R - 1))); do
	for i in $(seq 0 $((N - 1))); do
		curl -sf -o /dev/null "http://127.0.0.1:$((10100 + i + 1000 * r))/items/1" && ok=$((ok + 1))
	done
done

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
printf 'services                 %d in %d region(s), 1 instance each of %s (%d instances)\n' "$N" "$R" "$ARTNAME" $((N * R))
printf 'deploy all (promoted)    %.1f s\n' "$(calc "$t1 - $t0")"
printf 'routes answering         %d of %d\n' "$ok" $((N * R))
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
[ -n "${FOOTPRINT_SCALE:-}" ] || exit 0

# --- scale: status, first canary traffic, 50 deployments at once ---
for i in 1 2 3 4 5; do
	a=$(date +%s%N)
	"$S" status >/dev/null
	echo $((($(date +%s%N) - a) / 1000000))
done | sort -n | awk '{v[NR] = $1} END {printf "status (CLI, every service) %d ms median, %d..%d ms over 5\n", v[3], v[1], v[5]}'

for i in 0 1; do "$S" release push "$(name "$i")" v2 --artifact "$ART" >/dev/null; done
for i in $(seq 2 51); do "$S" release push "$(name "$i")" v2 --artifact "$ART" >/dev/null; done
# The canary: the deploy call, then requests one after the other on one keep-alive connection
# to the service's first region until one is answered by v2.
python3 - "$S" 10100 <<'PY'
import http.client, subprocess, sys, time
s, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
t0 = time.monotonic()
subprocess.run([s, "deploy", "svc000", "v2"], check=True, stdout=subprocess.DEVNULL)
called = time.monotonic()
n = 0
while time.monotonic() - t0 < 30:
    try:
        c.request("GET", "/items/1")
        r = c.getresponse()
        r.read()
        n += 1
        if (r.getheader("X-Version") or "").startswith("v2"):
            print("first canary traffic     %.0f ms after the deploy call (%.0f ms after it returned; %d requests)"
                  % ((time.monotonic() - t0) * 1000, (time.monotonic() - called) * 1000, n))
            sys.exit(0)
    except (OSError, http.client.HTTPException):
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
print("first canary traffic     none within 30 s")
PY
"$S" rollback svc000 >/dev/null
for _ in $(seq 300); do
	[ "$(curl -s -H "$AUTH" "$SLUICE_SERVER/v1/deployments?service=svc000" | grep -c '"state": "running"\|"state": "queued"')" = 0 ] && break
	sleep 0.2
done
sleep 2

timed_deploy() { # SERVICE -> prints its --wait duration in ms, or "failed"
	local a
	a=$(date +%s%N)
	if "$S" deploy "$1" v2 --wait --timeout 10m >/dev/null 2>&1; then
		echo $((($(date +%s%N) - a) / 1000000))
	else echo failed; fi
}
alone=$(timed_deploy svc001)
printf 'one rolling deployment   %s ms alone (deploy --wait, %d region(s))\n' "$alone" "$R"
pids=()
[ -n "${FOOTPRINT_PROFILE:-}" ] && { ${FOOTPRINT_PROFILE//\{\}/$SERVER} 2>/dev/null & PROF=$!; }
for i in $(seq 2 51); do timed_deploy "$(name "$i")" >"$D/t$i" & pids+=($!); done
wait "${pids[@]}"
[ -n "${FOOTPRINT_PROFILE:-}" ] && { kill -INT "$PROF"; wait "$PROF" || true; }
[ -n "${FOOTPRINT_EVENTS:-}" ] && curl -s -H "$AUTH" "$SLUICE_SERVER/v1/deployments?service=svc002" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["deployments"][0]["id"])' |
	xargs -I{} curl -s -H "$AUTH" "$SLUICE_SERVER/v1/deployments/{}/events" >"$FOOTPRINT_EVENTS"
cat "$D"/t* | sort -n | awk -v alone="$alone" '{v[NR] = $1}
	END {printf "50 at once               %d ms median, %d..%d ms; slowest %.2fx the one alone\n",
		v[int((NR + 1) / 2)], v[1], v[NR], v[NR] / alone}'
grep -c failed "$D"/t* | awk -F: '$2 > 0 {n++} END {if (n) print "failed deployments: " n}'
