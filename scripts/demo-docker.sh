#!/usr/bin/env bash
# The sluice demo on Docker hosts (make demo-docker): the same story as scripts/demo.sh, with
# each production region on Docker hosts the demo starts itself (scripts/docker-host.sh: one
# dockerd per host, its own data root and socket, host networking, no registry). The example
# service is built into images (the binary and its shared libraries) and pushed as image
# archives; each region's proxy is a container of the sluice binary on its hosts. A good
# release is promoted with zero failed requests, a bad one is rolled back by itself, then
# everything is stopped: no container, daemon or process is left behind.
# Usage: demo-docker.sh [BUILD_DIR]   (needs root for dockerd; scripts/deps.sh test installs it)
set -euo pipefail
START=$(date +%s)
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
S=$ROOT/$BUILD/src/sluice
EX=$ROOT/$BUILD/examples
DH=$ROOT/scripts/docker-host.sh
[ -x "$S" ] || { echo "demo-docker: $S not built (run make build)" >&2; exit 2; }
command -v dockerd >/dev/null || { echo "demo-docker: dockerd is not installed (scripts/deps.sh test installs docker.io)" >&2; exit 2; }

D=$(mktemp -d /tmp/sluice-demo-dk.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:16070
export SLUICE_DATA="$D/data"
export SLUICE_DOCKER_CACHE=$D/cache
LOADS=()
HOSTS=(us1 us2 eu1)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	set +e
	for p in "${LOADS[@]}"; do kill "$p" 2>/dev/null; done
	if curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1; then
		timeout 60 "$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	fi
	left=$(pgrep -f "$D/data" || true)
	if [ -n "$left" ]; then
		echo "demo-docker: processes left behind: $left" >&2
		kill -9 $left 2>/dev/null
	fi
	for h in "${HOSTS[@]}"; do "$DH" stop "$D/$h" >/dev/null 2>&1; done
	rm -rf "$D"
}
trap cleanup EXIT

for port in 16070 16071 16001 16101; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "demo-docker: port $port is in use on 127.0.0.1; stop what uses it and try again" >&2
		exit 2
	fi
done

say "three Docker hosts: us-east on us1 and us2, eu-west on eu1 (one dockerd each, in $D)"
pids=()
for h in "${HOSTS[@]}"; do "$DH" start "$D/$h" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done

say "CI builds images (binary + shared libraries, no registry) and saves them as archives"
for h in "${HOSTS[@]}"; do "$DH" image "$D/$h" "$S" sluice:demo; done  # the proxies' image
"$DH" image "$D/us1" "$EX/metadata-v1" metadata:v1
"$DH" image "$D/us1" "$EX/metadata-v2" metadata:v2
# a bad build: v2's code answering 30% of its requests with 500
"$DH" image "$D/us1" "$EX/metadata-v2" metadata:v2-bad --error-rate 0.3
mkdir -p "$D/img" "$D/data"
for v in v1 v2 v2-bad; do "$DH" save "$D/us1" "metadata:$v" "$D/img/metadata-$v.tar"; done
ls -l "$D/img"

say "control plane on a fresh data directory; production's regions are Docker hosts"
"$S" server --data "$D/data" --listen 127.0.0.1:16070 --proxy-admin 127.0.0.1:16071 >"$D/server.log" 2>&1 &
for _ in $(seq 50); do curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.1; done
cat >"$D/manifests.yaml" <<Y
kind: Environment
name: production
regions:
  - name: us-east                # the pilot: the canary runs here first
    port_offset: 0               # its proxy listens on 127.0.0.1:16001
    runtime: {kind: docker, hosts: ["unix://$D/us1/sock", "unix://$D/us2/sock"], proxy_image: "sluice:demo"}
  - name: eu-west
    port_offset: 100             # 127.0.0.1:16101
    runtime: {kind: docker, hosts: ["unix://$D/eu1/sock"], proxy_image: "sluice:demo"}
waves: [[us-east], [eu-west]]
policy: {allow_unknown_consumers: true, wave_bake: 2s, region_retries: 1, retry_backoff: 1s}
---
kind: Service
name: metadata
listen_port: 16001
health: {interval: 500ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {type: canary, steps: [10, 50, 100], step_duration: 2s, max_step_duration: 30s}
analysis: {min_requests: 20, max_error_rate: 0.05, max_error_rate_increase: 0.05, max_p99_latency: 500ms}
bake: 2s
Y
sed -n '/^kind: Environment/,/^---/p' "$D/manifests.yaml" | sed "s|$D|\$D|g"
"$S" apply -f "$D/manifests.yaml"
for v in v1 v2 v2-bad; do "$S" release push metadata "$v" --artifact "$D/img/metadata-$v.tar"; done

say "first release: image archives loaded on the hosts, containers started, a proxy on each host"
"$S" deploy metadata v1 --wait
"$S" status metadata
for h in "${HOSTS[@]}"; do
	printf '  %s: ' "$h"
	curl -s --unix-socket "$D/$h/sock" http://docker/containers/json | python3 -c '
import json, sys
print(", ".join(sorted(c["Labels"].get("io.sluice.id", "?") for c in json.load(sys.stdin))))'
done

say "a good release under continuous load through both regions' proxies (100 requests/s)"
"$S" load --url http://127.0.0.1:16001/items/1 --url http://127.0.0.1:16101/items/1 --rate 100 --duration 300 >"$D/load-good.txt" &
LOADS+=($!)
sleep 1
"$S" deploy metadata v2 --wait
kill -TERM "${LOADS[-1]}"; wait "${LOADS[-1]}" || true
echo "load during the release: $(cat "$D/load-good.txt")"

say "a bad release: the canary in us-east fails its verification and rolls back by itself"
"$S" load --url http://127.0.0.1:16001/items/1 --url http://127.0.0.1:16101/items/1 --rate 100 --duration 300 >"$D/load-bad.txt" &
LOADS+=($!)
sleep 1
"$S" deploy metadata v2-bad --wait || echo "(deploy exited $?: rolled back, as it should)"
kill -TERM "${LOADS[-1]}"; wait "${LOADS[-1]}" || true
echo "load during the bad release: $(cat "$D/load-bad.txt")"
"$S" events "$("$S" history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+')" | tail -8
"$S" status metadata

say "the instances' logs come from the engines"
"$S" logs metadata --env production --region eu-west 2>/dev/null | tail -4 || true

say "stopping the data plane: every container, then every daemon"
timeout 60 "$S" shutdown --data-plane
for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
for h in "${HOSTS[@]}"; do
	n=$(curl -s --unix-socket "$D/$h/sock" 'http://docker/containers/json?all=1' | grep -o '"Id"' | wc -l)
	echo "  $h: $n containers left"
done
echo
echo "demo-docker finished in $(($(date +%s) - START)) s"
