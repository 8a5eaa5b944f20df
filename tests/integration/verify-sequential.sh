#!/usr/bin/env bash
# Integration: canary steps judged by the sequential method (analysis.method: sequential) on
# the proxy's live counters. A good canary passes every step, is promoted and bakes (compared
# with the old version's recorded rates); a canary that fails half its requests is aborted
# within a few dozen canary requests (read from the evidence of the abort event). With
# analysis.baseline the same two are judged against a fresh baseline of the stable release.
# Usage: verify-sequential.sh BUILD_DIR        ports: 31070-31071, 31001
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-seq.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:31070
export SLUICE_DATA="$D"  # the CLI reads the admin token the server writes there
SERVER_PID= LOAD_PID=
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

cleanup() {
	set +e
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
	if [ -n "$SERVER_PID" ]; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SERVER_PID" 2>/dev/null
	fi
	if [ "$fail" -ne 0 ]; then echo "--- server log"; tail -40 "$D/server.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

for _ in $(seq 50); do curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1 || break; sleep 0.2; done
"$S" server --data "$D" --listen 127.0.0.1:31070 --proxy-admin 127.0.0.1:31071 >>"$D/server.log" 2>&1 &
SERVER_PID=$!
up() { curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null; }
for _ in $(seq 100); do up && break; sleep 0.05; done
sleep 0.3 # a server that cannot listen exits at once
if ! up || ! kill -0 "$SERVER_PID" 2>/dev/null; then
	echo "the server did not start (is something else on 127.0.0.1:31070?)"; cat "$D/server.log"
	SERVER_PID=; exit 1
fi

cat >"$D/m.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east
---
kind: Service
name: metadata
listen_port: 31001
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
strategy: {steps: [10, 50, 100], step_duration: 1s, max_step_duration: 40s}
bake: 3s
analysis:
  method: sequential
  alpha: 0.05
  tolerance: 0.2
  max_error_rate: 0.1
  max_error_rate_increase: 0.1
Y
check "manifests with method: sequential are accepted" "$S" apply -f "$D/m.yaml"
printf '#!/bin/sh\nexec %s --error-rate 0.5 "$@"\n' "$EX/metadata-v2" >"$D/bad"
chmod +x "$D/bad"
"$S" release push metadata v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push metadata v2-bad --artifact "$D/bad" >/dev/null
check "first release is promoted" "$S" deploy metadata v1 --wait --timeout 30

"$S" load --url http://127.0.0.1:31001/items/1 --rate 200 --conns 4 --duration 150 >"$D/load.txt" &
LOAD_PID=$!
sleep 0.5

# --- a good canary: every step passes by proof, then promotion
t0=$(date +%s.%N)
check "a good canary is promoted through its steps" "$S" deploy metadata v2 --wait --timeout 60
t1=$(date +%s.%N)
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
"$S" events "$dep" -o json >"$D/good.json"
check "each step passed with sequential evidence" \
	bash -c "[ \$(grep -c '\"method\": \"sequential\"' '$D/good.json') -ge 3 ]"
check "the evidence carries the rate ratio's confidence sequence and e-values" \
	bash -c "grep -q '\"ratio_hi\"' '$D/good.json' && grep -q '\"e_fail\"' '$D/good.json' && grep -q '\"alpha\"' '$D/good.json'"
check "the bake compared the new stable with the old version's recorded rates" \
	bash -c "grep -q '\"type\": \"baked\"' '$D/good.json' && grep -q 'one-sample: rate above recorded bound' '$D/good.json'"
echo "# good canary promoted (steps and a 3 s bake) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

# --- a canary failing half its requests: aborted within a few dozen canary requests
set +e
"$S" deploy metadata v2-bad --wait --timeout 60 >"$D/bad.txt"
rc=$?
set -e
check "deploy --wait exits 1 for the bad canary" test "$rc" -eq 1
check "the outcome names the proven error-rate regression" grep -q 'rolled_back: verification failed.*error rate higher' "$D/bad.txt"
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
"$S" events "$dep" -o json >"$D/bad.json"
# the abort's evidence: canary requests and errors when the regression was proven
n=$(python3 -c '
import json, sys
ev = json.load(open(sys.argv[1]))
ev = ev.get("events", ev) if isinstance(ev, dict) else ev
for e in ev:
    if e.get("type") == "aborted" and e.get("evidence"):
        x = e["evidence"]
        print(x["canary"]["requests"], x["canary"]["errors"], x["tests"][0]["e_fail"], x["tests"][0]["ratio_lo"])
        break
' "$D/bad.json")
echo "# abort evidence: canary requests, errors, e-value, ratio lower bound: $n"
req=${n%% *}
check "the bad canary was aborted within 60 canary requests (took ${req:-?})" \
	test "${req:-999}" -ge 1 -a "${req:-999}" -le 60
check "v2 is still stable" bash -c "'$S' status metadata -o json | grep -q '\"stable\": \"v2\"'"

# --- analysis.baseline: the canary is compared with a fresh baseline of the stable release
# (v2~baseline: as many instances, the same weight), not with the production instances
sed -i 's/^analysis:$/analysis:\n  baseline: true/' "$D/m.yaml"
check "analysis.baseline is accepted" "$S" apply -f "$D/m.yaml"
"$S" release push metadata v3 --artifact "$EX/metadata-v1" >/dev/null
"$S" deploy metadata v3 >/dev/null
three_way() { # the route splits 80/10/10 between v2, v2~baseline and v3 at the first step
	"$S" status metadata -o json >"$D/st.json"
	python3 - "$D/st.json" <<'P'
import json, sys
s = json.load(open(sys.argv[1]))
def walk(x):
    if isinstance(x, dict):
        yield x
        for v in x.values(): yield from walk(v)
    elif isinstance(x, list):
        for v in x: yield from walk(v)
for o in walk(s):
    t = o.get("traffic")
    if isinstance(t, list) and {e["version"]: e["weight"] for e in t} == {"v2": 80, "v2~baseline": 10, "v3": 10}:
        sys.exit(0)
sys.exit(1)
P
}
for _ in $(seq 150); do three_way && break; sleep 0.2; done
check "at the first step v2, v2~baseline and v3 get 80/10/10" three_way
check "the baseline runs its own instance of v2" bash -c "grep -q '\"version\": \"v2~baseline\"' '$D/st.json'"
done_ok() { "$S" history metadata -o json | grep -m1 '"phase"' | grep -q '"promoted"'; }
for _ in $(seq 300); do done_ok && break; sleep 0.2; done
check "a good canary compared with its baseline is promoted" done_ok
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
"$S" events "$dep" -o json >"$D/base.json"
"$S" events "$dep" | grep -E "healthy|passed|step " | head -8
check "its steps were judged against the baseline" \
	bash -c "grep -q '\"compared_version\": \"v2~baseline\"' '$D/base.json' && grep -q 'v2~baseline\|baseline [0-9]' '$D/base.json'"
no_baseline() { ! "$S" status metadata -o json | grep -q '~baseline'; }
for _ in $(seq 50); do no_baseline && break; sleep 0.2; done
check "no baseline instance is left after the promotion" no_baseline
set +e
"$S" deploy metadata v2-bad --wait --timeout 60 >"$D/bad2.txt"
rc=$?
set -e
check "a bad canary compared with its baseline is rolled back" test "$rc" -eq 1
check "the reason names the baseline" grep -q "error rate higher than baseline's" "$D/bad2.txt"
for _ in $(seq 50); do no_baseline && break; sleep 0.2; done
check "no baseline instance is left after the rollback" no_baseline
kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
