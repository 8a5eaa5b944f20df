#!/usr/bin/env bash
# Integration: two services behind one shared listener of each region's proxy, routed by Host
# and path prefix, through the real server: manifests with route: (hosts with {region}, a path
# prefix, a wildcard), first releases, requests by Host (421 for an unknown host, 404 for a
# path the host does not serve), a dependency reached through the shared listener with its
# Host, a manifest error with its position, and a canary of one service under load on the
# other with no failed request.
# Usage: host-routing.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-host.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:27170
export SLUICE_DATA="$D"
SERVER_PID=
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

cleanup() {
	set +e
	if curl -s -m 1 "$SLUICE_SERVER/v1/health" >/dev/null 2>&1; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	pkill -9 -f "$D" 2>/dev/null
	if [ "$fail" -ne 0 ]; then echo "--- server log"; tail -60 "$D/server.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

"$S" server --data "$D" --listen 127.0.0.1:27170 --proxy-admin 127.0.0.1:27171 >>"$D/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.05; done

# get HOST PORT PATH -> "STATUS X-Version"
get() {
	curl -s -m 5 -D "$D/h" -o "$D/b" -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:$2$3" >"$D/code" || true
	echo "$(cat "$D/code") $(tr -d '\r' <"$D/h" | sed -n 's/^X-Version: //Ip')"
}
is() { [ "$(get "$1" "$2" "$3")" == "$4" ]; }

cat >"$D/env.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east            # port_offset 0: the shared listener is 28300
  - name: west            # port_offset 100: 28400
policy:
  allow_unknown_consumers: true
Y
cat >"$D/svc.yaml" <<'Y'
kind: Service
name: metadata
route: {hosts: ["metadata.{region}.test"], port: 28300}
health: {path: /healthz, interval: 200ms, timeout: 500ms}
drain_timeout: 1s
strategy: {steps: [50, 100], step_duration: 1s}
analysis: {method: threshold, min_requests: 5}
---
kind: Service
name: profile
route: {hosts: ["profile.{region}.test", "*.profile.test"], path_prefix: /profiles, port: 28300}
depends_on: [metadata]
health: {path: /healthz, interval: 200ms, timeout: 500ms}
drain_timeout: 1s
strategy: {steps: [50, 100], step_duration: 1s}
analysis: {method: threshold, min_requests: 5}
Y
printf 'kind: Service\nname: bad\nroute:\n  hosts: [bad.test, "bad.test:80"]\n  port: 28300\n' >"$D/bad.yaml"

check "apply takes services routed by Host" "$S" apply -f "$D/env.yaml" -f "$D/svc.yaml"
out=$("$S" apply -f "$D/bad.yaml" 2>&1) && bad "a host with a port is refused" ||
	check "a host with a port is refused with its position" grep -q 'bad.yaml:4:21: route.hosts\[1\]' <<<"$out"
"$S" release push metadata v1 --artifact "$EX/metadata-v1" >/dev/null
"$S" release push metadata v2 --artifact "$EX/metadata-v2" >/dev/null
"$S" release push profile v1 --artifact "$EX/profile-v1" >/dev/null
"$S" release push profile v2 --artifact "$EX/profile-v2" >/dev/null
check "metadata v1 is promoted" "$S" deploy metadata v1 --wait --timeout 60
check "profile v1 is promoted" "$S" deploy profile v1 --wait --timeout 60

check "Host metadata.east.test reaches metadata v1 on the shared port" is metadata.east.test 28300 /items/1 "200 v1"
check "Host and port case do not matter" is METADATA.east.test:28300 28300 /healthz "200 v1"
check "the west region's proxy serves its own hosts" is metadata.west.test 28400 /items/1 "200 v1"
check "a host of another region is unknown there (421)" is metadata.west.test 28300 /items/1 "421 "
check "an unknown host is 421" is nobody.test 28300 / "421 "
check "profile answers under its prefix, through metadata by Host" \
	bash -c "[ \"\$(curl -s -m 5 -H 'Host: profile.east.test' http://127.0.0.1:28300/profiles/4)\" == '{\"id\":\"4\",\"color\":\"red\",\"version\":\"v1\"}' ]"
check "a wildcard host reaches profile" is a.b.profile.test 28300 /profiles/4 "200 v1"
check "a path outside profile's prefix is 404" is profile.east.test 28300 /items/1 "404 "
routes=$(curl -s -m 5 -H "Authorization: Bearer $(cat "$D/proxy.token")" http://127.0.0.1:27171/v1/routes)
check "both routes share one listener in the proxy" bash -c \
	"[ \$(grep -o '\"listen\":\"127.0.0.1:28300\"' <<<'$routes' | wc -l) -eq 2 ]"

# a canary of profile (fed by its own load in both regions) while metadata's route carries
# load on the same listener: nothing fails
"$S" load --url http://127.0.0.1:28300/items/1 --host metadata.east.test --rate 100 --conns 4 \
	--duration 60 >"$D/load.txt" &
L=$!
"$S" load --url http://127.0.0.1:28300/profiles/1 --host profile.east.test --rate 40 --conns 2 \
	--duration 60 >"$D/load-pe.txt" &
LE=$!
"$S" load --url http://127.0.0.1:28400/profiles/1 --host profile.west.test --rate 40 --conns 2 \
	--duration 60 >"$D/load-pw.txt" &
LW=$!
sleep 0.5
check "profile v2 is promoted through its canary" "$S" deploy profile v2 --wait --timeout 60
kill -TERM $L $LE $LW 2>/dev/null || true; wait $L $LE $LW || true
cat "$D/load-pe.txt" "$D/load-pw.txt"
check "zero failed requests on profile during its canary" bash -c \
	"grep -q ' failed 0 ' '$D/load-pe.txt' && grep -q ' failed 0 ' '$D/load-pw.txt'"
cat "$D/load.txt"
check "zero failed requests on metadata while profile's route changed" grep -q ' failed 0 ' "$D/load.txt"
check "requests were sent" bash -c "! grep -q '^requests 0 ' '$D/load.txt'"
check "profile v2 answers by Host" is profile.east.test 28300 /profiles/4 "200 v2"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
