#!/usr/bin/env bash
# Integration: three control-plane replicas over one PostgreSQL database (leases with fencing).
#   Runs under tests/support/pg-cluster.sh (SLUICE_PG_URL, SLUICE_PG_DIR, SLUICE_PG_FIXTURE).
#   The replicas share one data directory (artifacts, DATA/instances: the local runtime, held by
#   one replica at a time), one proxy, and the database; each answers the whole API.
#   - KILLS times (default 5; the failover figures in docs/store.md are from KILLS=10): a canary under continuous load through the proxy, kill -9 of the
#     owning replica mid-canary; another takes over within the lease time, the deployment is
#     promoted, 0 failed requests, no duplicate instance. Failover times: median and worst.
#   - SIGSTOP of the owner past its lease, then SIGCONT: it holds the service in a new tenure
#     (a higher epoch), nothing is done twice (one event per step), no duplicate instance.
#   - PostgreSQL restarted mid-deployment: the replicas reconnect and the deployment resumes.
# Ports: API 34070-34072, proxy admin 34075, the service 34201.
# Usage: pg-cluster.sh run -- replicas.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
: "${SLUICE_PG_URL:?run under tests/support/pg-cluster.sh run -- $0 BUILD_DIR}"
KILLS=${KILLS:-5}
TTL=${TTL:-3000}
D=$(mktemp -d /tmp/sluice-it-rep.XXXXXX)
export SLUICE_DATA="$D"
export SLUICE_SERVER=http://127.0.0.1:34071   # any replica answers; the CLI moves on when one dies
declare -A PID PORT=([r1]=34070 [r2]=34071 [r3]=34072)
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }
now_ms() { date +%s%3N; }

start() { # start NAME
	local n=$1
	"$S" server --data "$D" --store "$SLUICE_PG_URL" --replica-id "$n" --lease-ttl "$TTL" \
		--listen "127.0.0.1:${PORT[$n]}" --proxy-admin 127.0.0.1:34075 >>"$D/$n.log" 2>&1 &
	PID[$n]=$!
	for _ in $(seq 100); do curl -sf -m 1 "http://127.0.0.1:${PORT[$n]}/v1/health" >/dev/null && return 0; sleep 0.1; done
	echo "replica $n did not start"; cat "$D/$n.log"; exit 1
}

cleanup() {
	set +e
	for n in r1 r2 r3; do kill -CONT "${PID[$n]:-0}" 2>/dev/null; done
	for n in r1 r2 r3; do
		if curl -s -m 1 "http://127.0.0.1:${PORT[$n]}/v1/health" >/dev/null 2>&1; then
			SLUICE_SERVER=http://127.0.0.1:${PORT[$n]} "$S" shutdown --data-plane >/dev/null 2>&1
			break
		fi
	done
	sleep 1
	for n in r1 r2 r3; do kill -TERM "${PID[$n]:-0}" 2>/dev/null; done
	sleep 0.5
	pkill -9 -f "$D" 2>/dev/null
	if [ "$fail" -ne 0 ]; then for n in r1 r2 r3; do echo "--- $n log"; tail -40 "$D/$n.log"; done; fi
	rm -rf "$D"
}
trap cleanup EXIT

# the API of a replica that runs (the CLI talks to one)
api() {
	for n in r2 r3 r1; do
		if kill -0 "${PID[$n]:-0}" 2>/dev/null && [ "$(ps -o stat= -p "${PID[$n]}" | cut -c1)" != T ] &&
			curl -sf -m 1 "http://127.0.0.1:${PORT[$n]}/v1/health" >/dev/null 2>&1; then
			echo "http://127.0.0.1:${PORT[$n]}"; return 0
		fi
	done
	return 1
}
cli() { SLUICE_SERVER=$(api) "$S" "$@"; }
owner() { cli status metadata -o json 2>/dev/null | grep -o '"replica": "[^"]*"' | cut -d'"' -f4; }
epoch() { cli status metadata -o json 2>/dev/null | grep -o '"epoch": [0-9]*' | grep -o '[0-9]*$'; }
in_step() { cli status metadata -o json 2>/dev/null | grep -q '"state": "step"'; }
promoted() { cli history metadata -o json 2>/dev/null | grep -m1 '"phase"' | grep -q '"promoted"'; }
instances() { pgrep -fc "$D/artifacts" || true; }
two_instances() { [ "$(instances)" -eq 2 ]; }

cat >"$D/env.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east
policy:
  allow_unknown_consumers: true
Y
cat >"$D/svc.yaml" <<'Y'
kind: Service
name: metadata
listen_port: 34201
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {steps: [10, 50, 100], step_duration: 2s, max_step_duration: 60s}
analysis: {method: threshold, min_requests: 10, max_error_rate: 0.05, max_error_rate_increase: 0.02, max_p99_latency: 1s, interval: 200ms}
Y

