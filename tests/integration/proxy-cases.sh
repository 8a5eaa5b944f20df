#!/bin/bash
# Declarative request/response cases of `sluice proxy` (proxy-cases.txt): exact bytes in and out
# on both sides, for routing, framing, every rejection and upstream failures.
# usage: proxy-cases.sh SLUICE_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec timeout 60 python3 "$here/proxy_cases.py" "$1" "$here/proxy-cases.txt"
