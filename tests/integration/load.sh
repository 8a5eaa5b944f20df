#!/usr/bin/env bash
# Integration: `sluice load` against an example service on 127.0.0.1:29501 (29502 stays closed):
# usage errors, counts at a given rate, 4xx not failures, connection errors, SIGTERM still
# prints the summary and writes the JSON, the JSON is complete and no temporary file is left.
# Then against a small Python server on 127.0.0.1:29503 that frames its answers every way a
# healthy service may (chunked on keep-alive, until close, 1xx first, 204, 304): 0 failures.
# Usage: load.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
D=$(mktemp -d /tmp/sluice-it-load.XXXXXX)
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
MP= PP=
cleanup() { [ -n "$MP" ] && kill "$MP" 2>/dev/null; [ -n "$PP" ] && kill "$PP" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT

"$EX/metadata-v1" --port 29501 >"$D/metadata.log" 2>&1 &
MP=$!
for _ in $(seq 50); do curl -s -m 1 http://127.0.0.1:29501/healthz >/dev/null && break; sleep 0.1; done

usage() { local want=$1 msg=$2; shift 2; set +e; "$S" load "$@" >/dev/null 2>"$D/err"; local rc=$?; set -e
	[ "$rc" -eq "$want" ] && grep -qF -- "$msg" "$D/err"; }
check "--help exits 0 and prints the usage" bash -c "'$S' load --help | grep -q 'usage: sluice load --url URL'"
check "no --url is a usage error" usage 2 "at least one --url is required"
check "a host name is refused" usage 2 "'localhost' is not an IPv4 address" --url http://localhost:1/
check "a duration over an hour is refused" usage 2 "--duration: expected a duration like 30s, 1m30s or 250ms (a number alone is seconds) from 1ms to 1h, got '3601'" --url http://127.0.0.1:29501/ --duration 3601
check "a fractional --conns is refused" usage 2 "--conns: expected an integer from 1 to 64, got '2.5'" --url http://127.0.0.1:29501/ --conns 2.5
check "an unknown option is refused" usage 2 "unknown option '--rps'" --url http://127.0.0.1:29501/ --rps 5
check "a header without a colon is refused" usage 2 "--header: expected 'Name: value'" --url http://127.0.0.1:29501/ --header bad

# 200 requests/s for 2 s over two URLs, one of them a 404.
"$S" load --url http://127.0.0.1:29501/items/1 --url http://127.0.0.1:29501/nope --rate 200 \
	--duration 2 --conns 4 --json "$D/r.json" >"$D/r.txt"
cat "$D/r.txt"
n=$(awk '{print $2}' "$D/r.txt")
check "about rate x duration requests (350..450, got $n)" test "$n" -ge 350 -a "$n" -le 450
check "a 404 is counted as 4xx, not as a failure" grep -q ' failed 0 (5xx 0, connection 0) ' "$D/r.txt"
check "the version header is counted" grep -q "versions v1=$n" "$D/r.txt"
check "the JSON has every field" python3 -c "
import json,sys; r=json.load(open('$D/r.json'))
assert set(r)>={'requests','failed','5xx','connection_errors','2xx','4xx','p50_ms','p99_ms','versions'}, r
assert r['requests']==$n and r['failed']==0 and r['2xx']+r['4xx']==$n and r['versions']=={'v1':$n}, r"
check "no temporary file is left" bash -c "! ls '$D' | grep -q tmp"

# A closed port: every request is a connection error.
"$S" load --url http://127.0.0.1:29502/ --rate 20 --duration 1 >"$D/dead.txt"
cat "$D/dead.txt"
check "connection errors are failures" grep -qE '^requests ([1-9][0-9]*) failed \1 \(5xx 0, connection \1\)' "$D/dead.txt"

# SIGTERM: the summary comes at once and the JSON is written.
"$S" load --url http://127.0.0.1:29501/items/1 --rate 100 --duration 60 --json "$D/t.json" >"$D/t.txt" &
L=$!
sleep 1
t0=$(date +%s%N)
kill -TERM "$L"
set +e; wait "$L"; rc=$?; set -e
ms=$((($(date +%s%N) - t0) / 1000000))
cat "$D/t.txt"
check "exit 0 after SIGTERM" test "$rc" -eq 0
check "the summary comes within 1 s of SIGTERM (${ms} ms)" test "$ms" -lt 1000
check "the summary counts the requests sent before it" grep -qE '^requests [1-9][0-9]* failed 0 ' "$D/t.txt"
check "the JSON is written after SIGTERM" python3 -c "import json; assert json.load(open('$D/t.json'))['failed']==0"

# Framings other than Content-Length. Each path answers with the bytes written here; every new
# connection adds a line to $D/conns, so keep-alive reuse can be counted.
cat >"$D/framings.py" <<'PY'
import socketserver, sys
ANSWERS = {
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Version: vc\r\n\r\n"
                 b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Version: vz\r\n\r\nuntil close",
    b"/early": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Version: ve\r\n\r\nok",
    b"/empty": b"HTTP/1.1 204 No Content\r\nX-Version: v0\r\n\r\n",
    b"/same": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nX-Version: v3\r\n\r\n",
}
class H(socketserver.StreamRequestHandler):
    def handle(self):
        with open(sys.argv[2], "a") as f:
            f.write("conn\n")
        while True:
            line = self.rfile.readline(8192)
            if not line:
                return
            path = line.split(b" ")[1]
            while self.rfile.readline(8192) not in (b"\r\n", b""):
                pass
            self.wfile.write(ANSWERS[path])
            self.wfile.flush()
            if path == b"/close":
                return
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
: >"$D/conns"
python3 "$D/framings.py" 29503 "$D/conns" &
PP=$!
for _ in $(seq 50); do curl -s -m 1 -o /dev/null http://127.0.0.1:29503/chunked && break; sleep 0.1; done
: >"$D/conns"
"$S" load --url http://127.0.0.1:29503/chunked --rate 100 --duration 1 --conns 2 >"$D/ch.txt"
cat "$D/ch.txt"
n=$(awk '{print $2}' "$D/ch.txt")
check "chunked answers are not failures ($n requests)" grep -qE "^requests ([1-9][0-9]*) failed 0 \(5xx 0, connection 0\) 2xx \1 .* versions vc=\1\$" "$D/ch.txt"
c=$(wc -l <"$D/conns")
check "chunked answers in a row keep their connection ($c connections for 2)" test "$c" -le 2
"$S" load --url http://127.0.0.1:29503/close --url http://127.0.0.1:29503/early \
	--url http://127.0.0.1:29503/empty --url http://127.0.0.1:29503/same --url http://127.0.0.1:29503/chunked \
	--rate 100 --duration 1 --conns 5 --json "$D/f.json" >"$D/f.txt"
cat "$D/f.txt"
check "until close, 1xx first, 204, 304 and chunked: no failure" python3 -c "
import json; r=json.load(open('$D/f.json'))
assert r['requests']>=80 and r['failed']==0 and r['2xx']+r['4xx']==r['requests'], r
assert set(r['versions'])=={'vz','ve','v0','v3','vc'} and sum(r['versions'].values())==r['requests'], r"

echo "load: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
