#!/usr/bin/env bash
# Install what building and testing sluice needs on Debian 12, only when missing.
# Usage: scripts/deps.sh [build|test]   (test also installs the peers the tests drive)
set -euo pipefail
want=(meson ninja-build pkg-config gcc libcriterion-dev libjansson-dev libyaml-dev
      libsqlite3-dev libpq-dev libcurl4-openssl-dev libssl-dev curl procps)
if [ "${1:-build}" = test ]; then
	want+=(sqlite3 clang libclang-rt-14-dev wrk nginx-light haproxy prometheus node-llhttp nodejs python3 openssl
	      postgresql   # the PostgreSQL tests start their own cluster: tests/support/pg-cluster.sh
	      chromium iproute2) # the dashboard's browser test (tests/integration/ui.sh: npm playwright-core, ss)
fi
# runtime_docker's tests start their own dockerd (scripts/docker-host.sh)
[ "${1:-build}" = test ] && want+=(docker.io)
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
# The tests' servers listen on fixed loopback ports in 16000-36999, part of which lies in
# Linux's ephemeral range (32768-60999): reserve them, so that no outgoing connection of a
# busy machine takes one of them first (the test's server would then fail to listen).
if [ "${1:-build}" = test ]; then
	rp=/proc/sys/net/ipv4/ip_local_reserved_ports
	if ! grep -q '16000-36999' "$rp" 2>/dev/null; then
		v=$(cat "$rp" 2>/dev/null || true)
		{ echo "${v:+$v,}16000-36999" | $SUDO tee "$rp" >/dev/null; } 2>/dev/null ||
			echo "deps: warning: could not reserve ports 16000-36999 ($rp); a test may find its port taken" >&2
	fi
fi
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# Debian starts nginx and haproxy as services on install; the tests run their own on loopback.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
$SUDO rm -f /usr/sbin/policy-rc.d
