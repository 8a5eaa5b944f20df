#!/usr/bin/env bash
# What a canary is compared with: an identical release (v3 is the same program as v2) at a
# 10% step with analysis.baseline, under generated load. Measures, per version, the share of
# requests slower than 1, 2, 5 and 10 ms as the proxy saw them, and the ratios canary/stable
# and canary/baseline: with no regression at all, a ratio far from 1 is bias of the comparison.
# Measures and prints; it is not a test.
#   bash bench/baseline/run.sh [BUILD_DIR] [SECONDS] [RATE]     (defaults: build 30 200)
# Ports: server 16170/16171, service 16201 (loopback), instances 20000-26999.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${2:-30}
RATE=${3:-200}
LOAD=
BENCH_PRE_CLEANUP='[ -n "$LOAD" ] && kill "$LOAD" 2>/dev/null'
. "$ROOT/bench/server.sh"
bench_server baseline "${1:-$ROOT/build}" 16170
cat >"$D/m.yaml" <<Y
kind: Environment
name: production
regions: [{name: local}]
policy: {allow_unknown_consumers: true}
---
kind: Service
name: metadata
listen_port: 16201
health: {path: /healthz, interval: 1s}
instances: 1
strategy: {steps: [10, 100], step_duration: $((SECS + 30))s, max_step_duration: $((SECS + 60))s}
analysis: {method: threshold, baseline: true, max_error_rate: 1, max_error_rate_increase: 1, max_p99_latency: 60s}
Y
"$S" apply -f "$D/m.yaml" >/dev/null
"$S" release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push metadata v3 --artifact "$EX/metadata-v2" >/dev/null
"$S" deploy metadata v2 --wait --timeout 60 >/dev/null
"$S" load --url http://127.0.0.1:16201/items/1 --rate "$RATE" --conns 4 --duration $((SECS + 20)) >"$D/load.txt" &
LOAD=$!
"$S" deploy metadata v3 >/dev/null
in_step() { "$S" status metadata -o json | grep -q '"v2~baseline"'; }
for _ in $(seq 300); do in_step && break; sleep 0.2; done
sleep 2 # the route carries all three
curl -s -H "Authorization: Bearer $(cat "$D/data/proxy.token")" http://127.0.0.1:16171/v1/metrics >"$D/m0.json"
sleep "$SECS"
curl -s -H "Authorization: Bearer $(cat "$D/data/proxy.token")" http://127.0.0.1:16171/v1/metrics >"$D/m1.json"
python3 - "$D/m0.json" "$D/m1.json" "$SECS" "$RATE" <<'P'
import json, sys
a, b = (json.load(open(p))["routes"]["metadata.production.local"]["versions"] for p in sys.argv[1:3])
limits = [1000, 2000, 5000, 10000]
share = {}
print(f"identical releases at a 10% step, {sys.argv[3]} s at {sys.argv[4]} requests/s")
print(f"{'version':14} {'requests':>9} " + " ".join(f"{'>' + str(l // 1000) + ' ms':>8}" for l in limits))
for v in ("v2", "v2~baseline", "v3"):
    x, y = a.get(v), b[v]
    n0 = x["requests"] if x else 0
    c0 = x["latency_us"]["counts"] if x else [0] * len(y["latency_us"]["counts"])
    bounds, c1 = y["latency_us"]["bounds"], y["latency_us"]["counts"]
    diff = [p - q for p, q in zip(c1, c0)]
    done = sum(diff)
    fr = []
    for l in limits:
        slow = sum(d for bd, d in zip(bounds, diff) if bd == -1 or bd > l)
        fr.append(slow / done if done else float("nan"))
    share[v] = fr
    print(f"{v:14} {y['requests'] - n0:>9} " + " ".join(f"{f * 100:7.2f}%" for f in fr))
for ref in ("v2", "v2~baseline"):
    r = [c / s if s else float("nan") for c, s in zip(share["v3"], share[ref])]
    print(f"{'v3 / ' + ref:24} " + " ".join(f"{q:8.2f}" for q in r))
P
