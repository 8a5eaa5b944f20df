#!/usr/bin/env bash
# Integration: artifact uploads stream to disk under a size limit (issue 11, item 6), against
# the real server on 127.0.0.1:26170 (proxy admin 26171).
#   four concurrent 250 MiB uploads: the server's peak RSS (VmHWM) stays under 100 MB and
#   GET /v1/health answers within 1 s while they run; one 201, three 200 (the same content),
#   the stored file has the digest of its name and no temporary file is left;
#   a body whose digest is not the path's: 400, nothing stored, no temporary file;
#   over the 256 MiB limit: 413 on a declared length, 413 mid-body on a chunked one, nothing left;
#   a client killed mid-upload: its temporary file (there while it sent) is removed.
# Every wait is bounded; the whole runs in about 20 s (the hashing of 1 GB dominates).
# Usage: artifacts.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
D=$(mktemp -d /tmp/sluice-it-artifacts.XXXXXX)
PORT=26170
URL=http://127.0.0.1:$PORT
export SLUICE_SERVER=$URL
export SLUICE_DATA="$D/data"  # the CLI reads the admin token the server writes there
A=$D/data/artifacts
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

SP= CURLS=()
cleanup() {
	set +e
	for p in "${CURLS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	if [ -n "$SP" ]; then
		"$S" shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SP" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SP" 2>/dev/null
	fi
	[ "$fail" -ne 0 ] && tail -30 "$D/server.log"
	rm -rf "$D"
}
trap cleanup EXIT

# Every call to the API goes through here (the one place for headers every request needs).
# api PATH [curl options...]
api() {
	local path=$1; shift
	local token; token=$(cat "$SLUICE_DATA/admin.token" 2>/dev/null || true)
	curl -sS -H "Host: 127.0.0.1:$PORT" -H "Authorization: Bearer $token" "$@" "$URL$path"
}
# put DIGEST [curl options...]: PUT /v1/artifacts/DIGEST; prints the status.
put() {
	local digest=$1; shift
	api "/v1/artifacts/$digest" -X PUT -H 'Content-Type: application/octet-stream' \
		-o /dev/null -w '%{http_code}' "$@" || true
}
temps() { find "$A" -maxdepth 1 -name '.tmp-*' | wc -l; }
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SP/status"; }

# 250 MiB each; a sanitizer build (ASan at -O0 hashes ten times slower) streams 64 MiB each,
# which checks the same streaming and cleanup within the time limits
SIZE=250M UPLOAD_S=60
if grep -q __asan_init "$S"; then SIZE=64M UPLOAD_S=120; fi
echo "# uploads of $SIZE each"
head -c "$SIZE" /dev/urandom >"$D/big"
SHA=$(sha256sum "$D/big" | cut -d' ' -f1)

mkdir -p "$D/data"
"$S" server --data "$D/data" --listen 127.0.0.1:$PORT --proxy-admin 127.0.0.1:26171 >"$D/server.log" 2>&1 &
SP=$!
for _ in $(seq 100); do api /v1/health -f -m 1 -o /dev/null 2>/dev/null && break; sleep 0.05; done
check "the server answers" api /v1/health -f -m 1 -o /dev/null
echo "# server RSS at rest: $(kb VmRSS) kB"

# ---- four concurrent 250 MiB uploads (64 MiB under a sanitizer) ----
for i in 1 2 3 4; do
	put "sha256:$SHA" -m "$UPLOAD_S" -T "$D/big" >"$D/up$i" &
	CURLS+=($!)
done
# sample the server's memory and health while any upload runs (at most UPLOAD_S s)
lat=() maxrss=0
for _ in $(seq $((UPLOAD_S * 5))); do
	running=0
	for p in "${CURLS[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
	[ "$running" -eq 1 ] || break
	r=$(kb VmRSS)
	[ "$r" -gt "$maxrss" ] && maxrss=$r
	t=$(api /v1/health -m 5 -o /dev/null -w '%{time_total}' 2>/dev/null || echo 99)
	lat+=("$t")
	sleep 0.2
