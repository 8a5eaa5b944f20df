#!/usr/bin/env bash
# Integration: tokens, authorization and the audit log against the real server over real HTTP
# on loopback (ports 33070-33071). The admin token of the first start (mode 0600, not made
# again on a restart), a scoped token refused outside its scope, revocation, the CLI's token
# sources ($SLUICE_TOKEN, the config file, a local server's admin.token), the audit log, and
# no secret in the server's log, the audit log or any error.
# Usage: security.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
D=$(mktemp -d /tmp/sluice-it-sec.XXXXXX)
export SLUICE_SERVER=http://127.0.0.1:33070
export SLUICE_DATA="$D"
export SLUICE_CONFIG="$D/none.conf"
unset SLUICE_TOKEN
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
exits() { # exits CODE OUT CMD...: runs CMD, its stdout+stderr to OUT, and checks its exit code
	local want=$1 out=$2; shift 2
	set +e; "$@" >"$out" 2>&1; local got=$?; set -e
	[ "$got" -eq "$want" ] || { echo "  exit $got, want $want: $(head -c 300 "$out")"; return 1; }
}

cleanup() {
	set +e
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	[ "$fail" -ne 0 ] && tail -40 "$D/server.log"
	rm -rf "$D"
}
trap cleanup EXIT

start() {
	"$S" server --data "$D" --listen 127.0.0.1:33070 --proxy-admin 127.0.0.1:33071 >>"$D/server.log" 2>&1 &
	for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && return 0; sleep 0.05; done
	return 1
}
start

# --- the first start's admin token
check "the first start writes the admin token, mode 0600" \
	bash -c "[ \"\$(stat -c %a '$D/admin.token')\" = 600 ] && grep -qE '^slc_[A-Za-z0-9_-]{43}\$' '$D/admin.token'"
check "and says where" grep -q "created the admin token in $D/admin.token" "$D/server.log"
ADMIN=$(cat "$D/admin.token")

# --- without a token: liveness only
check "health answers without a token, and says nothing else" \
	bash -c "[ \"\$(curl -s $SLUICE_SERVER/v1/health | tr -d ' \n')\" = '{\"ok\":true}' ]"
code() { curl -s -o "$D/body" -w '%{http_code}' "$@"; }
check "status without a token is 401" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $SLUICE_SERVER/v1/status)\" = 401 ]"
check "a deploy without a token is 401, with WWW-Authenticate" bash -c "curl -s -i -X POST -H 'Content-Type: application/json' \
	-d '{\"service\":\"a\",\"version\":\"v1\"}' $SLUICE_SERVER/v1/deployments | grep -q 'WWW-Authenticate: Bearer'"
check "the CLI with no token for a remote-looking server says how to give one" \
	exits 2 "$D/o" env SLUICE_DATA="$D/elsewhere" "$S" status
check "  (its message)" grep -q "SLUICE_TOKEN" "$D/o"

# --- the CLI finds a local server's admin token by itself
cat >"$D/m.yaml" <<'Y'
kind: Environment
name: production
regions: [{name: one}]
---
kind: Service
name: pay
listen_port: 33101
run: {command: /bin/true}
---
kind: Service
name: web
listen_port: 33102
run: {command: /bin/true}
Y
check "apply with the local admin token" exits 0 "$D/o" "$S" apply -f "$D/m.yaml"

# --- a scoped token
check "token create" exits 0 "$D/ci" "$S" token create ci --scope 'deploy,read:pay' --expires 30d
CI=$(head -1 "$D/ci")
check "  prints the secret once" bash -c "grep -qE '^slc_' <<<'$CI'"
check "  token list shows it, without the secret" bash -c "'$S' token list >'$D/o' && grep -q 'ci ' '$D/o' && ! grep -q '$CI' '$D/o'"
check "the scoped token reads" exits 0 "$D/o" env SLUICE_TOKEN="$CI" "$S" status
check "the scoped token may not deploy web (403: exit 2)" \
	exits 2 "$D/o" env SLUICE_TOKEN="$CI" "$S" deploy web v1
check "  and says why" grep -q "token 'ci' may not deploy web in production" "$D/o"
check "the scoped token may not shut the server down" exits 2 "$D/o" env SLUICE_TOKEN="$CI" "$S" shutdown
check "nor create tokens" exits 2 "$D/o" env SLUICE_TOKEN="$CI" "$S" token create x --scope admin
check "a bad scope is refused naming the field" exits 2 "$D/o" "$S" token create y --scope 'deploy:Bad_Name'
check "  (scopes[0].services[0])" grep -q "scopes\[0\].services\[0\]" "$D/o"

