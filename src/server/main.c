/*
 * `sluice server`: sets up the store, the runtime and router drivers and the API, then runs
 * the control loop. See server.h for how the parts fit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "server/api.h"
#include "http/server.h"
#include "loop/fetch.h"
#include "loop/loop.h"
#include "router/router.h"
#include "server/executor.h"
#include "server/reconcile.h"
#include "server/notifier.h"
#include "server/replica.h"
#include "server/rollouts.h"
#include "server/routers.h"
#include "server/runtimes.h"
#include "server/tokens.h"
#include "server/verify.h"
#include "store/store.h"
#include "util/secret.h"
#include "util/opt.h"
#include "util/paths.h"

#define SERVER_DEFAULT_LISTEN "127.0.0.1:7070"
#define SERVER_DEFAULT_PROXY_ADMIN "127.0.0.1:7071"
#define SERVER_TICK_MS 200

/* The control plane's parts, each handed the drivers it uses; this file only builds them,
 * runs the loop and takes them down in the reverse order. */
struct server {
	loop *loop;
	httpd *httpd;
	store *store;
	runtimes *runtimes;
	router *router;
	fetcher *fetch;          /* asynchronous HTTP: smoke checks, Prometheus, the proxy's reads */
	verifier *verifier;
	catalog *catalog; /* one parsed copy of the manifests, shared by the objects below */
	reconciler *reconciler;
	replica *replica;        /* the services this replica owns (leases in the store) */
	executor *executor;
	notifier *notifier;      /* the notification outbox's writer and deliverer */
	flags *flags;            /* the flag sets, shared by the API and the rollouts */
	rollouts *rollouts;      /* guarded flag rollouts */
	api *api;
	char data_dir[PATH_MAX];
	char artifacts_dir[PATH_MAX + 32];
};
#include "server/verify.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice server [--data DIR] [--store LOCATION] [--listen ADDR] [--allow-host NAME]...\n"
		"                     [--proxy-admin ADDR] [--log-level LEVEL] [--tls-cert FILE --tls-key FILE]\n"
		"                     [--insecure-listen] [--ofrep-rate N] [--replica-id NAME] [--lease-ttl MS]\n"
		"                     [--notify-retry-max MS]\n"
		"\n"
		"Runs the control plane: the /v1 HTTP API, the deployment pipelines and the reconciler\n"
		"that keeps instances and proxy routes converged. The proxy and the instances it starts\n"
		"keep running when the server stops; a restarted server adopts them.\n"
		"\n"
		"  --data DIR          state directory (SQLite store, artifacts, instances, proxy)\n"
		"                      default: $SLUICE_DATA, else $XDG_STATE_HOME/sluice,\n"
		"                      else ~/.local/state/sluice\n"
		"  --store LOCATION    the store: sqlite:PATH (default: DIR/sluice.db), or a PostgreSQL\n"
		"                      database as a libpq URI, postgres://USER@HOST:PORT/DB\n"
		"  --listen ADDR       API address, default %s\n"
		"  --allow-host NAME   a name clients reach the API by, besides localhost, 127.0.0.1\n"
		"                      and ::1 (requests whose Host names another are refused: DNS\n"
		"                      rebinding); repeat it for several (at most %d)\n"
		"  --proxy-admin ADDR  the proxy's admin address, default %s\n"
		"  --log-level LEVEL   debug, info (default), warn, error\n"
		"  --tls-cert FILE     serve the API over TLS with this PEM certificate chain\n"
		"  --tls-key FILE      ... and this PEM private key (unencrypted); both or neither\n"
		"  --insecure-listen   allow a --listen address that is not loopback without TLS\n"
		"                      (plain HTTP on a network: tokens and data readable on the wire)\n"
		"  --ofrep-rate N      OFREP flag evaluations per second per token (default 100000;\n"
		"                      over it: 429 with Retry-After)\n"
		"  --replica-id NAME   this replica's name among several sharing one PostgreSQL store\n"
		"                      (unique; default HOSTNAME-PID, HOSTNAME with SQLite)\n"
		"  --lease-ttl MS      how long a replica's lease of a service lasts unrenewed, so how\n"
		"                      soon another replica takes over a dead one's (default %d)\n"
		"  --notify-retry-max MS  the longest wait between two attempts at a notification\n"
		"                      that failed (default 60000; doubling from 1000)\n"
		"\n"
		"A --listen address other than loopback (127.0.0.0/8, ::1, localhost) needs\n"
		"--tls-cert and --tls-key, or --insecure-listen.\n"
		"\n"
		"Stop it with SIGTERM or SIGINT (instances and proxy keep running), or with\n"
		"'sluice shutdown [--data-plane]'.\n",
		SERVER_DEFAULT_LISTEN, API_MAX_HOSTS - 3, SERVER_DEFAULT_PROXY_ADMIN, REPLICA_TTL_DEFAULT_MS);
}

