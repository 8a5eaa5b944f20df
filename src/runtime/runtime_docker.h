/*
 * runtime_docker: the runtime driver of kind "docker": instances are containers on one or more
 * Docker hosts, driven through the Docker Engine API (libcurl; over the daemon's unix socket,
 * or TCP with TLS client certificates). It never runs the docker CLI.
 *
 * The engine is the state. Every container carries labels (io.sluice.owner, .id, .service,
 * .env, .region, .version, .index, .port and .spec, the spec it was made from), so opening the
 * driver lists them per host and adopts what runs; a container is named after its instance
 * ("sluice-OWNER-ID"), so a create that races an unseen twin gets 409 and adopts it instead:
 * never a duplicate. OWNER is a hash of the server's data directory: two servers on one
 * host do not adopt each other's containers.
 *
 * Containers use host networking (HostConfig.NetworkMode "host"; no bridge, no published
 * ports): the driver picks a port for each instance, passes it as $PORT and {port}, and the
 * endpoint is "ADDRESS:PORT" (127.0.0.1 for a unix:// host, the host name for tcp://).
 * Instances are spread over the hosts: instance i of a service goes to host
 * (i + hash(service)) mod nhosts.
 *
 * The artifact of a spec is an image: a reference the hosts have ("name:tag" or
 * "name@sha256:..."), or an absolute path to an image archive (`docker save` output), loaded
 * on each host that needs it (POST /images/load) before the first container of it starts.
 *
 * Blocking: container work (create, start, health checks, stop, removal, the per-host poll
 * that sees exits) runs on a curl multi handle progressed by runtime_tick, never waiting.
 * Three calls do wait, each bounded by a timeout: open (one list per host, 5 s), ensure when
 * it must place a new instance (one image check per host it uses, or an archive's load) and
 * logs (one request per instance).
 *
 * Settings (the region's `runtime` mapping):
 *   hosts: [URL, ...]   required, 1..16: "unix:///path/to/docker.sock" or "tcp://HOST:PORT"
 *   tls: {ca: PATH, cert: PATH, key: PATH}   client certificates, required for tcp:// hosts
 *   ports: [LOW, HIGH]  instance ports, default [20000, 26999], within 1024-65535
 *   proxy_image: IMAGE  the image of the sluice binary that runs the region's router on each
 *                       host (a reference or an archive's absolute path, like an artifact),
 *                       default RUNTIME_DOCKER_PROXY_IMAGE; the server's router driver starts
 *                       it through this runtime (router_hosted.h)
 *   proxy_tls: {cert: PATH, key: PATH, ca: PATH}   the region's proxies serve their admin API
 *                       over TLS with this certificate (it must name every host's address)
 *                       on all addresses of their host, and the server verifies it against
 *                       ca: what a region with tcp:// hosts needs for its router
 *
 * Errors: every failure of an engine (a host down, an image missing, a refused create) is
 * either ensure's refusal (-1 and a message naming the host) or, once instances exist, a
 * BACKOFF with the engine's message as the reason. See docs/runtime.md.
 */
#ifndef SLUICE_RUNTIME_DOCKER_H
#define SLUICE_RUNTIME_DOCKER_H

#include "runtime/runtime.h"

/* The Engine API version spoken: Docker 20.10 and later. */
#define RUNTIME_DOCKER_API "v1.41"
#define RUNTIME_DOCKER_HOSTS_MAX 16
/* The default proxy_image: the sluice binary of this version (scripts/docker-host.sh image
 * makes it from the binary and its shared libraries). */
#define RUNTIME_DOCKER_PROXY_IMAGE "sluice:" SLUICE_VERSION

extern const struct runtime_ops runtime_docker_ops;

/* What only the docker driver knows of one instance: for its own tests. */
struct runtime_docker_container {
	char id[65];   /* the container's full id, "" while none exists */
	int host;      /* index into the `hosts` setting */
	int port;
};

/* Fills *out for the instance `id` of a docker runtime. Returns 0, or -1 when rt is not a
 * docker runtime or has no such instance. */
int runtime_docker_container(runtime *rt, const char *id, struct runtime_docker_container *out /* OUT */);

/* The number of hosts of a docker runtime (0 for another kind): the router runs one proxy on
 * each (instance i of a service lands on host (i + hash) mod nhosts, so nhosts instances
 * cover every host once). */
int runtime_docker_hosts(runtime *rt);
/* Its proxy_image setting or the default; NULL for another kind. Valid while rt is open. */
const char *runtime_docker_proxy_image(runtime *rt);
/* The proxy_tls setting: 1 with the three paths (valid while rt is open), 0 when it has none
 * or rt is not a docker runtime. */
int runtime_docker_proxy_tls(runtime *rt, const char **cert, const char **key, const char **ca);

#endif
