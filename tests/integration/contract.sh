#!/bin/bash
# `sluice contract diff|check|validate` on the Metadata example contracts: exit codes
# (0 nothing breaking, 1 breaking, 2 invalid input), the sentences, and -o json.
# usage: contract.sh SLUICE SOURCE_ROOT
set -u
SLUICE=$1
EX=$2/examples/contracts
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
n=0

# run EXPECTED_EXIT PHRASE ARGS...: PHRASE must appear in stdout+stderr ('' for none)
run() {
	local want=$1 phrase=$2
	shift 2
	n=$((n + 1))
	"$SLUICE" contract "$@" >"$TMP/out" 2>&1
	local rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: sluice contract $* exited $rc, expected $want"
		sed 's/^/  | /' "$TMP/out"
		fails=$((fails + 1))
		return
	fi
	if [ -n "$phrase" ] && ! grep -qF -- "$phrase" "$TMP/out"; then
		echo "FAIL: sluice contract $*: no '$phrase' in the output"
		sed 's/^/  | /' "$TMP/out"
		fails=$((fails + 1))
		return
	fi
	echo "ok: sluice contract $* -> $rc"
}

run 0 "usage: sluice contract diff" --help
run 2 "usage" 
run 2 "not a contract command" frobnicate a b

# diff: the two-step deploy is safe step by step; skipping the expand step is not
run 0 "compatible" diff "$EX/metadata-v1.yaml" "$EX/metadata-v2.yaml"
run 1 "required property 'metadata' removed" diff "$EX/metadata-v2.yaml" "$EX/metadata-v3.yaml"
run 1 "GET /items/{id} 200 response /metadata" diff "$EX/metadata-v1.yaml" "$EX/metadata-v3.yaml"
run 0 "" diff "$EX/openapi/metadata-v1.yaml" "$EX/openapi/metadata-v2.yaml"
run 1 '"verdict": "breaking"' diff -o json "$EX/metadata-v2.yaml" "$EX/metadata-v3.yaml"
run 2 "could not open" diff "$EX/metadata-v1.yaml" "$TMP/nope.yaml"
run 2 "unknown output format" diff -o xml "$EX/metadata-v1.yaml" "$EX/metadata-v2.yaml"

# check: what a consumer reads against what a provider serves
run 0 "ok" check "$EX/metadata-v1.yaml" "$EX/profile-v1.yaml"
run 0 "ok" check "$EX/metadata-v2.yaml" "$EX/profile-v1.yaml"
run 1 "/metadata is not in the provider's schema" check "$EX/metadata-v3.yaml" "$EX/profile-v1.yaml"
run 0 "fallback alternative 2 (/metadata)" check "$EX/metadata-v1.yaml" "$EX/profile-v2.yaml"
run 0 "ok" check "$EX/metadata-v3.yaml" "$EX/profile-v2.yaml"
run 0 "ok" check "$EX/profile-v2.yaml" "$EX/web-v1.yaml"
run 0 "it does not call metadata" check "$EX/metadata-v3.yaml" "$EX/web-v1.yaml"
run 1 '"verdict": "refused"' check -o json "$EX/metadata-v3.yaml" "$EX/profile-v1.yaml"
run 0 "" check --service metadata "$EX/metadata-v2.yaml" "$EX/profile-v2.yaml"
printf 'service: reader\nconsumes:\n  web:\n    - {method: GET, path: /}\n' >"$TMP/reader.yaml"
run 2 "no 'provides'" check "$TMP/reader.yaml" "$EX/profile-v1.yaml"

# parameters (issue 17): metadata v4 adds a required query parameter; a consumer that lists
# no parameters is refused with how to declare them, profile v3 lists it
run 1 "new required parameter" diff "$EX/metadata-v3.yaml" "$EX/metadata-v4.yaml"
run 1 'parameters: [{name: lang, in: query, schema: {"type":"string","minLength":2,"maxLength":8}}]' check "$EX/metadata-v4.yaml" "$EX/profile-v2.yaml"
run 0 "ok" check "$EX/metadata-v4.yaml" "$EX/profile-v3.yaml"
run 0 "sends query parameter 'lang', which the provider does not declare" check "$EX/metadata-v3.yaml" "$EX/profile-v3.yaml"
printf 'service: profile\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n      parameters: [{name: lang, in: query, schema: {type: string, enum: [en]}}]\n      response_headers: [{name: X-Version, type: string}]\n' >"$TMP/hdr.yaml"
run 1 "reads response header 'X-Version', not guaranteed: status 200 does not declare it" check "$EX/metadata-v3.yaml" "$TMP/hdr.yaml"
run 0 "ok" check "$EX/metadata-v4.yaml" "$TMP/hdr.yaml"
printf 'service: profile\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n      parameters: [{name: lang, in: query, schema: {type: string, enum: [en]}}]\n      errors: [{status: 404, reads: [{path: /error, type: string}]}]\n' >"$TMP/err.yaml"
run 1 "status 404 declares no JSON body" check "$EX/metadata-v3.yaml" "$TMP/err.yaml"
run 0 "ok" check "$EX/metadata-v4.yaml" "$TMP/err.yaml"
printf 'service: profile\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n      parameters: [{name: lang, in: qery, type: string}]\n' >"$TMP/badp.yaml"
run 2 "badp.yaml:6:37: consumes.metadata[0].parameters[0]: 'in' must be path, query, header or cookie" validate "$TMP/badp.yaml"

# validate: every example is valid; a mistake is reported as FILE:LINE:COL
run 0 "valid" validate "$EX"/*.yaml
printf 'service: profile\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n      reads:\n        - {path: metadata, type: object}\n' >"$TMP/bad.yaml"
run 2 "bad.yaml:7:18: consumes.metadata[0].reads[0]: a read path starts with '/'" validate "$TMP/bad.yaml"
run 2 "bad.yaml:7:18" check "$EX/metadata-v1.yaml" "$TMP/bad.yaml"
printf 'openapi: 3.1.0\npaths:\n  /x:\n    get:\n      responses:\n        "200":\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: "#/components/schemas/Gone"}\n' >"$TMP/api.yaml"
run 2 "api.yaml:10:30" diff "$TMP/api.yaml" "$EX/metadata-v1.yaml"

echo "$((n - fails))/$n passed"
[ "$fails" = 0 ]
