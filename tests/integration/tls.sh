#!/usr/bin/env bash
# Integration: the API over TLS and the listening policy (ports 33170-33172, loopback only).
#   a CA and a server certificate made now with the openssl command (nothing committed); the
#   real `sluice server --tls-cert --tls-key`; `sluice status` over https with --cacert and
#   with SLUICE_CACERT works; without them it exits 3 (unreachable) saying the certificate did
#   not verify and to give --cacert; plain HTTP on the TLS port gets no HTTP answer and does
#   not disturb the server; a --listen address that is not loopback is refused before binding
#   unless TLS or --insecure-listen (which warns); bad certificate files are startup errors
#   naming the file.
# Usage: tls.sh SLUICE_BINARY
set -euo pipefail
S=$1
command -v openssl >/dev/null || { echo "skip: the openssl command is not installed"; exit 77; }
D=$(mktemp -d /tmp/sluice-it-tls.XXXXXX)
PORT=33170
URL=https://127.0.0.1:$PORT
export SLUICE_DATA="$D/data"  # the CLI reads the admin token the server writes there
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# Every call to the API goes through here (a token header will be one more argument).
sl() { "$S" "$@" --server "$URL" --cacert "$D/ca.pem"; }

SPID=
cleanup() {
	set +e
	if [ -n "$SPID" ]; then
		sl shutdown --data-plane >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$SPID" 2>/dev/null
	fi
	[ "$fail" -ne 0 ] && tail -20 "$D/server.log"
	rm -rf "$D"
}
trap cleanup EXIT

