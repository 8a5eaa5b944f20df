#!/usr/bin/env bash
# Runs a test in a network namespace of its own (a loopback nobody else uses) when the machine
# allows it (root and unshare), so that its fixed ports cannot collide with another test's:
# meson runs such tests beside the others (is_parallel) instead of alone, which keeps
# `make check` under 30 minutes. Where it cannot, the test runs as it is, and says so; run
# the suite with --num-processes 1 there.
# Usage: netns.sh SCRIPT [ARG...] (a bash script)
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
	exec unshare -n bash -c 'ip link set lo up && exec bash "$@"' netns "$@"
fi
echo "# no network namespace of its own here (needs root, unshare and ip): on the machine's loopback"
exec bash "$@"
