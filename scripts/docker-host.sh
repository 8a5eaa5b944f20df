#!/usr/bin/env bash
# A Docker Engine of the tests' own: one `dockerd` per directory, standing for one Docker host.
#
#   docker-host.sh start DIR [TLSPORT]  start a daemon with all its state in DIR (data root, exec
#                                       root, pid file, log, socket DIR/sock); waits (at most 60 s)
#                                       until /_ping answers; prints "unix://DIR/sock". With
#                                       TLSPORT it also listens on tcp://127.0.0.1:TLSPORT with
#                                       --tlsverify: a CA, a server certificate for 127.0.0.1 and
#                                       localhost, and a client certificate are made in DIR/tls
#                                       (ca.pem, cert.pem, key.pem: what a client presents;
#                                       server-cert.pem, server-key.pem); a restart in the same
#                                       DIR keeps them
#   docker-host.sh stop DIR             stop it (SIGTERM, 20 s, then SIGKILL of it and its
#                                       containerd), unmount what it left and remove DIR
#   docker-host.sh image DIR BIN REF [ARG...]
#                                       load BIN (with the shared libraries it needs) into that
#                                       daemon as image REF (name:tag), entrypoint /app/NAME
#                                       followed by the ARGs (a release with a fault built in);
#                                       the root file system tarball is built once per binary and
#                                       kept in $SLUICE_DOCKER_CACHE (default DIR/..)
#   docker-host.sh save DIR REF FILE    write REF as an image archive (`docker save` format)
#
# Any number of daemons may run at once: each has its own data root, exec root, containerd
# and socket. No bridge, no iptables, the vfs storage driver: containers use host networking
# (HostConfig.NetworkMode "host"), which is what runtime_docker asks for. No registry is used.
# It talks to the daemon with curl over its socket, not with the docker CLI.
set -euo pipefail

die() { echo "docker-host: $*" >&2; exit 1; }
api() { curl -sS --max-time 120 --unix-socket "$1/sock" "${@:2}"; }

# A CA, a server certificate (127.0.0.1, localhost) and a client certificate in $1, made with
# openssl; the client's are ca.pem, cert.pem and key.pem, as `docker --tlsverify` names them.
make_tls() {
	local t=$1
	mkdir -p "$t"
	(
		cd "$t"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=sluice-test-docker-ca -keyout ca-key.pem -out ca.pem
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
			-keyout server-key.pem -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
			-extfile server.ext -out server-cert.pem
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sluice \
			-keyout key.pem -out client.csr
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
			-extfile client.ext -out cert.pem
		chmod 600 ./*key.pem
	) >/dev/null 2>&1 || die "could not make the TLS certificates in $t"
}

start() {
	local dir=$1 tlsport=${2:-}
	command -v dockerd >/dev/null || die "dockerd is not installed (scripts/deps.sh test installs docker.io)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ ${#dir} -lt 90 ] || die "$dir: too long for a unix socket path"
	if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		die "a daemon already runs in $dir (pid $(cat "$dir/pid"))"
	fi
	local tcp=()
	if [ -n "$tlsport" ]; then
		[ -f "$dir/tls/ca.pem" ] || make_tls "$dir/tls"  # a restart in DIR keeps them
		tcp=(--host "tcp://127.0.0.1:$tlsport" --tlsverify --tlscacert "$dir/tls/ca.pem"
		     --tlscert "$dir/tls/server-cert.pem" --tlskey "$dir/tls/server-key.pem")
	fi
	# setsid: its own session, so a Ctrl-C of the test does not stop it halfway; stop does.
	setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/pid" \
		--host "unix://$dir/sock" "${tcp[@]}" --storage-driver=vfs --iptables=false --ip6tables=false \
		--ip-masq=false --bridge=none --userland-proxy=false --log-level=warn \
		</dev/null >"$dir/log" 2>&1 &
	echo $! >"$dir/launcher.pid"
	for _ in $(seq 300); do
		if [ -S "$dir/sock" ] && [ "$(api "$dir" --max-time 2 http://docker/_ping 2>/dev/null)" = OK ]; then
			echo "unix://$dir/sock"
			return 0
		fi
		kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null || break
		sleep 0.2
	done
	tail -20 "$dir/log" >&2 || true
	stop "$dir" || true
	die "dockerd in $dir did not answer /_ping"
}

stop() {
	local dir=$1 pid=
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd)
	pid=$(cat "$dir/pid" 2>/dev/null || cat "$dir/launcher.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	# its managed containerd, if the daemon could not stop it
	local cpid
	cpid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
	[ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null || true
	# mounts the daemon left under DIR (a daemon killed mid-way leaves shm and netns mounts)
	awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$dir"
}

image() {
	local dir=$1 bin=$2 ref=$3
	shift 3
	[ -x "$bin" ] || die "$bin is not an executable"
	local cache=${SLUICE_DOCKER_CACHE:-$(dirname "$dir")}
	mkdir -p "$cache"
	local sum tarball name
	sum=$(sha256sum "$bin" | cut -c1-16)
	name=$(basename "$bin")
	tarball="$cache/rootfs-$name-$sum.tar"
	if [ ! -f "$tarball" ]; then
		local root
		root=$(mktemp -d "$cache/rootfs.XXXXXX")
		mkdir -p "$root/app" "$root/tmp"
		cp -L "$bin" "$root/app/$name"
		# the shared libraries and the loader, at the paths the binary looks for them
		ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
			[ -f "$lib" ] || continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
		tar -C "$root" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
	fi
	local repo=${ref%:*} tag=${ref##*:}
	[ "$repo" != "$ref" ] || tag=latest
	# ENTRYPOINT ["/app/NAME", ARG...], URL-encoded (NAME is a file name of the build:
	# [A-Za-z0-9._-]; an ARG is quoted as JSON, then encoded)
	local change="ENTRYPOINT%20%5B%22%2Fapp%2F$name%22" a
	for a in "$@"; do
		case $a in *[!A-Za-z0-9._=-]*) die "image: entrypoint argument '$a': only [A-Za-z0-9._=-]" ;; esac
		change="$change%2C%22$a%22"
	done
	change="$change%5D"
	local out
	out=$(api "$dir" -X POST -H 'Content-Type: application/x-tar' --data-binary "@$tarball" \
		"http://docker/images/create?fromSrc=-&repo=$repo&tag=$tag&changes=$change")
	case $out in *'"error'*) die "import of $ref: $out" ;; esac
	api "$dir" -f -o /dev/null "http://docker/images/$ref/json" || die "image $ref is not there after its import"
}

save() {
	local dir=$1 ref=$2 file=$3
	api "$dir" -f -o "$file.tmp" "http://docker/images/$ref/get" || die "could not save $ref"
	mv "$file.tmp" "$file"
}

case ${1:-} in
start) [ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: start DIR [TLSPORT]"; start "$2" "${3:-}" ;;
stop) [ $# -eq 2 ] || die "usage: stop DIR"; stop "$2" ;;
image) [ $# -ge 4 ] || die "usage: image DIR BINARY REF [ARG...]"; shift; image "$@" ;;
save) [ $# -eq 4 ] || die "usage: save DIR REF FILE"; save "$2" "$3" "$4" ;;
*) die "usage: docker-host.sh start|stop|image|save ..." ;;
esac