static int mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

/* The data directory holds the store (with the secret env values of the manifests), the
 * artifacts and the instances' specs: only its owner may enter it, and the store's files
 * (database, WAL, shared memory; SQLite gives the last two the database's mode) are the
 * owner's alone, whatever the umask and whatever an older version left. */
static int make_private(const char *dir, const char *db)
{
	if (chmod(dir, 0700))
		return -1;
	int fd = open(db, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	int rc = fchmod(fd, 0600);
	close(fd);
	const char *const tails[] = {"-wal", "-shm"};
	for (size_t i = 0; !rc && i < 2; i++) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof(p), "%s%s", db, tails[i]);
		if (chmod(p, 0600) && errno != ENOENT)
			rc = -1;
	}
	return rc;
}

static void on_tick(loop *l, void *arg)
{
	struct server *srv = arg;
	runtimes_tick(srv->runtimes, loop_clock_ms());
	replica_tick(srv->replica, loop_clock_ms());
	executor_tick(srv->executor);
	rollouts_tick(srv->rollouts, store_now_ms());
	runtimes_tick(srv->runtimes, loop_clock_ms());
	notifier_tick(srv->notifier, loop_clock_ms());
	loop_timer(l, SERVER_TICK_MS, on_tick, srv);
}

static void on_runtime(loop *l, void *arg)
{
	struct server *srv = arg;
	runtimes_tick(srv->runtimes, loop_clock_ms());
	loop_timer(l, 50, on_runtime, srv);
}

static void on_signal(loop *l, int fd, unsigned ev, void *arg)
{
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == sizeof(si))
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("signal %u: stopping (instances and proxy keep running)", si.ssi_signo);
			loop_stop(l);
		}
}

/*
 * The listening policy (docs/security.md), before anything is bound or created:
 * TLS when --tls-cert and --tls-key are given (both or neither, loaded and checked now);
 * otherwise an address that is not loopback needs --insecure-listen, and gets a warning at
 * every start. Returns 0 with *tls (NULL: plain HTTP), or -1 after printing why.
 */
static int transport(const char *listen, const char *cert, const char *key, int insecure,
		     tls_ctx **tls)
{
	*tls = NULL;
	if (!cert != !key)
		return error("--tls-cert and --tls-key go together: give both (or neither)");
	if (cert) {
		struct err e = {""};
		if (tls_ctx_new(tls, cert, key, &e))
			return error("%s", e.msg);
		return 0;
	}
	if (tls_addr_is_loopback(listen))
		return 0;
	if (!insecure)
		return error("--listen %s is not a loopback address: give --tls-cert and --tls-key to "
			     "serve the API over TLS there, or --insecure-listen to serve plain HTTP "
			     "on it anyway",
			     listen);
	log_warn("--insecure-listen: the API on %s is plain HTTP reachable from other machines: "
		 "tokens and everything else cross the network readable and forgeable; give "
		 "--tls-cert and --tls-key",
		 listen);
	return 0;
}

