#!/usr/bin/env bash
# Integration: the OpenFeature SDKs from npm (tests/integration/ofrep/package.json) against the
# real server's OFREP endpoints on loopback (ports 34070-34071): every type with details,
# errors, targeting, a fractional split of 10,000 keys, and the web provider's bulk polling
# with ETag/304 and a kill seen within one poll.
# Usage: ofrep.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
S=$B/src/sluice
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node and npm are needed"; exit 77; }
D=$(mktemp -d /tmp/sluice-it-ofrep.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:34070
export SLUICE_DATA="$D/data"
# the SDKs, from the lock file, once per build directory
M=$B/ofrep-node
if [ ! -d "$M/node_modules/@openfeature/web-sdk" ]; then
	mkdir -p "$M"
	cp "$SRC/tests/integration/ofrep/package.json" "$SRC/tests/integration/ofrep/package-lock.json" "$M/"
	(cd "$M" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || { echo "could not install the SDKs"; exit 1; }
fi
cp "$SRC/tests/integration/ofrep/sdk.mjs" "$M/"
cleanup() {
	set +e
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
"$S" server --data "$D/data" --listen 127.0.0.1:34070 --proxy-admin 127.0.0.1:34071 >"$D/server.log" 2>&1 &
up() { curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null; }
for _ in $(seq 150); do up && break; sleep 0.1; done
up || { echo "the server did not start:"; cat "$D/server.log"; exit 1; }
printf 'kind: Environment\nname: production\nregions: [{name: eu}]\n' >"$D/env.yaml"
"$S" apply -f "$D/env.yaml" >/dev/null
cat >"$D/flags.yaml" <<'Y'
flags:
  dark-mode:
    state: ENABLED
    variants: {on: true, off: false}
    defaultVariant: off
    targeting: {if: [{ends_with: [{var: email}, "@staff.io"]}, "on", null]}
  color:
    state: ENABLED
    variants: {red: "#f00", blue: "#00f"}
    defaultVariant: red
  empty-string:
    state: ENABLED
    variants: {none: ""}
    defaultVariant: none
  limit:
    state: ENABLED
    variants: {zero: 0, ten: 10}
    defaultVariant: zero
  config:
    state: ENABLED
    variants: {empty: {}, full: {a: 1}}
    defaultVariant: empty
    metadata: {owner: web}
  retired:
    state: DISABLED
    variants: {a: false}
    defaultVariant: a
  nodefault:
    state: ENABLED
    variants: {a: "x"}
    defaultVariant: null
  broken:
    state: ENABLED
    variants: {a: "x"}
    defaultVariant: a
    targeting: {if: [{frobnicate: []}, "a", null]}
  split:
    state: ENABLED
    variants: {red: red, blue: blue, green: green}
    defaultVariant: red
    targeting: {fractional: [["red", 25], ["blue", 25], ["green", 50]]}
Y
"$S" flags apply "$D/flags.yaml" --reason "sdk test" >/dev/null 2>&1
TOKEN=$("$S" token create web-app --scope 'evaluate:*:production' 2>/dev/null)
cd "$M"
BASE="$SLUICE_SERVER/v1/envs/production" TOKEN="$TOKEN" \
	KILL="$S flag kill dark-mode --reason sdk-test" node sdk.mjs
