#!/usr/bin/env bash
# Integration: the Prometheus metric provider against a real Prometheus (Debian's) scraping
# the real proxy. The service's only discriminating check is a custom metric, the 5xx ratio of
# a version from sluice_proxy_responses_total, judged Kayenta-style canary against baseline:
# a good canary is promoted, a canary with 30% errors is rolled back with the evidence naming
# the metric.
# Usage: verify-prometheus.sh BUILD_DIR SOURCE_DIR
#   ports: 31170-31171 (server, proxy admin), 31201 (service), 31090 (prometheus)
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "${2:-.}" && pwd)
S=$B/src/sluice
EX=$B/examples
if ! command -v prometheus >/dev/null && [ "$(id -u)" -eq 0 ] && [ -x "$SRC/scripts/deps.sh" ]; then
	"$SRC/scripts/deps.sh" test >/dev/null 2>&1 || true
fi
if ! command -v prometheus >/dev/null; then
	echo "skip: prometheus is not installed and could not be installed (apt-get install prometheus)"
	exit 77
fi
D=$(mktemp -d /tmp/sluice-it-prom.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:31170
export SLUICE_DATA="$D/data"  # the CLI reads the admin token the server writes there
SERVER_PID= LOAD_PID= PROM_PID=
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
	if [ -n "$PROM_PID" ]; then
		kill "$PROM_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$PROM_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$PROM_PID" 2>/dev/null
	fi
	if [ "$fail" -ne 0 ]; then
		echo "--- server log"; tail -40 "$D/server.log"
		echo "--- prometheus log"; tail -10 "$D/prom.log"
	fi
	rm -rf "$D"
}
trap cleanup EXIT

# Prometheus: our own process on loopback, scraping the proxy's admin address every second
# and the control plane's own /metrics, with the admin token the server writes at its start
cat >"$D/prom.yml" <<Y
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: sluice-proxy
    static_configs: [{targets: ['127.0.0.1:31171']}]
  - job_name: sluice-control-plane
    authorization: {credentials_file: '$D/data/admin.token'}
    static_configs: [{targets: ['127.0.0.1:31170']}]
Y
prometheus --config.file="$D/prom.yml" --storage.tsdb.path="$D/tsdb" \
	--web.listen-address=127.0.0.1:31090 >"$D/prom.log" 2>&1 &
PROM_PID=$!

for _ in $(seq 50); do curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1 || break; sleep 0.2; done
"$S" server --data "$D/data" --listen 127.0.0.1:31170 --proxy-admin 127.0.0.1:31171 >>"$D/server.log" 2>&1 &
SERVER_PID=$!
up() { curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null; }
for _ in $(seq 100); do up && break; sleep 0.05; done
sleep 0.3 # a server that cannot listen exits at once
if ! up || ! kill -0 "$SERVER_PID" 2>/dev/null; then
	echo "the server did not start (is something else on 127.0.0.1:31170?)"; cat "$D/server.log"
	SERVER_PID=; exit 1
