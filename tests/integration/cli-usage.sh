#!/bin/bash
# Wrong invocations of the real binary, no server running: each exits 2 (EXIT_USAGE) with a
# message naming the option or argument and what is expected, and does nothing (the server
# address points at a closed port: a command that tried to call it would exit 3).
# Usage: cli-usage.sh SLUICE_BINARY
set -u
sluice=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export SLUICE_SERVER=http://127.0.0.1:9
fails=0 n=0
# bad 'MESSAGE SUBSTRING' ARGS...: exit 2, the message on stderr, nothing on stdout
bad() {
	local want=$1; shift
	n=$((n + 1))
	"$sluice" "$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ "$rc" = 2 ] && grep -qF -- "$want" "$tmp/err" && [ ! -s "$tmp/out" ]; then
		echo "ok   sluice $*"
	else
		echo "FAIL sluice $*: exit $rc, stderr: $(head -c 400 "$tmp/err"), stdout: $(head -c 200 "$tmp/out"); wanted exit 2 and '$want'"
		fails=$((fails + 1))
	fi
}

bad "deploy: unknown option '--frobnicate'" deploy metadata v2 --frobnicate
bad "notify add: expected URL, got 0 arguments" notify add
bad "notify add: --format: expected json, slack or cloudevents" notify add http://127.0.0.1:9/h --format xml
bad "notify add: --secret: 16 to 256 characters" notify add http://127.0.0.1:9/h --secret short
bad "notify add: --env:" notify add http://127.0.0.1:9/h --env ../prod
bad "URL" notify add ftp://example.com/
bad "notify remove: ID: expected a subscription's id" notify remove abc
bad "notify list: unexpected argument 'x'" notify list x
bad "deploy: option '--env' needs a value" deploy metadata v2 --env
bad "deploy: expected SERVICE VERSION, got 1 argument" deploy metadata
bad "deploy: unexpected argument 'extra' (expected SERVICE VERSION)" deploy metadata v2 extra
bad "deploy: SERVICE: expected a name of lowercase letters" deploy ../etc v2
bad "--timeout: expected a duration like 30s, 1m30s or 250ms (a number alone is seconds) from 1s to 168h, got '5x'" \
	deploy metadata v2 --wait --timeout 5x
bad "deploy: --timeout is only used with --wait" deploy metadata v2 --timeout 30s
bad "-o: expected text or json, got 'yaml'" status -o yaml
bad "status: unknown option '-x'" status -x
bad "--server: expected an http:// or https:// URL with a host, got 'localhost:7070'" history metadata --server localhost:7070
bad "events: DEPLOYMENT: expected an integer from 1 to" events 12abc
bad "--rollout: expected an integer from 1 to" events --rollout r1
bad "flag rollout: --variant, --steps and --service are required (or --abort)" flag rollout new-checkout --variant on
bad "--steps: expected percentages 1..100 separated by commas" flag rollout f --variant on --service web --steps 0,50
bad "flag rollout: --abort takes only NAME, --env and --reason" flag rollout f --abort --steps 10
bad "flag rollout: expected NAME, got 0 arguments" flag rollout --abort
bad "retry: --region REGION is required" retry 3
bad "promote: expected DEPLOYMENT (an id), got 0 arguments" promote
bad "--region: expected a name" promote 3 --region "a b"
bad "shutdown: unexpected argument 'now' (expected no argument)" shutdown now
bad "--bytes: expected an integer from 1 to 8388608, got '-1'" logs metadata --bytes -1
bad "release list: --artifact is only used with push" release list metadata --artifact /bin/true
bad "plan: 'metadata=v/1': VERSION: expected a version" plan metadata=v/1
bad "can-i-deploy: option '--env' needs a value" can-i-deploy metadata v2 --env
bad "--rate: expected a rate per second" load --url http://127.0.0.1:9/ --rate 10/m
bad "--duration: expected a duration" load --url http://127.0.0.1:9/ --duration 1e999
bad "--conns: expected an integer from 1 to 64, got '4.5'" load --url http://127.0.0.1:9/ --conns 4.5
bad "--confidence: expected a number from 0.5 to 0.999999, got '0.99x'" judge --baseline a --canary b --confidence 0.99x
bad "--log-level: expected debug, info, warn or error, got 'loud'" server --data "$tmp/d" --log-level loud
bad "--listen: expected HOST:PORT" server --data "$tmp/d" --listen 127.0.0.1
bad "server: unexpected argument 'now' (expected no argument)" server --data "$tmp/d" now
bad "--workers: expected an integer from 1 to 256, got '8 '" proxy --config "$tmp/p.json" --workers "8 "
bad "proxy: unknown option '--verbosity'" proxy --config "$tmp/p.json" --verbosity
bad "'nope' is not a command" nope
# nothing was done: the server refused before creating its data directory
n=$((n + 1))
if [ -e "$tmp/d" ]; then echo "FAIL a refused 'sluice server' created its data directory"; fails=$((fails + 1)); else echo "ok   a refused 'sluice server' created nothing"; fi

echo "$((n - fails))/$n passed"
[ "$fails" = 0 ]