start r1   # the first start writes the admin token the CLI reads
start r2
start r3
check "every replica answers the API (apply through r2)" cli apply -f "$D/env.yaml" -f "$D/svc.yaml"
cli release push metadata v1 --artifact "$EX/metadata-v1" >/dev/null
cli release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
check "a first release is promoted" cli deploy metadata v1 --wait --timeout 60
check "status names the owning replica (r1, the first to start)" test "$(owner)" = r1
check "sluice status shows the owner and since when" bash -c "SLUICE_SERVER=$(api) '$S' status metadata | grep -q 'driven by replica r1 since'"
check "two instances run" wait_until 10 two_instances

# --- kill -9 of the owner mid-canary, KILLS times
times=()
version=v1
for k in $(seq "$KILLS"); do
	version=$([ "$version" = v1 ] && echo v2 || echo v1)
	"$S" load --url http://127.0.0.1:34201/items/1 --rate 100 --conns 4 --duration 120 >"$D/load-kill$k.txt" &
	L=$!
	sleep 0.5
	cli deploy metadata "$version" >/dev/null
	wait_until 30 in_step || bad "kill $k: the canary reaches a step"
	o=$(owner) e0=$(epoch)
	kill -9 "${PID[$o]}"
	wait "${PID[$o]}" 2>/dev/null || true
	t0=$(now_ms)
	taken() { local x; x=$(owner); [ -n "$x" ] && [ "$x" != "$o" ]; }
	if wait_until 30 taken; then
		t=$(($(now_ms) - t0)); times+=("$t")
		n=$(owner)
		ok "kill $k: $o killed, $n took over in $t ms (lease $TTL ms; epoch $e0 -> $(epoch))"
		check "kill $k: within the lease time plus a pass ($t ms <= $((TTL + 2000)))" test "$t" -le $((TTL + 2000))
	else
		bad "kill $k: no replica took over after $o was killed"
	fi
	start "$o"   # back as a standby
	check "kill $k: the deployment of $version is promoted" wait_until 60 promoted
	check "kill $k: no duplicate instance (2 after the drain)" wait_until 20 two_instances
	kill -TERM $L 2>/dev/null || true; wait $L || true
	check "kill $k: 0 failed requests ($(grep -o 'requests [0-9]*' "$D/load-kill$k.txt" || echo none))" grep -q ' failed 0 ' "$D/load-kill$k.txt"
done
if [ "${#times[@]}" -gt 0 ]; then
	sorted=$(printf '%s\n' "${times[@]}" | sort -n)
	median=$(sed -n "$(( (${#times[@]} + 1) / 2 ))p" <<<"$sorted")
	worst=$(tail -1 <<<"$sorted")
	echo "# failover over ${#times[@]} kills (lease $TTL ms): median $median ms, worst $worst ms: $(echo $sorted)"
fi

# --- SIGSTOP of the owner past its lease, then SIGCONT
version=$([ "$version" = v1 ] && echo v2 || echo v1)
"$S" load --url http://127.0.0.1:34201/items/1 --rate 100 --conns 4 --duration 120 >"$D/load-stop.txt" &
L=$!
sleep 0.5
cli deploy metadata "$version" >/dev/null
wait_until 30 in_step || bad "stop: the canary reaches a step"
o=$(owner) e0=$(epoch)
kill -STOP "${PID[$o]}"
sleep $(( (TTL * 2) / 1000 + 1 ))
kill -CONT "${PID[$o]}"
check "stop: the deployment of $version is promoted" wait_until 60 promoted
e1=$(epoch)
check "stop: the service is held in a later tenure after the pause (epoch $e0 -> $e1)" test "$e1" -gt "$e0"
dep=$(cli history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
passed=$(cli events "$dep" -o json | grep -c '"type": "passed"' || true)
check "stop: nothing done twice (one 'passed' event per canary step: $passed of 3)" test "$passed" -eq 3
dups=$(cli events "$dep" -o json | grep '"message"' | sort | uniq -d)
check "stop: no event recorded twice" test -z "$dups"
check "stop: one 'promoted' event" test "$(cli events "$dep" -o json | grep -c '"type": "promoted"')" -eq 1
check "stop: no duplicate instance" wait_until 20 two_instances
kill -TERM $L 2>/dev/null || true; wait $L || true
check "stop: 0 failed requests" grep -q ' failed 0 ' "$D/load-stop.txt"

# --- PostgreSQL restarted mid-deployment
version=$([ "$version" = v1 ] && echo v2 || echo v1)
"$S" load --url http://127.0.0.1:34201/items/1 --rate 100 --conns 4 --duration 120 >"$D/load-pg.txt" &
L=$!
sleep 0.5
cli deploy metadata "$version" >/dev/null
wait_until 30 in_step || bad "pg restart: the canary reaches a step"
bash "$SLUICE_PG_FIXTURE" restart "$SLUICE_PG_DIR"
check "pg restart: the replicas reconnect and the deployment is promoted" wait_until 60 promoted
check "pg restart: no duplicate instance" wait_until 20 two_instances
kill -TERM $L 2>/dev/null || true; wait $L || true
check "pg restart: 0 failed requests" grep -q ' failed 0 ' "$D/load-pg.txt"
check "pg restart: every replica still answers" bash -c "for p in 34070 34071 34072; do curl -sf -m 2 http://127.0.0.1:\$p/v1/health >/dev/null || exit 1; done"

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