# --- the config file
printf '# sluice\nserver = %s\ntoken = %s\n' "$SLUICE_SERVER" "$CI" >"$D/ok.conf"
check "a token from the config file" exits 0 "$D/o" env SLUICE_CONFIG="$D/ok.conf" SLUICE_DATA="$D/elsewhere" "$S" status
printf 'server = %s\ntokn = x\n' "$SLUICE_SERVER" >"$D/bad.conf"
check "a config file with an unknown key is refused at FILE:LINE" \
	exits 2 "$D/o" env SLUICE_CONFIG="$D/bad.conf" "$S" status
check "  ($D/bad.conf:2)" grep -q "$D/bad.conf:2: unknown key 'tokn'" "$D/o"

# --- revocation is immediate
check "revoke" exits 0 "$D/o" "$S" token revoke ci
check "a revoked token is refused at once (401: exit 2)" exits 2 "$D/o" env SLUICE_TOKEN="$CI" "$S" status
check "  the error does not quote the token" bash -c "! grep -q '$CI' '$D/o'"
check "a malformed token is 401" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' $SLUICE_SERVER/v1/status)\" = 401 ]"

# --- the audit log
check "sluice audit shows the refusals and changes" exits 0 "$D/audit" "$S" audit
check "  the apply by admin" grep -qE "admin +apply .*POST /v1/apply -> ok" "$D/audit"
check "  the refused deploy by ci, with the target" grep -qE "ci +deploy +web +production .*-> 403" "$D/audit"
check "  the token creation and revocation" bash -c "grep -q 'POST /v1/tokens -> ok' '$D/audit' && grep -q 'POST /v1/tokens/ci/revoke -> ok' '$D/audit'"
check "audit --service web -o json" bash -c "'$S' audit --service web -o json | python3 -c '
import json, sys
rows = json.load(sys.stdin)[\"audit\"]
assert rows and all(r[\"service\"] == \"web\" for r in rows), rows
assert all(r[\"client\"].startswith(\"127.0.0.1:\") for r in rows), rows
'"
check "audit --since with a bad value is a usage error" exits 2 "$D/o" "$S" audit --since yesterday

# --- no secret anywhere it should not be
check "no secret in the server's log" bash -c "! grep -qF -e '$CI' -e '$ADMIN' '$D/server.log'"
check "no secret in the audit log" bash -c "! grep -qF -e '$CI' -e '$ADMIN' '$D/audit'"
check "no secret in the store's files (hashes only)" bash -c "! grep -qaF -e '$CI' -e '$ADMIN' '$D'/sluice.db*"

# --- the proxy's admin API: only the control plane may change the routes
PTOK=$(cat "$D/proxy.token")
check "the proxy's admin token is in DATA/proxy.token, mode 0600" \
	bash -c "[ \"\$(stat -c %a '$D/proxy.token')\" = 600 ] && [ ${#PTOK} -ge 32 ]"
for _ in $(seq 50); do curl -sf -m 1 -o /dev/null http://127.0.0.1:33071/healthz && break; sleep 0.1; done
check "the proxy's health answers without a token" \
	bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:33071/healthz)\" = 200 ]"
check "its routes without the token are 401" \
	bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:33071/v1/routes)\" = 401 ]"
check "a route put without the token is 401" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
	-d '{\"listen\":\"127.0.0.1:33079\",\"backends\":[{\"addr\":\"127.0.0.1:1\"}]}' http://127.0.0.1:33071/v1/routes/evil)\" = 401 ]"
check "with the admin token of the API instead: 401" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \
	-H 'Authorization: Bearer $ADMIN' http://127.0.0.1:33071/v1/routes)\" = 401 ]"
check "with the proxy's token: 200" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \
	-H 'Authorization: Bearer $PTOK' http://127.0.0.1:33071/v1/routes)\" = 200 ]"
printf '%s\n' "$PTOK" >"$D/ptok.pattern"  # a pattern file: the check's own command line stays clean
check "the token is on no command line and in no log" \
	bash -c "! ps -eo args | grep -qF -f '$D/ptok.pattern' && ! grep -qF -f '$D/ptok.pattern' '$D/server.log' '$D/proxy.log'"

# --- a restart keeps the admin token
"$S" shutdown >/dev/null
for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
start
check "a restart makes no new admin token" bash -c "[ \"\$(cat '$D/admin.token')\" = '$ADMIN' ]"
check "and it still works" exits 0 "$D/o" "$S" status
check "nor a new proxy token, and the proxy that outlived it still obeys it" \
	bash -c "[ \"\$(cat '$D/proxy.token')\" = '$PTOK' ] && curl -sf -o /dev/null -H 'Authorization: Bearer $PTOK' http://127.0.0.1:33071/v1/routes"

echo "# security: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
