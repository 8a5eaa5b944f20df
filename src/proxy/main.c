/*
 * main: `sluice proxy`, the data plane process: reads the config file, starts the workers and
 * the admin API, and runs until SIGTERM/SIGINT (then stops accepting, lets in-flight requests
 * finish and exits).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "commands.h"
#include "loop/loop.h"
#include "proxy/proxy.h"
#include "util/log.h"
#include "http/tls.h"
#include "proxy/keeper.h"
#include "util/opt.h"
#include "util/secret.h"

static const char usage[] =
	"usage: sluice proxy (--config FILE | --admin ADDR) [--admin ADDR] [--workers N] [--state FILE]\n"
	"                    [--admin-token-file FILE] [--admin-tls-cert FILE --admin-tls-key FILE]\n"
	"\n"
	"Runs the traffic-splitting HTTP/1.1 proxy (docs/proxy.md).\n"
	"  --config FILE   JSON configuration: admin address, workers, limits, routes\n"
	"                  (without it: no routes until the admin API puts them, default limits)\n"
	"  --admin ADDR    admin API address (overrides the file; default 127.0.0.1:9901)\n"
	"  --workers N     worker threads (overrides the file; default: number of cores)\n"
	"  --state FILE    save the routes there after every change and restore them at start;\n"
	"                  a keeper process then holds the listeners and, if the serving process\n"
	"                  dies, starts another at once on them from FILE (docs/proxy.md)\n"
	"  --admin-token-file FILE\n"
	"                  the admin API asks every call but GET /healthz for this bearer token\n"
	"                  (the file's first line; mode 600); $SLUICE_PROXY_TOKEN does the same.\n"
	"  --admin-tls-cert FILE, --admin-tls-key FILE\n"
	"                  serve the admin API over TLS with this PEM certificate chain and key;\n"
	"                  $SLUICE_PROXY_TLS_CERT and $SLUICE_PROXY_TLS_KEY (PEM text) do the same.\n"
	"                  A token and TLS are required when --admin is not a loopback address.\n"
	"  -v, --verbose   debug logging\n";

#define CONFIG_MAX_BYTES (16u << 20)

struct settings {
	char admin[128];
	unsigned workers;
	struct proxy_limits lim;
	json_t *routes; /* borrowed from the document */
};

static int load_config(const char *file, json_t **doc, struct settings *s, struct err *e)
{
	json_error_t je;
	json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return err_set(e, "%s:%d:%d: %s", file, je.line, je.column, je.text);
	*doc = j;
	if (!json_is_object(j))
		return err_set(e, "%s: the configuration must be a JSON object", file);
	static const char *const keys[] = {"admin", "workers", "limits", "routes", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		int ok = 0;
		for (size_t i = 0; keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok)
			return err_set(e, "%s: %s: unknown field", file, k);
	}
	v = json_object_get(j, "admin");
	if (v) {
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= sizeof(s->admin))
			return err_set(e, "%s: admin: must be a \"host:port\" string", file);
		snprintf(s->admin, sizeof(s->admin), "%s", json_string_value(v));
	}
	v = json_object_get(j, "workers");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 256)
			return err_set(e, "%s: workers: must be an integer from 1 to 256", file);
		s->workers = (unsigned)json_integer_value(v);
	}
	v = json_object_get(j, "limits");
	struct err le;
	if (v && proxy_limits_parse(v, "limits", &s->lim, &le))
		return err_set(e, "%s: %s", file, le.msg);
	v = json_object_get(j, "routes");
	if (v && !json_is_array(v))
		return err_set(e, "%s: routes: must be an array of route objects", file);
	s->routes = v;
	return 0;
}

/*
 * Each client connection may need an upstream one: raise the descriptor limit to the hard
 * limit, and lower max_conns when even that cannot hold 2 descriptors per connection (plus
 * listeners and pools), so that the cap refuses connections instead of every request failing
 * for lack of an upstream socket.
 */