done
for p in "${CURLS[@]}"; do wait "$p" || true; done
CURLS=()
hwm=$(kb VmHWM)
slowest=$(printf '%s\n' "${lat[@]}" | sort -g | tail -1)
echo "# ${#lat[@]} health checks during the uploads, slowest ${slowest} s; VmRSS peak sampled ${maxrss} kB, VmHWM ${hwm} kB"
echo "# health latencies (s): ${lat[*]}"
statuses=$(cat "$D"/up? | fold -w3 | sort | tr '\n' ' ')
check "the four uploads: one 201, three 200 (got $statuses)" test "$statuses" = "200 200 200 201 "
check "health was checked at least 3 times during the uploads (${#lat[@]})" test "${#lat[@]}" -ge 3
check "health answered within 1 s throughout (slowest ${slowest} s)" \
	awk -v t="$slowest" 'BEGIN { exit !(t < 1.0) }'
check "the server's peak RSS stayed under 100 MB (VmHWM ${hwm} kB)" test "$hwm" -lt 100000
check "the artifact is stored under its digest" test -f "$A/$SHA"
check "the stored file has that digest" test "$(sha256sum "$A/$SHA" | cut -d' ' -f1)" = "$SHA"
check "no temporary file is left" test "$(temps)" -eq 0

# ---- a body whose digest is not the path's ----
ZERO=$(printf '0%.0s' $(seq 64))
head -c 3M "$D/big" >"$D/small"
st=$(put "sha256:$ZERO" -m 30 -T "$D/small")
check "a wrong digest is refused with 400 (got $st)" test "$st" = 400
check "nothing is stored under the wrong digest" test ! -e "$A/$ZERO"
check "no temporary file is left after a wrong digest" test "$(temps)" -eq 0
st=$(put "sha256:..%2F..%2Fsluice.db" -m 5 --data-binary x)
check "a digest that is not sha256:HEX is refused with 400 (got $st)" test "$st" = 400

# ---- over the limit (256 MiB) ----
truncate -s 257M "$D/huge" # sparse: costs nothing to read
st=$(put "sha256:$ZERO" -m 30 -T "$D/huge")
check "a declared length over the limit is refused with 413 (got $st)" test "$st" = 413
# (head may die of SIGPIPE when the server cuts the body: not the test's failure)
st=$(head -c 257M /dev/zero | put "sha256:$ZERO" -m 60 -H 'Transfer-Encoding: chunked' -T -) || true
check "a chunked body over the limit is cut with 413 (got $st)" test "$st" = 413
check "nothing is stored over the limit" test ! -e "$A/$ZERO"
for _ in $(seq 50); do [ "$(temps)" -eq 0 ] && break; sleep 0.1; done
check "no temporary file is left over the limit" test "$(temps)" -eq 0

# ---- a client killed mid-upload (its connection closes with the body half sent) ----
put "sha256:$ZERO" -m 60 --limit-rate 10M -T "$D/big" >/dev/null &
CURLS+=($!)
for _ in $(seq 100); do [ "$(temps)" -gt 0 ] && break; sleep 0.05; done
check "an upload in progress is written to a temporary file" test "$(temps)" -eq 1
sleep 0.5
pkill -9 -P "${CURLS[0]}" # the curl of that background put (its only child)
wait "${CURLS[0]}" 2>/dev/null || true
CURLS=()
for _ in $(seq 50); do [ "$(temps)" -eq 0 ] && break; sleep 0.1; done
check "the killed client's temporary file is removed" test "$(temps)" -eq 0
check "nothing is stored for the killed client" test ! -e "$A/$ZERO"
check "the artifacts folder holds the one artifact" test "$(ls -A "$A")" = "$SHA"
check "the server still answers" api /v1/health -f -m 1 -o /dev/null

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
