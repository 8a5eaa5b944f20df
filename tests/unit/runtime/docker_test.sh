#!/usr/bin/env bash
# Runs a test binary of the docker driver against Docker daemons of its own (scripts/docker-host.sh):
# two hosts, h1 and h2, and a third, h3, that a test may stop. The test server is loaded into
# each as image sluice-testsrv:test, and saved once as an image archive. h2 also listens on
# tcp://127.0.0.1:19990 with TLS client certificates (made in h2/tls). Every daemon is stopped
# on exit, whatever happens. Exit 77 (skipped) only when dockerd is not installed.
#   docker_test.sh TEST_BINARY TESTSRV DOCKER_HOST_SH [test args...]
set -euo pipefail
bin=$1 testsrv=$2 dh=$3
shift 3
command -v dockerd >/dev/null || { echo "dockerd is not installed (scripts/deps.sh test): skipped"; exit 77; }
dir=$(mktemp -d /tmp/sluice-dk-XXXXXX)
cleanup() {
	for h in h1 h2 h3; do "$dh" stop "$dir/$h" || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
export SLUICE_DOCKER_CACHE=$dir/cache
pids=()
for h in h1 h2 h3; do
	port=; [ "$h" = h2 ] && port=19990
	"$dh" start "$dir/$h" $port >/dev/null & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for h in h1 h2 h3; do "$dh" image "$dir/$h" "$testsrv" sluice-testsrv:test; done
"$dh" save "$dir/h1" sluice-testsrv:test "$dir/testsrv-image.tar"
export SLUICE_DOCKER_H1=unix://$dir/h1/sock SLUICE_DOCKER_H2=unix://$dir/h2/sock SLUICE_DOCKER_H3=unix://$dir/h3/sock
export SLUICE_DOCKER_H2_TCP=tcp://127.0.0.1:19990 SLUICE_DOCKER_H2_TLS=$dir/h2/tls
export SLUICE_DOCKER_ARCHIVE=$dir/testsrv-image.tar SLUICE_DOCKER_DIR=$dir SLUICE_DOCKER_HOST_SH=$dh
"$bin" "$@"
