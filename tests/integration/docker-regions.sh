#!/usr/bin/env bash
# Integration (issue 12): regions on Docker hosts, everything else unchanged.
# Three Docker daemons of the test's own (scripts/docker-host.sh), on loopback with host
# networking: region east on h1 and h3 (two hosts: instances spread, a proxy on each), region
# west on h2. The example service metadata is built into images (the binary and its shared
# libraries, no registry) and pushed as image archives; the sluice binary is the proxies'
# image. A local environment beside it gives the local figure. Ports 30001-30201, 30070-30071.
# Under continuous load through the regions' proxies (sluice load, per region):
#   - a good release promoted across both regions with 0 failed requests
#   - a bad release rolled back by itself in the pilot region (east), west untouched
#   - west's daemon stopped mid-wave (east done, west's wave next): west fails, east finishes
#     (0 failed requests there), `sluice retry --region west` succeeds once the daemon is back
#   - kill -9 of the server mid-canary, restart: the deployment continues, and the containers
#     of every engine are exactly the instances `sluice status` shows (no duplicate, no orphan)
# Prints the time from deploy to the first canary request on Docker and on the local runtime.
# Exit 77 (skipped) only when dockerd is not installed. Usage: docker-regions.sh BUILD_DIR SRC_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
S=$B/src/sluice
EX=$B/examples
DH=$SRC/scripts/docker-host.sh
command -v dockerd >/dev/null || { echo "dockerd is not installed (scripts/deps.sh test): skipped"; exit 77; }
D=$(mktemp -d /tmp/sluice-it-dk.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:30070
export SLUICE_DATA="$D/data"
export SLUICE_DOCKER_CACHE=$D/cache
SERVER_PID=
LOADS=()
pass=0 fail=0
T0=$(date +%s)
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done; return 1; }
elapsed() { echo "[$(($(date +%s) - T0)) s] $*"; }