# --- certificates: a CA, and a server certificate it signs for 127.0.0.1 and localhost ---
cd "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=sluice test CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile ext.cnf -out server.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
chmod 600 ./*.key

# --- startup errors, before anything is bound or created ---
set +e
"$S" server --data "$D/refused" --listen "0.0.0.0:$((PORT + 2))" >out.txt 2>&1
rc=$?
set -e
check "--listen 0.0.0.0 without TLS exits 2" test $rc -eq 2
check "the refusal names --tls-cert/--tls-key and --insecure-listen" \
	grep -q 'not a loopback address: give --tls-cert and --tls-key.*--insecure-listen' out.txt
check "nothing was created before the refusal" test ! -e "$D/refused"
check "nothing listens on the refused port" \
	bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$((PORT + 2))) 2>/dev/null"
for addr in "[::]:$((PORT + 2))" ":$((PORT + 2))" "192.0.2.1:$((PORT + 2))"; do
	set +e
	"$S" server --data "$D/refused" --listen "$addr" >out.txt 2>&1
	rc=$?
	set -e
	# (an empty host is already refused as a malformed address, before the policy)
	check "--listen $addr without TLS is refused (exit 2)" \
		bash -c "[ $rc -eq 2 ] && grep -qE 'not a loopback address|--listen: expected HOST:PORT' out.txt"
done

set +e
"$S" server --data "$D/refused" --listen "127.0.0.1:$PORT" --tls-cert server.pem >out.txt 2>&1
rc=$?
set -e
check "--tls-cert without --tls-key exits 2" test $rc -eq 2
check "... saying they go together" grep -q 'go together' out.txt

expect_startup_error() { # what, pattern, server arguments...
	local what=$1 pattern=$2
	shift 2
	set +e
	"$S" server --data "$D/refused" --listen "127.0.0.1:$PORT" "$@" >out.txt 2>&1
	local rc=$?
	set -e
	if [ $rc -eq 2 ] && grep -q -- "$pattern" out.txt && [ ! -e "$D/refused" ]; then
		ok "$what"
	else
		bad "$what (exit $rc): $(cat out.txt)"
	fi
}
expect_startup_error "a missing certificate file is named" "--tls-cert 'nope.pem': No such file" \
	--tls-cert nope.pem --tls-key server.key
expect_startup_error "a key that is not the certificate's is named" \
	"--tls-key 'other.key' does not match the certificate in --tls-cert 'server.pem'" \
	--tls-cert server.pem --tls-key other.key
expect_startup_error "a certificate file that holds a key is named" "--tls-cert 'server.key'" \
	--tls-cert server.key --tls-key server.key

# --insecure-listen on an address this machine does not have (TEST-NET-1): the warning is
# logged, then the bind fails; nothing is bound
set +e
"$S" server --data "$D/insecure" --listen "192.0.2.1:$((PORT + 2))" --insecure-listen \
	--proxy-admin "127.0.0.1:$((PORT + 1))" >out.txt 2>&1
rc=$?
set -e
check "--insecure-listen warns that the API is plain HTTP on a network" \
	grep -q 'warn.*--insecure-listen.*plain HTTP' out.txt
check "... and goes on to bind (which fails here: not this machine's address)" \
	bash -c "[ $rc -ne 0 ] && grep -q 'cannot listen on' out.txt"

# --- the real server over TLS ---
"$S" server --data "$D/data" --listen "127.0.0.1:$PORT" --proxy-admin "127.0.0.1:$((PORT + 1))" \
	--tls-cert server.pem --tls-key server.key >server.log 2>&1 &
SPID=$!
for _ in $(seq 100); do curl -sf -m 1 --cacert ca.pem "$URL/v1/health" >/dev/null && break; sleep 0.05; done
check "the server says it serves https" grep -q "API on https://127.0.0.1:$PORT" server.log

check "sluice status over https with --cacert" sl status
check "sluice status -o json over https" bash -c "\"$S\" status -o json --server $URL --cacert ca.pem | grep -q '\"services\"'"
check "SLUICE_CACERT instead of --cacert" env SLUICE_CACERT="$D/ca.pem" "$S" status --server "$URL"
check "the name in the certificate verifies too (https://localhost)" \
	"$S" status --server "https://localhost:$PORT" --cacert ca.pem

set +e
"$S" status --server "$URL" >out.txt 2>&1
rc=$?
set -e
check "without --cacert: exit 3 (unreachable)" test $rc -eq 3
check "... saying the server could not be verified and to give --cacert" \
	grep -q 'cannot verify the sluice server.*give --cacert' out.txt
set +e
"$S" status --server "$URL" --cacert server.key >out.txt 2>&1
rc=$?
set -e
check "a --cacert file without the CA: exit 3 naming the file" \
	bash -c "[ $rc -eq 3 ] && grep -q \"cannot verify.*'server.key'\" out.txt"

code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$PORT/v1/health" || true)
check "plain HTTP on the TLS port gets no HTTP answer (curl: $code)" test "$code" = 000
set +e
"$S" status --server "http://127.0.0.1:$PORT" >out.txt 2>&1
rc=$?
set -e
check "sluice status with http:// on the TLS port: exit 3" test $rc -eq 3
check "the server still serves after plain HTTP" sl status
check "the server is still running" kill -0 "$SPID"

# --- the proxy's admin API over TLS (ports 33173-33174) ---
printf 'proxy-admin-token-0123456789abcdef\n' >ptoken && chmod 600 ptoken
set +e
timeout 10 "$S" proxy --admin "0.0.0.0:33173" >out.txt 2>&1
rc1=$?
timeout 10 "$S" proxy --admin "0.0.0.0:33173" --admin-token-file ptoken >out2.txt 2>&1
rc2=$?
set -e
check "sluice proxy on a non-loopback admin address without a token and TLS: exit 2" \
	bash -c "[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && grep -q 'needs a token and TLS' out.txt && grep -q 'needs a token and TLS' out2.txt"
"$S" proxy --admin 127.0.0.1:33173 --admin-token-file ptoken --admin-tls-cert server.pem \
	--admin-tls-key server.key >proxy1.log 2>&1 &
P1=$!
SLUICE_PROXY_TOKEN=proxy-admin-token-0123456789abcdef SLUICE_PROXY_TLS_CERT="$(cat server.pem)" \
	SLUICE_PROXY_TLS_KEY="$(cat server.key)" "$S" proxy --admin 127.0.0.1:33174 >proxy2.log 2>&1 &
P2=$!
for _ in $(seq 100); do
	curl -sf -m 1 --cacert ca.pem https://127.0.0.1:33173/healthz >/dev/null &&
		curl -sf -m 1 --cacert ca.pem https://127.0.0.1:33174/healthz >/dev/null && break
	sleep 0.05
done
pcode() { curl -s -o /dev/null -w '%{http_code}' -m 5 --cacert ca.pem "$@" || true; }
check "the proxy's admin API over TLS from --admin-tls-cert/--admin-tls-key" \
	test "$(pcode https://127.0.0.1:33173/healthz)" = 200
check "... and from PEM text in \$SLUICE_PROXY_TLS_CERT/KEY" test "$(pcode https://127.0.0.1:33174/healthz)" = 200
check "its routes need the token over TLS too (401, then 200)" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.pem https://127.0.0.1:33174/v1/routes)\" = 401 ] &&
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.pem -H 'Authorization: Bearer proxy-admin-token-0123456789abcdef' https://127.0.0.1:33174/v1/routes)\" = 200 ]"
check "plain HTTP on the proxy's TLS admin port gets no HTTP answer" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:33173/healthz || true)" = 000
kill "$P1" "$P2"
wait "$P1" "$P2" 2>/dev/null || true
set +e
SLUICE_PROXY_TLS_CERT="$(cat server.pem)" SLUICE_PROXY_TLS_KEY="$(cat other.key)" timeout 10 "$S" proxy \
	--admin 127.0.0.1:33173 >out.txt 2>&1
rc=$?
set -e
check "a key that does not match the certificate: exit 2 naming the variables" \
	bash -c "[ $rc -eq 2 ] && grep -q 'SLUICE_PROXY_TLS_KEY does not match the certificate in \\\$SLUICE_PROXY_TLS_CERT' out.txt"

echo "tls: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