int cmd_server(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"store", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'},
		{"proxy-admin", required_argument, NULL, 'p'},
		{"log-level", required_argument, NULL, 'L'},
		{"allow-host", required_argument, NULL, 'H'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"insecure-listen", no_argument, NULL, 'I'},
		{"ofrep-rate", required_argument, NULL, 'R'},
		{"replica-id", required_argument, NULL, 'r'},
		{"lease-ttl", required_argument, NULL, 'T'},
		{"notify-retry-max", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct server srv;
	memset(&srv, 0, sizeof(srv));
	const char *listen = SERVER_DEFAULT_LISTEN, *admin = SERVER_DEFAULT_PROXY_ADMIN;
	const char *tls_cert = NULL, *tls_key = NULL;
	int insecure_listen = 0;
	double ofrep_rate = 0;
	tls_ctx *tls = NULL;
	const char *store_location = NULL; /* NULL: DATA/sluice.db */
	char replica_name[REPLICA_ID_MAX] = "";
	double lease_ttl = REPLICA_TTL_DEFAULT_MS;
	double notify_retry_max = 60000;
	paths_data_dir(srv.data_dir, sizeof(srv.data_dir));
	const char *hosts[API_MAX_HOSTS] = {0};
	int nhosts = 0;
	int c;
	struct err oe;
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	static const enum log_level level_of[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};
	int level;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!*optarg || strlen(optarg) >= sizeof(srv.data_dir) - 64)
				return error("--data: expected a directory path of 1..%zu bytes", sizeof(srv.data_dir) - 65),
				       EXIT_USAGE;
			snprintf(srv.data_dir, sizeof(srv.data_dir), "%s", optarg);
			break;
		case 's':
			store_location = optarg;
			break;
		case 'l':
			if (opt_hostport("--listen", optarg, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			listen = optarg;
			break;
		case 'H':
			if (nhosts == API_MAX_HOSTS - 3 || !*optarg || strlen(optarg) >= API_HOST_MAX ||
			    strpbrk(optarg, "/ \t")) {
				error("--allow-host '%s': a host name (at most %d of them, %d bytes each)",
				      optarg, API_MAX_HOSTS - 3, API_HOST_MAX - 1);
				return EXIT_USAGE;
			}
			hosts[nhosts++] = optarg;
			break;
		case 'p':
			if (opt_hostport("--proxy-admin", optarg, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			admin = optarg;
			break;
		case 'C':
			tls_cert = optarg;
			break;
		case 'K':
			tls_key = optarg;
			break;
		case 'R':
			if (opt_rate("--ofrep-rate", optarg, 1, 10000000, &ofrep_rate, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			break;
		case 'I':
			insecure_listen = 1;
			break;
		case 'r':
			if (opt_name("--replica-id", optarg, NAME_OBJECT, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			snprintf(replica_name, sizeof(replica_name), "%s", optarg);
			break;
		case 'T':
			if (opt_rate("--lease-ttl", optarg, REPLICA_TTL_MIN_MS, REPLICA_TTL_MAX_MS, &lease_ttl, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			break;
		case 'N':
			if (opt_rate("--notify-retry-max", optarg, 100, 3600000, &notify_retry_max, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			break;
		case 'L':
			if (opt_enum("--log-level", optarg, levels, &level, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			log_set_level(level_of[level]);
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			opt_getopt_error("server", c, optopt, argv[optind - 1], &oe);
			return error("%s", oe.msg), EXIT_USAGE;
		}
	}
	if (opt_positional("server", argc - optind, argv + optind, 0, 0, "no argument", &oe))
		return error("%s", oe.msg), EXIT_USAGE;
	/* the address it listens on is a name clients use, unless it is a wildcard */
	char listen_host[API_HOST_MAX];
	const char *colon = strrchr(listen, ':');
	size_t lh = colon ? (size_t)(colon - listen) : strlen(listen);
	if (lh < sizeof(listen_host) && nhosts < API_MAX_HOSTS - 1) {
		snprintf(listen_host, sizeof(listen_host), "%.*s", (int)lh, listen);
		if (lh && strcmp(listen_host, "0.0.0.0") && strcmp(listen_host, "[::]") && strcmp(listen_host, "*"))
			hosts[nhosts++] = listen_host;
	}
	log_set_prefix("server");
	signal(SIGPIPE, SIG_IGN);
	if (transport(listen, tls_cert, tls_key, insecure_listen, &tls))
		return EXIT_USAGE;

	char path[PATH_MAX + 64], exe[PATH_MAX];
	snprintf(srv.artifacts_dir, sizeof(srv.artifacts_dir), "%s/artifacts", srv.data_dir);
	if (mkdirs(srv.data_dir) || mkdirs(srv.artifacts_dir)) {
		error("could not create data directory '%s': %s", srv.data_dir, strerror(errno));
		tls_ctx_free(tls);
		return EXIT_USAGE;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		error("could not find the sluice binary: %s", strerror(errno));
		tls_ctx_free(tls);
		return EXIT_USAGE;
	}
	exe[n] = '\0';

	struct err e = {""};
	int rc = EXIT_USAGE;
	snprintf(path, sizeof(path), "%s/sluice.db", srv.data_dir);
	if (make_private(srv.data_dir, path)) {
		error("could not make '%s' private to its owner: %s", srv.data_dir, strerror(errno));
		tls_ctx_free(tls);
		return EXIT_USAGE;
	}
	if (store_open(&srv.store, store_location ? store_location : path, &e)) {
		error("%s", e.msg);
		tls_ctx_free(tls);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "%s/admin.token", srv.data_dir);
	rc = tokens_bootstrap(srv.store, path, &e);
	if (rc < 0) {
		error("%s", e.msg);
		store_close(srv.store);
		return EXIT_UNREACHABLE;
	}
	if (rc == 1)
		log_info("created the admin token in %s (readable by its owner only); 'sluice token "
			 "create' makes narrower ones", path);
	/* the proxies' admin API token: kept in the store, so that every replica presents the
	 * token the proxies were started with, across restarts (the proxies outlive the server);
	 * DATA/proxy.token is a copy for the operator (a token already there is the one proposed) */
	char proxy_token[STORE_SECRET_MAX + 1], fresh[SECRET_MAX + 1] = "", fresh_hash[AUTH_HASH_LEN + 1];
	snprintf(path, sizeof(path), "%s/proxy.token", srv.data_dir);
	int src = secret_read(path, fresh, sizeof(fresh), &e); /* 0: there, 1: none, -1: unusable */
	if (src < 0)
		log_warn("%s: it is replaced by the store's proxy token", e.msg);
	char secret[AUTH_SECRET_LEN + 1];
	if (src != 0 && auth_new_secret(secret, fresh_hash, &e) == 0) {
		snprintf(fresh, sizeof(fresh), "%s", secret);
		memset(secret, 0, sizeof(secret));
	}
	if ((src != 0 && !fresh[0]) ||
	    store_secret(srv.store, "proxy-admin-token", fresh, proxy_token, sizeof(proxy_token), &e) ||
	    ((src != 0 || strcmp(fresh, proxy_token)) && secret_write(path, proxy_token, &e))) {
		error("the proxy's admin token: %s", e.msg);
		store_close(srv.store);
		return EXIT_UNREACHABLE;
	}
	memset(fresh, 0, sizeof(fresh));
	rc = EXIT_USAGE;
	/* several replicas over one PostgreSQL database may share this machine's DATA/instances:
	 * one at a time drives the local instances (docs/store.md) */
	int shared = store_location && !strncmp(store_location, "postgres", 8);
	if (!replica_name[0]) {
		char host[64] = "sluice";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		if (shared)
			snprintf(replica_name, sizeof(replica_name), "%s-%d", host, (int)getpid());
		else
			snprintf(replica_name, sizeof(replica_name), "%s", host);
	}
	if ((shared ? runtimes_open_shared : runtimes_open)(&srv.runtimes, srv.data_dir, &e)) {
		error("%s", e.msg);
		goto out;
	}
	/* the local proxy, and a proxy on each host of every docker region (server/routers.h) */
	srv.router = routers_new(srv.runtimes, router_proxy_new(admin, exe, srv.data_dir, proxy_token),
				 proxy_token);
	memset(proxy_token, 0, sizeof(proxy_token));
	srv.loop = loop_new();
	srv.fetch = srv.loop ? fetcher_new(srv.loop) : NULL;
	if (srv.router && srv.fetch)
		router_use_fetcher(srv.router, srv.fetch);
	if (srv.fetch)
		srv.verifier = verify_new(srv.loop, srv.router, srv.fetch);
	if (srv.verifier)
		srv.catalog = catalog_new(srv.store, srv.runtimes);
	if (srv.catalog)
		srv.replica = replica_new(srv.store, srv.catalog, srv.runtimes, replica_name, (int64_t)lease_ttl);
	if (srv.replica)
		srv.reconciler = reconcile_new(srv.loop, srv.store, srv.runtimes, srv.router, srv.artifacts_dir);
	if (srv.reconciler) {
		reconcile_use_catalog(srv.reconciler, srv.catalog);
		reconcile_use_replica(srv.reconciler, srv.replica);
		struct executor_deps xd = {srv.loop, srv.store, srv.runtimes, srv.router, srv.verifier,
					   srv.reconciler, srv.fetch, srv.data_dir, srv.catalog, srv.replica};
		srv.executor = executor_new(&xd);
	}
	if (srv.executor)
		srv.flags = flags_new(srv.store);
	if (srv.flags) {
		struct rollouts_deps rd = {srv.store, srv.flags, srv.router, srv.catalog, srv.replica};
		srv.rollouts = rollouts_new(&rd);
	}
	if (srv.rollouts) {
		struct api_deps ad = {srv.loop, srv.store, srv.runtimes, srv.executor, srv.reconciler,
				      srv.verifier, srv.artifacts_dir, hosts, srv.catalog, srv.flags, srv.rollouts,
				      ofrep_rate};
		srv.api = api_new(&ad);
	}
	if (srv.api) {
		struct notifier_config nc = {.holder = replica_name, .lease_ttl_ms = (int64_t)lease_ttl,
					     .backoff_max_ms = (int64_t)notify_retry_max};
		srv.notifier = notifier_new(srv.store, srv.fetch, &nc);
		api_use_notifier(srv.api, srv.notifier);
	}
	if (!srv.router || !srv.api || !srv.notifier) {
		error("out of memory (or libcurl could not start)");
		goto out;
	}
	struct httpd_opts hopts = {.max_conns = 512, .on_head = api_on_head, .tls = tls};
	if (httpd_start(&srv.httpd, srv.loop, listen, &hopts, api_handle, srv.api, &e)) {
		error("%s", e.msg);
		goto out;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0 || loop_add(srv.loop, sfd, LOOP_READ, on_signal, &srv)) {
		error("signalfd: %s", strerror(errno));
		goto out;
	}
	log_info("sluice %s: API on %s://%s, data in %s, proxy admin on %s, replica %s (leases of %lld ms)",
		 SLUICE_VERSION, tls ? "https" : "http", listen, srv.data_dir, admin, replica_name,
		 (long long)lease_ttl);
	loop_timer(srv.loop, 0, on_tick, &srv);
	loop_timer(srv.loop, 50, on_runtime, &srv);
	rc = loop_run(srv.loop) ? EXIT_UNREACHABLE : EXIT_OK;
	loop_del(srv.loop, sfd);
	close(sfd);
	if (api_stop_data_plane(srv.api)) {
		log_info("stopping every instance and the proxy");
		runtimes_stop_all(srv.runtimes);
		for (int i = 0; i < 400; i++) {
			runtimes_tick(srv.runtimes, loop_clock_ms());
			if (!runtimes_running(srv.runtimes))
				break;
			usleep(50000);
		}
		router_stop(srv.router);
	}
out:
	httpd_free(srv.httpd);
	api_free(srv.api);
	rollouts_free(srv.rollouts);
	flags_free(srv.flags);
	executor_free(srv.executor);
	reconcile_free(srv.reconciler);
	catalog_free(srv.catalog);
	verify_free(srv.verifier);
	notifier_free(srv.notifier);
	if (srv.router)
		router_use_fetcher(srv.router, NULL);
	if (srv.fetch)
		fetcher_free(srv.fetch);
	router_free(srv.router);
	runtimes_close(srv.runtimes);
	replica_free(srv.replica); /* the others take its services at once */
	store_close(srv.store);
	loop_free(srv.loop);
	tls_ctx_free(tls);
	log_info("stopped");
	return rc;
}
