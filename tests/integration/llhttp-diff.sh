#!/bin/sh
# Differential test of src/http/parse.c against llhttp (see llhttp-diff.js).
# usage: llhttp-diff.sh PATH/http-parse-dump [PATH/llhttp-c-dump]
#        (exit 77 = skipped: node or its llhttp missing)
#
# Two llhttp builds are compared with ours. The one node itself is built on (node's HTTPParser
# binding, process.versions.llhttp), always. And Debian's node-llhttp package when meson found
# it: that package is llhttp's *generator* (TypeScript that builds an llparse graph) plus the
# generated C in /usr/share/llhttp; it has no parser that runs inside node, so it cannot be fed
# bytes from JavaScript; meson builds its C into llhttp-c-dump instead.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dumper=${1:?usage: llhttp-diff.sh PATH/http-parse-dump [PATH/llhttp-c-dump]}
cdump=${2:-}
if ! command -v node >/dev/null 2>&1; then
	echo "skip: node is not installed (apt-get install nodejs)"
	exit 77
fi
if ! node -e 'if (!process.versions.llhttp || !require("_http_common").HTTPParser) process.exit(1)' 2>/dev/null; then
	echo "skip: this node has no llhttp HTTPParser binding"
	exit 77
fi
exec node "$here/llhttp-diff.js" "$dumper" "$here/../unit/http/cases/reject.txt" "${LLHTTP_DIFF_COUNT:-400}" "$cdump"
