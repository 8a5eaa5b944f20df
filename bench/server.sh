# Sourced by the benchmarks that run a whole sluice (server, proxy, instances) on loopback:
#   . "$(dirname "$0")/../server.sh"; bench_server NAME BUILD_DIR SERVER_PORT
# sets B, S (the sluice binary), EX (the example services), D (a temporary data directory),
# SLUICE_SERVER and SERVER (the server's pid), starts the server with its proxy admin API on
# SERVER_PORT + 1, and on exit stops everything it started (data plane included) and removes D.
# BENCH_PRE_CLEANUP, when set, names a command run first on exit (e.g. stopping a load).
bench_server() {
	local name=$1 port=$3
	B=$(cd "$2" && pwd)
	S=$B/src/sluice
	EX=$B/examples
	[ -x "$S" ] || { echo "$name: $S not built (make build)" >&2; exit 2; }
	D=$(mktemp -d "/tmp/sluice-bench-$name.XXXXXX")
	export SLUICE_SERVER=http://127.0.0.1:$port
	trap bench_cleanup EXIT
	"$S" server --data "$D/data" --listen "127.0.0.1:$port" --proxy-admin "127.0.0.1:$((port + 1))" \
		>"$D/server.log" 2>&1 &
	SERVER=$!
	for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && return 0; sleep 0.1; done
	echo "$name: the server did not start on 127.0.0.1:$port"; cat "$D/server.log"; exit 1
}

bench_cleanup() {
	set +e
	[ -n "${BENCH_PRE_CLEANUP:-}" ] && eval "$BENCH_PRE_CLEANUP"
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 150); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.2; done
	pkill -9 -f "$D" 2>/dev/null
	rm -rf "$D"
}