fi
ready() { curl -sf -m 1 http://127.0.0.1:31090/-/ready >/dev/null; }
for _ in $(seq 100); do ready && break; sleep 0.1; done
check "prometheus is ready" ready

# The built-in threshold checks are wide open (any error rate passes them): the custom metric
# alone must tell the good canary from the bad one.
cat >"$D/m.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east
---
kind: Service
name: metadata
listen_port: 31201
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
strategy: {steps: [50, 100], step_duration: 8s, max_step_duration: 40s}
analysis:
  method: threshold
  min_requests: 10
  max_error_rate: 1
  max_error_rate_increase: 1
  prometheus: http://127.0.0.1:31090
  metrics:
    - name: error_ratio
      query: >-
        sum(rate(sluice_proxy_responses_total{route="{service}.{env}.{region}",version="{version}",class="5xx"}[3s]))
        / sum(rate(sluice_proxy_requests_total{route="{service}.{env}.{region}",version="{version}"}[3s]))
      direction: increase
      critical: true
      allowed_increase: 1.2
      critical_increase: 2
Y
check "manifest with analysis.metrics and analysis.prometheus is accepted" "$S" apply -f "$D/m.yaml"
printf '#!/bin/sh\nexec %s --error-rate 0.3 "$@"\n' "$EX/metadata-v2" >"$D/bad"
chmod +x "$D/bad"
"$S" release push metadata v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push metadata v2-bad --artifact "$D/bad" >/dev/null
check "first release is promoted" "$S" deploy metadata v1 --wait --timeout 30

"$S" load --url http://127.0.0.1:31201/items/1 --rate 100 --conns 4 --duration 110 >"$D/load.txt" &
LOAD_PID=$!
sleep 2

evidence() { # evidence DEP TYPE: the prometheus part of the evidence of the first TYPE event
	"$S" events "$1" -o json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in d.get("events", []):
    if e.get("type") == sys.argv[1] and e.get("evidence") and "prometheus" in e["evidence"]:
        p = e["evidence"]["prometheus"]
        m = p["metrics"][0]
        print(p["verdict"], m["metric"], m["classification"], m["canary_samples"], m["baseline_samples"],
              (m["mann_whitney"] or {}).get("p_value"), p["score"])
        break
' "$2"
}

check "a good canary is promoted" "$S" deploy metadata v2 --wait --timeout 40
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
good=$(evidence "$dep" passed)
echo "# good canary, first step: verdict metric class canary_n baseline_n p score: $good"
check "the step passed on the prometheus metric (evidence: $good)" grep -q '^pass error_ratio pass' <<<"$good"

set +e
"$S" deploy metadata v2-bad --wait --timeout 40 >"$D/bad.txt"
rc=$?
set -e
check "deploy --wait exits 1 for the bad canary" test "$rc" -eq 1
check "the outcome names the metric" grep -q 'rolled_back: verification failed.*metric error_ratio' "$D/bad.txt"
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
badev=$(evidence "$dep" aborted)
echo "# bad canary: verdict metric class canary_n baseline_n p score: $badev"
check "the abort evidence names the metric, classified high" grep -q '^fail error_ratio high' <<<"$badev"
check "v2 is still stable" bash -c "'$S' status metadata -o json | grep -q '\"stable\": \"v2\"'"

# --- with analysis.baseline the metric compares the canary with the baseline's own series
sed -i 's/^analysis:$/analysis:\n  baseline: true/' "$D/m.yaml"
"$S" apply -f "$D/m.yaml" >/dev/null
set +e
"$S" deploy metadata v2-bad --wait --timeout 40 >"$D/bad2.txt"
rc=$?
set -e
check "with a baseline, the bad canary is rolled back on the metric" \
	bash -c "[ $rc -eq 1 ] && grep -q 'rolled_back: verification failed.*metric error_ratio' '$D/bad2.txt'"
dep=$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')
basev=$(evidence "$dep" aborted)
echo "# bad canary against its baseline: verdict metric class canary_n baseline_n p score: $basev"
own_series() { # the aborted event's baseline query names the baseline's label and got samples
	"$S" events "$dep" -o json | python3 -c '
import json, sys
for e in json.load(sys.stdin).get("events", []):
    if e.get("type") == "aborted" and "prometheus" in (e.get("evidence") or {}):
        m = e["evidence"]["prometheus"]["metrics"][0]
        sys.exit(0 if "version=\"v2~baseline\"" in m["query_baseline"] and m["baseline_samples"] > 0 else 1)
sys.exit(1)'
}
check "the baseline's samples came from its own series (v2~baseline)" own_series
kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
# --- Prometheus scraped the control plane's own metrics (issue 15)
scraped() { # scraped QUERY: the query has at least one series in Prometheus
	curl -s -m 2 "http://127.0.0.1:31090/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if r.get("status") == "success" and r["data"]["result"] else 1)'
}
check "Prometheus scrapes the control plane's /metrics (the target is up)" \
	scraped 'up{job="sluice-control-plane"} == 1'
check "... and reads its rollbacks" scraped 'sluice_rollbacks_total{job="sluice-control-plane"} >= 1'
check "... and the API's answers per route" \
	scraped 'sluice_api_requests_total{job="sluice-control-plane",route="POST /v1/deployments",code="2xx"} >= 1'
check "... its histograms: reconcile passes, store commits, steps" bash -c "
	$(declare -f scraped)
	scraped 'sluice_reconcile_pass_seconds_count{job=\"sluice-control-plane\"} >= 1' &&
	scraped 'sluice_store_commit_seconds_bucket{job=\"sluice-control-plane\",le=\"+Inf\"} >= 1' &&
	scraped 'sluice_step_duration_seconds_count{job=\"sluice-control-plane\"} >= 1'"
check "... verdicts by method and decision, and the notification backlog" bash -c "
	$(declare -f scraped)
	scraped 'sum(sluice_verdicts_total{job=\"sluice-control-plane\"}) >= 1' &&
	scraped 'sluice_notification_backlog{job=\"sluice-control-plane\"} >= 0'"
# every query of the Grafana dashboard (examples/grafana) is valid PromQL over these series
check "the Grafana dashboard's queries all run on Prometheus" python3 - "$SRC/examples/grafana/sluice-control-plane.json" <<'PY'
import json, sys, urllib.parse, urllib.request
d = json.load(open(sys.argv[1]))
bad = []
for p in d["panels"]:
    for t in p["targets"]:
        q = t["expr"].replace("$job", "sluice-control-plane").replace("$__range", "1h")
        url = "http://127.0.0.1:31090/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            r = json.load(urllib.request.urlopen(url, timeout=5))
            if r.get("status") != "success":
                bad.append((p["title"], q, r))
        except Exception as e:
            bad.append((p["title"], q, str(e)))
for b in bad:
    print("dashboard query failed:", b)
sys.exit(1 if bad else 0)
PY
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