static void fit_fd_limit(struct proxy_limits *lim)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t reserve = 256; /* listeners, admin, idle pools beyond one per client */
	rlim_t fit = rl.rlim_cur > 2 * reserve ? (rl.rlim_cur - reserve) / 2 : rl.rlim_cur / 4;
	if (fit < 1)
		fit = 1;
	if ((rlim_t)lim->max_conns > fit) {
		log_warn("proxy: max_conns lowered from %u to %lu to fit the descriptor limit (%lu)",
			 lim->max_conns, (unsigned long)fit, (unsigned long)rl.rlim_cur);
		lim->max_conns = (unsigned)fit;
	}
}

static void on_signal(loop *l, int fd, unsigned events, void *arg)
{
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		log_info("proxy: got signal %u", si.ssi_signo);
	loop_stop(l);
}

int cmd_proxy(int argc, char **argv)
{
	const char *config = NULL, *admin = NULL, *state = NULL, *token_file = NULL;
	const char *tls_cert = NULL, *tls_key = NULL;
	long workers = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			log_set_level(LOG_DEBUG);
		} else if (!strcmp(a, "--config") || !strcmp(a, "--state") || !strcmp(a, "--admin") ||
			   !strcmp(a, "--workers") || !strcmp(a, "--admin-token-file") ||
			   !strcmp(a, "--admin-tls-cert") || !strcmp(a, "--admin-tls-key")) {
			if (i + 1 >= argc) {
				error("proxy: option '%s' needs a value; see 'sluice proxy --help'", a);
				return EXIT_USAGE;
			}
			const char *v = argv[++i];
			struct err e;
			long long n = 0;
			int bad = 0;
			if (!strcmp(a, "--admin"))
				bad = opt_hostport(a, admin = v, &e);
			else if (!strcmp(a, "--workers"))
				bad = opt_int(a, v, 1, 256, &n, &e);
			else if (!*v)
				bad = err_set(&e, "%s: expected a file path, got ''", a);
			else if (!strcmp(a, "--config"))
				config = v;
			else if (!strcmp(a, "--admin-token-file"))
				token_file = v;
			else if (!strcmp(a, "--admin-tls-cert"))
				tls_cert = v;
			else if (!strcmp(a, "--admin-tls-key"))
				tls_key = v;
			else
				state = v;
			if (bad) {
				error("%s", e.msg);
				return EXIT_USAGE;
			}
			if (n)
				workers = (long)n;
		} else if (a[0] == '-') {
			error("proxy: unknown option '%s'; see 'sluice proxy --help'", a);
			return EXIT_USAGE;
		} else {
			error("proxy: unexpected argument '%s' (the routes come from --config FILE)", a);
			return EXIT_USAGE;
		}
	}
	if (!config && !admin) {
		error("proxy: --config FILE (or at least --admin ADDR) is required; see 'sluice proxy --help'");
		return EXIT_USAGE;
	}
	struct settings s = {.admin = "127.0.0.1:9901"};
	proxy_limits_default(&s.lim);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s.workers = ncpu > 0 ? (unsigned)ncpu : 1;
	json_t *doc = NULL;
	struct err e;
	if (config && load_config(config, &doc, &s, &e)) {
		json_decref(doc);
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (admin)
		snprintf(s.admin, sizeof(s.admin), "%s", admin);
	if (workers)
		s.workers = (unsigned)workers;
	/* the admin API's token: from the file, else from the environment (how the control plane
	 * hands it to a proxy it starts, as a process or a container) */
	char token[SECRET_MAX + 1] = "";
	const char *envtok = getenv("SLUICE_PROXY_TOKEN");
	if (token_file) {
		int trc = secret_read(token_file, token, sizeof(token), &e);
		if (trc) {
			error("proxy: --admin-token-file: %s", trc > 0 ? "no such file" : e.msg);
			json_decref(doc);
			return EXIT_USAGE;
		}
	} else if (envtok && *envtok) {
		if (strlen(envtok) > SECRET_MAX || strcspn(envtok, " \t\r\n") != strlen(envtok)) {
			error("proxy: $SLUICE_PROXY_TOKEN: 1 to %d characters without blanks", SECRET_MAX);
			json_decref(doc);
			return EXIT_USAGE;
		}
		snprintf(token, sizeof(token), "%s", envtok);
	}
	unsetenv("SLUICE_PROXY_TOKEN");
	/* the admin API's TLS: files, else PEM text from the environment (a container's) */
	tls_ctx *tls = NULL;
	const char *cert_pem = getenv("SLUICE_PROXY_TLS_CERT"), *key_pem = getenv("SLUICE_PROXY_TLS_KEY");
	int tls_rc = 0;
	if (!tls_cert != !tls_key) {
		tls_rc = err_set(&e, "proxy: --admin-tls-cert and --admin-tls-key go together");
	} else if (tls_cert) {
		tls_rc = tls_ctx_new(&tls, tls_cert, tls_key, &e);
	} else if ((cert_pem && *cert_pem) || (key_pem && *key_pem)) {
		if (!cert_pem || !*cert_pem || !key_pem || !*key_pem)
			tls_rc = err_set(&e, "proxy: $SLUICE_PROXY_TLS_CERT and $SLUICE_PROXY_TLS_KEY go together");
		else
			tls_rc = tls_ctx_new_pem(&tls, cert_pem, key_pem, "$SLUICE_PROXY_TLS_CERT",
						 "$SLUICE_PROXY_TLS_KEY", &e);
	}
	unsetenv("SLUICE_PROXY_TLS_KEY");
	unsetenv("SLUICE_PROXY_TLS_CERT");
	if (!tls_rc && (!token[0] || !tls) && !tls_addr_is_loopback(s.admin))
		tls_rc = err_set(&e, "proxy: the admin API on %s (not loopback) needs a token and TLS: "
				 "--admin-token-file FILE --admin-tls-cert FILE --admin-tls-key FILE", s.admin);
	if (tls_rc) {
		error("%s", e.msg);
		tls_ctx_free(tls);
		json_decref(doc);
		return EXIT_USAGE;
	}
	log_set_prefix("proxy");
	fit_fd_limit(&s.lim);

	/* Signals are read from a signalfd on the admin loop; every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (state) {
		int status = 0, krc = keeper_start(&status, &e);
		if (krc) {
			if (krc < 0)
				error("%s", e.msg);
			memset(token, 0, sizeof(token));
			tls_ctx_free(tls);
			json_decref(doc);
			return krc < 0 ? EXIT_UNREACHABLE : status;
		}
	}

	proxy *p = NULL;
	loop *l = loop_new();
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	int rc = EXIT_USAGE;
	if (!l || sfd < 0) {
		error("cannot create the admin event loop: %s", strerror(errno));
		goto out;
	}
	if (proxy_new(&p, s.workers, &s.lim, &e)) {
		error("%s", e.msg);
		goto out;
	}
	for (size_t i = 0; s.routes && i < json_array_size(s.routes); i++) {
		char path[32];
		snprintf(path, sizeof(path), "routes[%zu]", i);
		if (proxy_route_put(p, json_array_get(s.routes, i), NULL, path, &e)) {
			error("%s: %s", config, e.msg);
			goto out;
		}
	}
	/* the saved routes win over the file's: they are the control plane's latest word */
	proxy_state_file(p, state);
	if (proxy_state_load(p, &e)) {
		error("%s", e.msg);
		goto out;
	}
	int arc = proxy_admin_start(p, l, s.admin, token, tls, &e);
	tls = NULL; /* the proxy's now */
	if (arc) {
		error("admin %s: %s", s.admin, e.msg);
		goto out;
	}
	if (proxy_start(p, &e)) {
		error("%s", e.msg);
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	if (loop_add(l, sfd, LOOP_READ, on_signal, NULL)) {
		error("cannot watch signals: %s", strerror(errno));
		goto out;
	}
	log_info("proxy: %u workers, admin on %s (port %d), %zu routes", s.workers, s.admin,
		 proxy_admin_port(p), s.routes ? json_array_size(s.routes) : 0);
	memset(token, 0, sizeof(token));
	keeper_ready();
	loop_run(l);
	log_info("proxy: stopping: no new connections, finishing in-flight requests");
	rc = EXIT_OK;
out:
	tls_ctx_free(tls);
	proxy_free(p);
	if (sfd >= 0) {
		loop_del(l, sfd);
		close(sfd);
	}
	loop_free(l);
	json_decref(doc);
	return rc;
}