start_server() {
	"$S" server --data "$D/data" --listen 127.0.0.1:30070 --proxy-admin 127.0.0.1:30071 >>"$D/server.log" 2>&1 &
	SERVER_PID=$!
	wait_until 10 curl -sf -m 1 "$SLUICE_SERVER/v1/health" -o /dev/null || { tail -30 "$D/server.log"; exit 1; }
}
cleanup() {
	set +e
	for p in "${LOADS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		timeout 60 "$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SERVER_PID" 2>/dev/null
	fi
	[ -f "$D/data/proxy.pid" ] && kill -TERM "$(cat "$D/data/proxy.pid")" 2>/dev/null
	for h in h1 h2 h3; do "$DH" stop "$D/$h" >/dev/null 2>&1; done
	[ "$fail" -ne 0 ] && tail -60 "$D/server.log"
	if [ -n "${KEEP:-}" ]; then echo "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

engine() { # engine HOST PATH: GET from that daemon's Engine API
	curl -sS --max-time 10 --unix-socket "$D/$1/sock" "http://docker$2"
}
api() { curl -s -H "Authorization: Bearer $(cat "$SLUICE_DATA/admin.token")" "$SLUICE_SERVER$1"; }
phase() { api "/v1/deployments/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' || true; }
region_state() { # region_state DEPLOYMENT REGION
	api "/v1/deployments/$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print([r["state"] for r in d["state"]["regions"] if r["name"] == sys.argv[1]][0])' "$2" || true
}
dep_id() { "$S" history "$1" -o json | grep -m1 '"id"' | grep -o '[0-9]\+' || true; }
# running containers of a service on a host, as "ID" lines (the io.sluice.id label)
containers() { # containers HOST SERVICE
	engine "$1" '/containers/json' | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    l = c.get("Labels") or {}
    if l.get("io.sluice.service") == sys.argv[1] and not c["Names"][0].endswith("-stopping"):
        print(l.get("io.sluice.id"))' "$2"
}
# the instances sluice status shows for a service in env prod, as "ID" lines
status_ids() {
	api "/v1/status?service=$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in d["services"][0]["envs"]:
    if e["env"] == "prod":
        for r in e["regions"]:
            for i in r["instances"]:
                if i["state"] not in ("stopped", "stopping"):
                    print(i["id"])'
}
# the admin addresses of region REGION's proxies on HOST (containers of the sluice binary)
proxy_admins() { # proxy_admins HOST REGION
	engine "$1" '/containers/json' | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    l = c.get("Labels") or {}
    if l.get("io.sluice.service") == "sluice-proxy" and l.get("io.sluice.region") == sys.argv[1]:
        print("127.0.0.1:" + l["io.sluice.port"])' "$2"
}
# requests routed to VERSION of ROUTE, summed over the proxies at ADMIN...
routed() { # routed ROUTE VERSION ADMIN...
	local route=$1 version=$2 a
	shift 2
	for a in "$@"; do curl -s -m 2 -H "Authorization: Bearer $(cat "$D/data/proxy.token")" "http://$a/v1/metrics"; echo; done | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    if line.strip():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        n += m["routes"].get(sys.argv[1], {}).get("versions", {}).get(sys.argv[2], {}).get("requests", 0)
print(n)' "$route" "$version" 2>/dev/null || echo 0
}
# seconds from T_START until a proxy of ROUTE routes a request to VERSION (at most 60 s);
# ADMINS_FN prints the proxies' admin addresses (SO_REUSEPORT spreads connections over a
# region's proxies, so all of them are read)
time_to_traffic() { # time_to_traffic T_START ADMINS_FN ROUTE VERSION
	local t0=$1 fn=$2 end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ]; do
		if [ "$(routed "$3" "$4" $($fn))" -gt 0 ]; then
			python3 -c "import time; print('%.2f' % (time.time() - $t0))"
			return 0
		fi
		sleep 0.05
	done
	echo never
}
load() { # load NAME SECONDS URL... : continuous load in the background, its line in $D/NAME.txt
	local name=$1 dur=$2
	shift 2
	local urls=()
	for u in "$@"; do urls+=(--url "$u"); done
	"$S" load "${urls[@]}" --rate 100 --conns 4 --duration "$dur" >"$D/$name.txt" 2>&1 &
	LOADS+=($!)
	eval "L_$name=\$!"
}
stop_load() { # stop_load NAME: stops it and prints its line
	local pid
	eval "pid=\$L_$1"
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	sed "s/^/  $1: /" "$D/$1.txt"
}
failed_of() { grep -o 'failed [0-9]*' "$D/$1.txt" | grep -o '[0-9]*' || echo '?'; }
EAST=http://127.0.0.1:30001/items/1
WEST=http://127.0.0.1:30101/items/1

# ---- three hosts, the images (no registry)
pids=()
for h in h1 h2 h3; do "$DH" start "$D/$h" >/dev/null & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
elapsed "three daemons up"
for h in h1 h2 h3; do "$DH" image "$D/$h" "$S" sluice:test; done
"$DH" image "$D/h1" "$EX/metadata-v1" meta:v1
"$DH" image "$D/h1" "$EX/metadata-v2" meta:v2
"$DH" image "$D/h1" "$EX/metadata-v2" meta:bad --error-rate 0.5
"$DH" image "$D/h1" "$EX/metadata-v1" meta:v3 --latency-ms 1
"$DH" image "$D/h1" "$EX/metadata-v2" meta:v4 --latency-ms 1
mkdir -p "$D/img"
for v in v1 v2 bad v3 v4; do "$DH" save "$D/h1" "meta:$v" "$D/img/meta-$v.tar"; done
elapsed "images built and saved"

mkdir -p "$D/data"
cat >"$D/m.yaml" <<Y
kind: Environment
name: prod
regions:
  - name: east
    port_offset: 0
    runtime: {kind: docker, hosts: ["unix://$D/h1/sock", "unix://$D/h3/sock"], proxy_image: "sluice:test"}
  - name: west
    port_offset: 100
    runtime: {kind: docker, hosts: ["unix://$D/h2/sock"], proxy_image: "sluice:test"}
waves: [[east], [west]]
policy: {allow_unknown_consumers: true, region_retries: 0, retry_backoff: 1s, wave_bake: 4s, on_region_failure: halt}
---
kind: Environment
name: loc
regions: [{name: here, port_offset: 200}]
policy: {allow_unknown_consumers: true}
---
kind: Service
name: meta
listen_port: 30001
health: {interval: 200ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {steps: [20, 100], step_duration: 1s, max_step_duration: 30s}
analysis: {method: threshold, min_requests: 10, max_p99_latency: 2s}
---
kind: Service
name: lmeta
listen_port: 30002
health: {interval: 200ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {steps: [20, 100], step_duration: 1s, max_step_duration: 30s}
analysis: {method: threshold, min_requests: 10, max_p99_latency: 2s}
Y
start_server
"$S" apply -f "$D/m.yaml" >/dev/null
for v in v1 v2 bad v3 v4; do "$S" release push meta $v --artifact "$D/img/meta-$v.tar" >/dev/null; done
"$S" release push lmeta v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push lmeta v2 --artifact "$EX/metadata-v2" >/dev/null
check "first release on Docker regions: promoted in east and west" \
	"$S" deploy meta v1 --env prod --wait --timeout 90
check "first release on the local region: promoted" "$S" deploy lmeta v1 --env loc --wait --timeout 30
elapsed "first releases promoted"

# spread: east's two instances on two hosts, a proxy on each of east's hosts and on west's
check "east: one instance of meta on each of its two hosts" \
	test "$(containers h1 meta | wc -l) $(containers h3 meta | wc -l)" = "1 1"
check "west: both instances of meta on its one host" test "$(containers h2 meta | wc -l)" = 2
check "a proxy container on each host (east: h1 and h3, west: h2)" \
	test "$(containers h1 sluice-proxy | wc -l)$(containers h3 sluice-proxy | wc -l)$(containers h2 sluice-proxy | wc -l)" = 111
check "east's route answers through its proxies (v1)" \
	bash -c "curl -s -i -m 2 $EAST | grep -q 'X-Version: v1'"
check "west's route answers through its proxy (v1)" \
	bash -c "curl -s -i -m 2 $WEST | grep -q 'X-Version: v1'"
check "the local proxy has no route of a docker region" \
	bash -c "curl -sf -m 2 -H 'Authorization: Bearer $(cat "$D/data/proxy.token")' http://127.0.0.1:30071/v1/routes >$D/local-routes.json && ! grep -q 'meta.prod' $D/local-routes.json"

# ---- a good release across both regions under load: 0 failed requests; time to canary
load good 200 "$EAST" "$WEST"
load lgood 200 http://127.0.0.1:30202/items/1
sleep 1
east_admins() { proxy_admins h1 east; proxy_admins h3 east; }
local_admins() { echo 127.0.0.1:30071; }
t=$(python3 -c 'import time; print(time.time())')
"$S" deploy meta v2 --env prod >/dev/null
T_DOCKER=$(time_to_traffic "$t" east_admins meta.prod.east v2)
t=$(python3 -c 'import time; print(time.time())')
"$S" deploy lmeta v2 --env loc >/dev/null
T_LOCAL=$(time_to_traffic "$t" local_admins lmeta.loc.here v2)
dep=$(dep_id meta)
ended() { [ "$(phase "$1")" != active ]; }
wait_until 120 ended "$dep" || true
check "good release: promoted in east then west" test "$(phase "$dep")" = promoted
ldep=$(dep_id lmeta)
check "good release on the local region: promoted" wait_until 60 ended "$ldep"
stop_load good
stop_load lgood
check "0 failed requests through both Docker regions' proxies during the good release" test "$(failed_of good)" = 0
check "0 failed requests through the local proxy during its release" test "$(failed_of lgood)" = 0
check "both regions serve v2" bash -c "curl -s -i -m 2 $EAST | grep -q 'X-Version: v2' && curl -s -i -m 2 $WEST | grep -q 'X-Version: v2'"
echo "# time from deploy to first canary request: docker ${T_DOCKER} s, local ${T_LOCAL} s"
elapsed "good release done"

# ---- a bad release: rolled back by itself in the pilot region; west never sees it
load badr 120 "$EAST" "$WEST"
set +e; "$S" deploy meta bad --env prod --wait --timeout 90 >"$D/bad.txt"; rc=$?; set -e
dep=$(dep_id meta)
stop_load badr
check "bad release: the deployment ends rolled back (exit 1)" test "$rc" -eq 1 -a "$(phase "$dep")" = rolled_back
check "bad release: west was never touched" test "$(region_state "$dep" west)" = pending
check "bad release: east serves v2 again, no container of it is left" \
	bash -c "curl -s -i -m 2 $EAST | grep -q 'X-Version: v2' && ! (curl -s --unix-socket $D/h1/sock http://docker/containers/json; curl -s --unix-socket $D/h3/sock http://docker/containers/json) | grep -q '\"io.sluice.version\":\"bad\"'"
elapsed "bad release rolled back"

# ---- west's daemon stopped mid-wave (east done, west's wave not yet started): only west
# fails (its runtime refuses to start anything there), east stays done and serves with 0
# failed requests; once the daemon is back, `sluice retry --region west` deploys it.
load east3 200 "$EAST"
load west3 200 "$WEST" # its verification needs traffic; its failures while down are expected
"$S" deploy meta v3 --env prod >/dev/null
dep=$(dep_id meta)
east_done() { test "$(region_state "$dep" east)" = done; }
check "v3: east done" wait_until 90 east_done
h2pid=$(cat "$D/h2/pid")
kill -TERM "$h2pid"
wait_until 30 bash -c "! kill -0 $h2pid 2>/dev/null" || kill -KILL "$h2pid"
elapsed "west's daemon stopped (west was $(region_state "$dep" west))"
wait_until 90 ended "$dep" || true
check "v3: west failed, the deployment ends split (east on v3, west on v1)" test "$(region_state "$dep" west)/$(phase "$dep")" = failed/split
check "v3: east finished (done) and stays so" test "$(region_state "$dep" east)" = done
east_v3() { curl -s -i -m 2 "$EAST" | grep -q 'X-Version: v1'; }
check "v3: east serves v3" east_v3
"$DH" start "$D/h2" >/dev/null
elapsed "west's daemon back"
check "retry --region west succeeds" timeout 120 "$S" retry "$dep" --region west --wait
west_v3() { curl -s -i -m 2 "$WEST" | grep -q 'X-Version: v1'; }
check "west serves v3 after the retry" wait_until 20 west_v3
check "after the retry, the deployment is promoted" test "$(phase "$dep")" = promoted
stop_load east3
stop_load west3
check "0 failed requests in east while west's daemon was down" test "$(failed_of east3)" = 0
elapsed "west retried"

# ---- kill -9 of the server mid-canary: the deployment continues, no duplicate, no orphan
load k9 200 "$EAST" "$WEST"
"$S" deploy meta v4 --env prod >/dev/null
dep=$(dep_id meta)
in_step() { test "$(region_state "$dep" east)" = step; }
check "v4: east in a canary step" wait_until 60 in_step
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
sleep 1
start_server
wait_until 150 ended "$dep" || true
check "after kill -9 and a restart, the deployment is promoted" test "$(phase "$dep")" = promoted
stop_load k9
check "0 failed requests through the kill -9 of the server" test "$(failed_of k9)" = 0
sleep 3 # the old version's drain and stop
engine_ids=$( (containers h1 meta; containers h2 meta; containers h3 meta) | sort)
status_list=$(status_ids meta | sort)
echo "  engines: $(echo $engine_ids)"
echo "  status:  $(echo $status_list)"
check "the engines run exactly the instances sluice status shows (4 of v4)" \
	test "$engine_ids" = "$status_list" -a "$(echo "$engine_ids" | grep -c '\.v4\.')" = 4
check "no duplicate container of an instance" test "$(echo "$engine_ids" | uniq -d | wc -l)" = 0
check "one proxy per host after the restart (adopted, not started again)" \
	test "$(containers h1 sluice-proxy | wc -l)$(containers h3 sluice-proxy | wc -l)$(containers h2 sluice-proxy | wc -l)" = 111

# ---- shutdown --data-plane leaves no container behind
timeout 60 "$S" shutdown --data-plane >/dev/null 2>&1 || true
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
left=$( (engine h1 '/containers/json?all=1'; engine h2 '/containers/json?all=1'; engine h3 '/containers/json?all=1') | { grep -o '"io.sluice.id":"[^"]*"' || true; } | wc -l)
check "shutdown --data-plane: no container left on any host" test "$left" = 0
SERVER_PID=

elapsed "done"
echo "# failed requests: good $(failed_of good), local $(failed_of lgood), east during west's outage $(failed_of east3), kill -9 $(failed_of k9)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
