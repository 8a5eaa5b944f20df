/*
 * The commands that change or read the control plane: apply, release, deploy, rollback,
 * history, events, logs, shutdown. Each is a thin client of the /v1 API (docs/api.md).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "commands.h"
#include "contract/contract.h"
#include "util/buf.h"
#include "util/doc.h"
#include "util/opt.h"
#include "util/sha256.h"

/* The positional arguments argv[i..argc): between min and max, each name of `kinds` (one
 * letter per argument: 's' a service or other object name, 'v' a version, 'd' a deployment
 * id, '-' anything). 0, or -1 after printing what is wrong. */
static int positional(const char *cmd, int argc, char **argv, int i, int min, int max, const char *what,
		      const char *kinds)
{
	struct err e;
	long long id;
	if (opt_positional(cmd, argc - i, argv + i, min, max, what, &e))
		return error("%s", e.msg);
	for (int k = 0; i + k < argc && kinds[k]; k++) {
		const char *a = argv[i + k];
		int bad = kinds[k] == 's'   ? opt_name("SERVICE", a, NAME_OBJECT, &e)
			  : kinds[k] == 'v' ? opt_name("VERSION", a, NAME_VERSION, &e)
			  : kinds[k] == 'd' ? opt_int("DEPLOYMENT", a, 1, INT64_MAX, &id, &e)
					    : 0;
		if (bad)
			return error("%s: %s", cmd, e.msg);
	}
	return 0;
}

/* ---- apply ---- */

struct apply_opts {
	const char *files[256];
	int n;
};

static int apply_opt(int opt, const char *arg, void *ctx)
{
	struct apply_opts *a = ctx;
	if (opt != 'f')
		return -1;
	if (a->n >= 256)
		return error("at most 256 -f arguments");
	a->files[a->n++] = arg;
	return 0;
}

static int read_file(const char *path, struct buf *b)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return error("could not open '%s': %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(b, chunk, n)) {
			rc = error("'%s' is larger than %zu bytes", path, b->limit);
			break;
		}
	if (f != stdin)
		fclose(f);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a file, or every .yaml/.yml/.json file of a directory in name order. */
static int add_path(json_t *files, const char *path)
{
	struct stat st;
	if (strcmp(path, "-") && stat(path, &st))
		return error("could not open '%s': %s", path, strerror(errno));
	if (strcmp(path, "-") && S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d)
			return error("could not read directory '%s': %s", path, strerror(errno));
		char *names[1024];
		int n = 0;
		struct dirent *de;
		while ((de = readdir(d)) && n < 1024) {
			const char *dot = strrchr(de->d_name, '.');
			if (de->d_name[0] != '.' && dot &&
			    (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json")))
				names[n++] = strdup(de->d_name);
		}
		closedir(d);
		qsort(names, (size_t)n, sizeof(char *), cmp_str);
		int rc = 0;
		for (int i = 0; i < n; i++) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", path, names[i]);
			if (!rc)
				rc = add_path(files, p);
			free(names[i]);
		}
		return rc;
	}
	struct buf b;
	buf_init(&b, DOC_MAX_BYTES);
	int rc = read_file(path, &b);
	if (!rc)
		json_array_append_new(files, json_pack("{s:s, s:s%}", "name", path, "content", b.data, b.len));
	buf_release(&b);
	return rc;
}

int cmd_apply(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice apply -f FILE|DIR [-f ...] [--server URL] [-o json]\n\n"
		"Validates Environment and Service manifests (YAML, several documents per file) and\n"
		"stores them. An error names file:line:column; nothing is stored unless every file is\n"
		"valid. A directory means every .yaml, .yml and .json file in it.\n\n"
		"  -f, --file PATH  a manifest file, a directory, or - for stdin\n" CLIENT_HELP;
	static const struct option extra[] = {{"file", required_argument, NULL, 'f'}, {0}};
	struct client c;
	struct apply_opts a = {.n = 0};
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "f:", extra, apply_opt, &a, usage, &rc);
	if (i < 0)
		goto out;
	for (; i < argc; i++)
		if (apply_opt('f', argv[i], &a))
			goto out;
	if (!a.n) {
		error("nothing to apply: give -f FILE");
		goto out;
	}
	json_t *files = json_array();
	for (int k = 0; k < a.n; k++)
		if (add_path(files, a.files[k])) {
			json_decref(files);
			goto out;
		}
	json_t *body = json_pack("{s:o}", "files", files), *resp = NULL;
	rc = client_call(&c, "POST", "/v1/apply", body, &resp, NULL);
	json_decref(body);
	if (rc == EXIT_OK) {
		if (c.json) {
			client_print_json(resp);
		} else {
			size_t k;
			json_t *m;
			json_array_foreach(json_object_get(resp, "applied"), k, m)
				printf("%s %s %s\n", json_string_value(json_object_get(m, "kind")),
				       json_string_value(json_object_get(m, "name")),
				       json_is_true(json_object_get(m, "changed")) ? "applied" : "unchanged");
			json_array_foreach(json_object_get(resp, "warnings"), k, m)
				fprintf(stderr, "warning: %s\n", json_string_value(m));
		}
	}
	json_decref(resp);
out:
	client_release(&c);
	return rc;
}

/* ---- release ---- */

struct release_opts {
	const char *artifact, *contract;
};

static int release_opt(int opt, const char *arg, void *ctx)
{
	struct release_opts *r = ctx;
	if (opt == 'a')
		r->artifact = arg;
	else if (opt == 'c')
		r->contract = arg;
	else
		return -1;
	return 0;
}

static int file_digest(const char *path, char out[72])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return error("could not open artifact '%s': %s", path, strerror(errno));
	struct sha256 h;
	sha256_init(&h);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sha256_update(&h, chunk, n);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return error("could not read artifact '%s'", path);
	unsigned char d[32];
	char hex[65];
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(out, 72, "sha256:%s", hex);
	return 0;
}

/* Reads and validates a contract file (YAML or JSON) into the self-contained JSON the server
 * stores (a `provides` path is inlined). */
static int load_contract_json(const char *path, json_t **out)
{
	contract *ct = NULL;
	struct err e = {""};
	if (contract_load(path, &ct, &e))
		return error("%s", e.msg);
	*out = contract_to_json(ct);
	contract_free(ct);
	return *out ? 0 : error("out of memory");
}

static int release_push(struct client *c, int argc, char **argv, int i, struct release_opts *r)
{
	if (positional("release push", argc, argv, i, 2, 2, "SERVICE VERSION", "sv"))
		return EXIT_USAGE;
	if (!r->artifact) {
		error("release push: --artifact PATH is required");
		return EXIT_USAGE;
	}
	const char *service = argv[i], *version = argv[i + 1];
	char digest[72];
	if (file_digest(r->artifact, digest))
		return EXIT_USAGE;
	json_t *cjson = NULL;
	if (r->contract && load_contract_json(r->contract, &cjson))
		return EXIT_USAGE;
	/* CI hands over the artifact: upload it (content-addressed, a no-op when present) */
	char path[512], url[4096];
	snprintf(path, sizeof(path), "/v1/artifacts/%s", digest);
	snprintf(url, sizeof(url), "%s%s", c->server, path);
	long status = 0;
	struct buf resp;
	buf_init(&resp, 1 << 20);
	struct err e = {""};
	int trc = client_token(c);
	if (trc) {
		buf_release(&resp);
		json_decref(cjson);
		return trc;
	}
	int hrc = httpc_upload(c->http, "PUT", url, r->artifact, &status, &resp, &e);
	if (hrc) {
		buf_release(&resp);
		json_decref(cjson);
		return client_unreachable(c, hrc, &e);
	}
	if (status != 200 && status != 201) {
		error("artifact upload refused (%ld): %s", status, resp.data);
		buf_release(&resp);
		json_decref(cjson);
		return status >= 500 ? EXIT_UNREACHABLE : EXIT_USAGE;
	}
	buf_release(&resp);
	json_t *body = json_pack("{s:s, s:s, s:o?}", "version", version, "digest", digest, "contract", cjson);
	json_t *out = NULL;
	snprintf(path, sizeof(path), "/v1/services/%s/releases", service);
	int rc = client_call(c, "POST", path, body, &out, NULL);
	json_decref(body);
	if (rc == EXIT_OK) {
		if (c->json)
			client_print_json(out);
		else if (json_is_true(json_object_get(out, "created")))
			printf("pushed %s %s (%s)\n", service, version, digest);
		else
			printf("%s %s is already registered with this digest; nothing to do\n", service, version);
	}
	json_decref(out);
	return rc;
}

static int release_list(struct client *c, int argc, char **argv, int i)
{
	if (positional("release list", argc, argv, i, 1, 1, "SERVICE", "s"))
		return EXIT_USAGE;
	char path[512];
	snprintf(path, sizeof(path), "/v1/services/%s/releases", argv[i]);
	json_t *out = NULL;
	int rc = client_call(c, "GET", path, NULL, &out, NULL);
	if (rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (rc == EXIT_OK) {
		printf("%-12s %-20s %-12s %s\n", "VERSION", "CREATED", "CONTRACT", "DIGEST");
		size_t k;
		json_t *r;
		json_array_foreach(json_object_get(out, "releases"), k, r) {
			time_t t = (time_t)(json_integer_value(json_object_get(r, "created_at")) / 1000);
			char ts[32];
			strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", gmtime(&t));
			printf("%-12s %-20s %-12s %s\n", json_string_value(json_object_get(r, "version")), ts,
			       json_integer_value(json_object_get(r, "has_contract")) ? "yes" : "no",
			       json_string_value(json_object_get(r, "digest")));
		}
	}
	json_decref(out);
	return rc;
}

int cmd_release(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice release push SERVICE VERSION --artifact PATH [--contract FILE]\n"
		"       sluice release list SERVICE [-o json]\n\n"
		"push registers an immutable release: the artifact is uploaded to the server's\n"
		"content-addressed store (sha256). Pushing the same version with the same digest again\n"
		"does nothing; the same version with another digest is refused (exit 1).\n\n"
		"  -a, --artifact PATH  the built artifact (for the local runtime: an executable)\n"
		"  -c, --contract FILE  the release's contract (YAML or JSON, docs/contracts.md)\n" CLIENT_HELP;
	static const struct option extra[] = {{"artifact", required_argument, NULL, 'a'},
					      {"contract", required_argument, NULL, 'c'}, {0}};
	struct client c;
	struct release_opts r = {0};
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "release";
	if (argc >= 2 && (!strcmp(argv[1], "push") || !strcmp(argv[1], "list"))) {
		int i = client_parse(&c, argc - 1, argv + 1, "a:c:", extra, release_opt, &r, usage, &rc);
		if (i >= 0 && !strcmp(argv[1], "list") && (r.artifact || r.contract)) {
			error("release list: --%s is only used with push", r.artifact ? "artifact" : "contract");
			i = -1;
		}
		if (i >= 0)
			rc = !strcmp(argv[1], "push") ? release_push(&c, argc - 1, argv + 1, i, &r)
						      : release_list(&c, argc - 1, argv + 1, i);
		if (rc == EXIT_NO + 100)
			rc = EXIT_NO;
	} else if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		rc = EXIT_OK;
	} else {
		fputs(usage, stderr);
	}
	client_release(&c);
	return rc;
}

/* ---- deploy, rollback: follow a deployment until it ends ---- */

static void print_event(const json_t *ev)
{
	time_t t = (time_t)(json_integer_value(json_object_get(ev, "at")) / 1000);
	char ts[32];
	strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
	const char *region = json_string_value(json_object_get(ev, "region"));
	printf("%s  %-18s %-10s %s\n", ts, json_string_value(json_object_get(ev, "type")),
	       region ? region : "-", json_string_value(json_object_get(ev, "message")));
}

/* Polls until the deployment ends; prints events as they come. Returns the exit code. */
static int follow(struct client *c, json_int_t id, int timeout_s)
{
	char path[128];
	snprintf(path, sizeof(path), "/v1/deployments/%lld/events", (long long)id);
	size_t shown = 0;
	time_t start = time(NULL);
	for (;;) {
		json_t *d = NULL;
		int rc = client_call(c, "GET", path, NULL, &d, NULL);
		if (rc != EXIT_OK)
			return rc;
		json_t *events = json_object_get(d, "events");
		for (; !c->json && shown < json_array_size(events); shown++)
			print_event(json_array_get(events, shown));
		fflush(stdout);
		const char *phase = json_string_value(json_object_get(d, "phase"));
		if (phase && strcmp(phase, "active")) {
			int ok = !strcmp(phase, "promoted");
			if (c->json) {
				client_print_json(d);
			} else {
				const char *reason = json_string_value(json_object_get(d, "reason"));
				printf("deployment %lld %s%s%s\n", (long long)id, phase, reason ? ": " : "",
				       reason ? reason : "");
			}
			json_decref(d);
			return ok ? EXIT_OK : EXIT_NO;
		}
		json_decref(d);
		if (timeout_s > 0 && time(NULL) - start > timeout_s) {
			error("deployment %lld still running after %d s (it goes on; see 'sluice status')",
			      (long long)id, timeout_s);
			return EXIT_NO;
		}
		usleep(300000);
	}
}

struct deploy_opts {
	const char *env, *to, *region;
	int wait, force, hotfix, timeout, timeout_set;
};

static int deploy_opt(int opt, const char *arg, void *ctx)
{
	struct deploy_opts *d = ctx;
	struct err e;
	uint64_t ms;
	switch (opt) {
	case 'e':
		d->env = arg;
		return opt_name("--env", arg, NAME_OBJECT, &e) ? error("%s", e.msg) : 0;
	case 'w':
		d->wait = 1;
		return 0;
	case 'F':
		d->force = 1;
		return 0;
	case 't':
		d->to = arg;
		return opt_name("--to", arg, NAME_VERSION, &e) ? error("%s", e.msg) : 0;
	case 'T':
		if (opt_duration_ms("--timeout", arg, 1000, 7ull * 24 * 3600 * 1000, &ms, &e))
			return error("%s", e.msg);
		d->timeout = (int)((ms + 999) / 1000);
		d->timeout_set = 1;
		return 0;
	case 'H':
		d->hotfix = 1;
		return 0;
	case 'R':
		d->region = arg;
		return opt_name("--region", arg, NAME_OBJECT, &e) ? error("%s", e.msg) : 0;
	}
	return -1;
}

int cmd_deploy(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice deploy SERVICE VERSION [--env ENV] [--wait [--timeout S]] [--force] [--hotfix]\n\n"
		"Starts a deployment of a pushed release: compatibility gate, the pre-production stage\n"
		"when the environment is promoted from one, then the service's strategy (canary by\n"
		"default) wave by wave, each step verified against the stable version; a failed check\n"
		"rolls back by itself. One pipeline runs per service: a new request waits its turn\n"
		"(policy queue) or replaces those waiting (policy supersede).\n\n"
		"  --env ENV     target environment (default production)\n"
		"  --wait        follow the deployment; exit 0 when promoted, 1 when rolled back or\n"
		"                failed\n"
		"  --timeout D   with --wait, give up waiting after D (30s, 2m; a number is seconds;\n"
		"                the deployment goes on)\n"
		"  --force       deploy even if the compatibility gate refuses (recorded in events)\n"
		"  --hotfix      a fix: pre-empts the pipeline in flight (its traffic goes back to\n"
		"                stable, its instances drain and stop), then runs before any queued one\n" CLIENT_HELP;
	static const struct option extra[] = {{"env", required_argument, NULL, 'e'},
					      {"wait", no_argument, NULL, 'w'},
					      {"force", no_argument, NULL, 'F'},
					      {"hotfix", no_argument, NULL, 'H'},
					      {"timeout", required_argument, NULL, 'T'}, {0}};
	struct client c;
	struct deploy_opts d = {.env = "production"};
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, deploy_opt, &d, usage, &rc);
	if (i < 0 || positional("deploy", argc, argv, i, 2, 2, "SERVICE VERSION", "sv"))
		goto out;
	if (d.timeout_set && !d.wait) {
		error("deploy: --timeout is only used with --wait");
		goto out;
	}
	json_t *body = json_pack("{s:s, s:s, s:s, s:b, s:b}", "service", argv[i], "version", argv[i + 1],
				 "env", d.env, "force", d.force, "hotfix", d.hotfix);
	json_t *resp = NULL;
	long status = 0;
	rc = client_call(&c, "POST", "/v1/deployments", body, &resp, &status);
	json_decref(body);
	if (rc == EXIT_OK) {
		json_int_t id = json_integer_value(json_object_get(resp, "id"));
		if (!c.json || !d.wait) {
			if (c.json)
				client_print_json(resp);
			else
				printf("deployment %lld: %s %s to %s\n", (long long)id, argv[i], argv[i + 1], d.env);
		}
		if (d.wait)
			rc = follow(&c, id, d.timeout);
	} else if (resp) {
		/* refused: show the server's explanation (and the gate's report when there is one) */
		const char *msg = json_string_value(json_object_get(resp, "error"));
		json_t *report = json_object_get(resp, "report");
		if (c.json)
			client_print_json(resp);
		else
			error("%s", msg ? msg : "refused");
		if (report && !c.json)
			client_print_json(report);
		rc = status == 404 ? EXIT_NOTFOUND : status == 409 || status == 412 ? EXIT_NO
		     : status >= 500 ? EXIT_UNREACHABLE : EXIT_USAGE;
	}
	json_decref(resp);
out:
	client_release(&c);
	return rc;
}

int cmd_rollback(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice rollback SERVICE [--to VERSION] [--env ENV] [--wait]\n\n"
		"Returns the service to its last known good release at once, without canary steps.\n"
		"A deployment in flight is aborted (traffic back to stable, canary drained and\n"
		"stopped); with nothing in flight, the previous stable release comes back. --to names\n"
		"the version to return to.\n\n"
		"  --to VERSION  the release to return to\n"
		"  --env ENV     environment (default production)\n"
		"  --wait        follow it; exit 0 when done\n" CLIENT_HELP;
	static const struct option extra[] = {{"env", required_argument, NULL, 'e'},
					      {"to", required_argument, NULL, 't'},
					      {"wait", no_argument, NULL, 'w'}, {0}};
	struct client c;
	struct deploy_opts d = {.env = "production"};
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, deploy_opt, &d, usage, &rc);
	if (i < 0 || positional("rollback", argc, argv, i, 1, 1, "SERVICE", "s"))
		goto out;
	char path[256];
	snprintf(path, sizeof(path), "/v1/services/%s/rollback", argv[i]);
	json_t *body = json_pack("{s:s, s:s?}", "env", d.env, "to", d.to), *resp = NULL;
	rc = client_call(&c, "POST", path, body, &resp, NULL);
	json_decref(body);
	if (rc == EXIT_OK) {
		json_t *ab = json_object_get(resp, "aborted"), *id = json_object_get(resp, "id");
		if (c.json && !d.wait)
			client_print_json(resp);
		else if (!c.json) {
			if (ab)
				printf("deployment %lld aborted: traffic returns to stable\n",
				       (long long)json_integer_value(ab));
			if (id)
				printf("rollback %lld: %s back to %s\n", (long long)json_integer_value(id), argv[i],
				       json_string_value(json_object_get(resp, "version")));
		}
		if (d.wait && (id || ab))
			rc = follow(&c, json_integer_value(id ? id : ab), 0);
		if (d.wait && ab && !id)
			rc = EXIT_OK; /* the aborted deployment ending rolled back is what was asked */
	}
	json_decref(resp);
out:
	client_release(&c);
	return rc;
}

/* ---- history, events, logs, shutdown ---- */

int cmd_history(int argc, char **argv)
{
	static const char usage[] = "usage: sluice history SERVICE [-o json]\n\n"
				    "Lists the service's deployments, newest first (never deleted).\n\n" CLIENT_HELP;
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", NULL, NULL, NULL, usage, &rc);
	if (i < 0 || positional("history", argc, argv, i, 1, 1, "SERVICE", "s"))
		goto out;
	char *esc = httpc_escape(argv[i]);
	char path[512];
	snprintf(path, sizeof(path), "/v1/deployments?service=%s", esc);
	free(esc);
	json_t *out = NULL;
	rc = client_call(&c, "GET", path, NULL, &out, NULL);
	if (rc == EXIT_OK && c.json) {
		client_print_json(out);
	} else if (rc == EXIT_OK) {
		printf("%-5s %-9s %-10s %-12s %-20s %-12s %s\n", "ID", "KIND", "VERSION", "ENV", "STARTED", "PHASE", "REASON");
		size_t k;
		json_t *d;
		json_array_foreach(json_object_get(out, "deployments"), k, d) {
			time_t t = (time_t)(json_integer_value(json_object_get(d, "created_at")) / 1000);
			char ts[32];
			strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime(&t));
			const char *reason = json_string_value(json_object_get(d, "reason"));
			printf("%-5lld %-9s %-10s %-12s %-20s %-12s %s\n",
			       (long long)json_integer_value(json_object_get(d, "id")),
			       json_string_value(json_object_get(d, "kind")),
			       json_string_value(json_object_get(d, "version")),
			       json_string_value(json_object_get(d, "env")), ts,
			       json_string_value(json_object_get(d, "phase")), reason ? reason : "");
		}
	}
	json_decref(out);
out:
	client_release(&c);
	return rc;
}

/* ---- events ---- */

/* What one `events --follow` remembers across pieces of the stream and reconnections. */
struct follow_state {
	struct client *c;
	struct buf msg;      /* the message being received (up to its blank line) */
	long long last;      /* the last event id received: Last-Event-ID on reconnecting */
	long long deployment; /* 0: every deployment */
	int ended;           /* the followed deployment is over */
	int check;           /* its phase is to be asked before going on */
	const char *phase_end; /* its final phase, for the exit code */
};

static void show_evidence(const json_t *ev)
{
	json_t *evidence = json_object_get(ev, "evidence");
	size_t m;
	json_t *chk;
	json_array_foreach(json_object_get(evidence, "checks"), m, chk)
		printf("%10s %-22s observed %-10.4g limit %-10.4g %s\n", "",
		       json_string_value(json_object_get(chk, "metric")),
		       json_number_value(json_object_get(chk, "observed")),
		       json_number_value(json_object_get(chk, "limit")),
		       json_string_value(json_object_get(chk, "decision")));
	if (evidence && !json_object_get(evidence, "checks")) {
		/* other methods' evidence: one compact line ('-o json' has all of it) */
		char *txt = json_dumps(evidence, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (txt)
			printf("%10s evidence %.400s%s\n", "", txt, strlen(txt) > 400 ? " ..." : "");
		free(txt);
	}
}

/* One event of the stream: printed (a JSON object per line with -o json); when one deployment
 * is followed, its phase is looked up to know whether it is over. */
static void follow_event(struct follow_state *f, const char *data)
{
	json_t *ev = json_loads(data, 0, NULL);
	if (!ev)
		return;
	if (f->c->json) {
		char *txt = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (txt)
			printf("%s\n", txt);
		free(txt);
	} else {
		if (!f->deployment)
			printf("#%-4lld %s/%s  ", (long long)json_integer_value(json_object_get(ev, "deployment")),
			       json_string_value(json_object_get(ev, "service")),
			       json_string_value(json_object_get(ev, "env")));
		print_event(ev);
		show_evidence(ev);
	}
	fflush(stdout);
	/* an event of the deployment as a whole (no region) may be its last: the stream stops so
	 * that its phase can be asked (the handle cannot make another call inside this one) */
	if (f->deployment && json_is_null(json_object_get(ev, "region")))
		f->check = 1;
	json_decref(ev);
}

/* Splits the stream into messages (ended by a blank line): "id:" and "data:" fields; comments
 * (heartbeats) and other fields are skipped. Stops the stream once the deployment is over. */
static int follow_data(void *arg, const char *data, size_t len)
{
	struct follow_state *f = arg;
	for (size_t k = 0; k < len && !f->check; k++) {
		char ch = data[k];
		if (ch == '\r')
			continue;
		if (ch != '\n' || !f->msg.len || f->msg.data[f->msg.len - 1] != '\n') {
			if (buf_add(&f->msg, &ch, 1))
				return 1; /* larger than any event: give up this connection */
			continue;
		}
		/* a blank line: the message is complete */
		char *line = f->msg.data, *next;
		const char *payload = NULL;
		for (; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			if (!strncmp(line, "id: ", 4))
				f->last = strtoll(line + 4, NULL, 10);
			else if (!strncmp(line, "data: ", 6))
				payload = line + 6;
		}
		if (payload)
			follow_event(f, payload);
		buf_reset(&f->msg);
	}
	return f->check;
}

/* Whether the followed deployment is over; its final phase in f->phase_end. */
static void follow_check(struct follow_state *f)
{
	char path[64];
	json_t *d = NULL;
	f->check = 0;
	snprintf(path, sizeof(path), "/v1/deployments/%lld", f->deployment);
	if (client_call(f->c, "GET", path, NULL, &d, NULL) == EXIT_OK) {
		const char *phase = json_string_value(json_object_get(d, "phase"));
		if (phase && strcmp(phase, "active")) {
			f->ended = 1;
			f->phase_end = !strcmp(phase, "promoted") ? "promoted" : "other";
		}
	}
	json_decref(d);
}

/* Follows the stream, reconnecting with Last-Event-ID after any interruption, until the
 * followed deployment is over (never when following every deployment). */
static int follow_stream(struct client *c, const char *service, long long deployment, long long after)
{
	struct follow_state f = {.c = c, .last = after, .deployment = deployment};
	buf_init(&f.msg, 1u << 20);
	int rc = client_token(c), warned = 0;
	while (!rc && !f.ended) {
		char url[2048], idh[64];
		char *esc = service ? httpc_escape(service) : NULL;
		size_t n = strlen(c->server);
		snprintf(url, sizeof(url), "%.*s/v1/events/stream?%s%s%s", (int)(n && c->server[n - 1] == '/' ? n - 1 : n),
			 c->server, esc ? "service=" : "", esc ? esc : "", esc ? "&" : "");
		free(esc);
		if (deployment)
			snprintf(url + strlen(url), sizeof(url) - strlen(url), "deployment=%lld", deployment);
		snprintf(idh, sizeof(idh), "Last-Event-ID: %lld", f.last);
		const char *hdrs[] = {idh, NULL};
		struct buf errb;
		buf_init(&errb, BUF_NOLIMIT);
		struct err e = {""};
		long status = 0;
		buf_reset(&f.msg);
		int hrc = httpc_stream(c->http, url, f.last >= 0 ? hdrs : NULL, 45000, follow_data, &f,
				       &status, &errb, &e);
		if (hrc == HTTPC_E_VERIFY) {
			buf_release(&errb);
			rc = client_unreachable(c, hrc, &e);
			break;
		}
		if (hrc == 0 && (status < 200 || status > 299) && status != 503) {
			json_t *j = json_loadb(errb.data, errb.len, 0, NULL);
			const char *msg = json_string_value(json_object_get(j, "error"));
			error("%s", msg ? msg : "the server refused the stream");
			json_decref(j);
			buf_release(&errb);
			rc = status == 404 ? EXIT_NOTFOUND : status >= 400 && status < 500 ? EXIT_USAGE
											  : EXIT_UNREACHABLE;
			break;
		}
		buf_release(&errb);
		if (f.check) {
			follow_check(&f);
			continue; /* over, or on with the same Last-Event-ID at once */
		}
		if (hrc && !warned++)
			error("%s (reconnecting)", e.msg);
		sleep(1); /* the server ended the stream or is away: resume where it stopped */
	}
	buf_release(&f.msg);
	if (!rc && f.ended)
		rc = !strcmp(f.phase_end, "promoted") ? EXIT_OK : EXIT_NO;
	return rc;
}

struct events_opts {
	int follow;
	const char *service;
	const char *rollout; /* --rollout ID */
};

static int events_opt(int opt, const char *arg, void *ctx)
{
	struct events_opts *o = ctx;
	struct err e;
	if (opt == 'f')
		o->follow = 1;
	else if (opt == 's')
		return opt_name("--service", o->service = arg, NAME_OBJECT, &e) ? error("%s", e.msg) : 0;
	else if (opt == 'R') {
		long long id;
		if (opt_int("--rollout", arg, 1, INT64_MAX, &id, &e))
			return error("%s", e.msg);
		o->rollout = arg;
	} else
		return -1;
	return 0;
}

int cmd_events(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice events DEPLOYMENT [-f] [-o json]\n"
		"       sluice events -f [--service S] [-o json]\n"
		"       sluice events --rollout ID [-o json]\n\n"
		"Shows what happened in one deployment (or one guarded flag rollout), with each\n"
		"verdict's evidence (metric, samples, observed value, limit, decision).\n\n"
		"  -f, --follow   then follow it live (server-sent events, reconnecting where it\n"
		"                 stopped) until it ends: exit 0 when promoted, 1 otherwise; without\n"
		"                 DEPLOYMENT, every event the token may read, until interrupted\n"
		"  --service S    with --follow and no DEPLOYMENT: only this service's events\n"
		"  --rollout ID   the events of a guarded flag rollout instead\n"
		"  -o json        one JSON object per event and per line when following\n\n" CLIENT_HELP;
	static const struct option extra[] = {{"follow", no_argument, NULL, 'f'},
					      {"service", required_argument, NULL, 's'},
					      {"rollout", required_argument, NULL, 'R'}, {0}};
	struct events_opts eo = {0};
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "f", extra, events_opt, &eo, usage, &rc);
	int want = eo.follow || eo.rollout ? 0 : 1;
	if (i < 0 || positional("events", argc, argv, i, want, eo.rollout ? 0 : 1, "DEPLOYMENT (an id)", "d"))
		goto out;
	if (eo.rollout && (eo.follow || eo.service)) {
		error("events: --rollout goes with neither --follow nor --service");
		rc = EXIT_USAGE;
		goto out;
	}
	if (eo.service && (!eo.follow || i < argc)) {
		error("events: --service goes with --follow and no DEPLOYMENT");
		rc = EXIT_USAGE;
		goto out;
	}
	if (eo.follow && i == argc) {
		rc = follow_stream(&c, eo.service, 0, -1);
		goto out;
	}
	char path[256];
	if (eo.rollout)
		snprintf(path, sizeof(path), "/v1/flag-rollouts/%s", eo.rollout);
	else
		snprintf(path, sizeof(path), "/v1/deployments/%s/events", argv[i]);
	json_t *out = NULL;
	rc = client_call(&c, "GET", path, NULL, &out, NULL);
	if (rc == EXIT_OK && eo.follow) {
		/* what happened so far, then live from the last event shown */
		size_t k;
		json_t *ev;
		long long last = 0;
		json_array_foreach(json_object_get(out, "events"), k, ev) {
			if (c.json) {
				char *txt = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
				if (txt)
					printf("%s\n", txt);
				free(txt);
			} else {
				print_event(ev);
				show_evidence(ev);
			}
			last = json_integer_value(json_object_get(ev, "id"));
		}
		fflush(stdout);
		const char *phase = json_string_value(json_object_get(out, "phase"));
		if (phase && strcmp(phase, "active"))
			rc = !strcmp(phase, "promoted") ? EXIT_OK : EXIT_NO;
		else
			rc = follow_stream(&c, NULL, json_integer_value(json_object_get(out, "id")), last);
	} else if (rc == EXIT_OK && c.json) {
		client_print_json(out);
	} else if (rc == EXIT_OK) {
		if (eo.rollout) {
			const json_t *st = json_object_get(out, "state");
			printf("flag rollout %lld: flag %s in %s, variant %s judged on %s, %s (%s, at %lld%%)\n",
			       (long long)json_integer_value(json_object_get(out, "id")),
			       json_string_value(json_object_get(out, "flag")),
			       json_string_value(json_object_get(out, "env")),
			       json_string_value(json_object_get(st, "variant")),
			       json_string_value(json_object_get(out, "service")),
			       json_string_value(json_object_get(out, "phase")),
			       json_string_value(json_object_get(st, "phase")),
			       (long long)json_integer_value(json_object_get(st, "weight")));
		} else {
			printf("deployment %lld: %s %s %s to %s, %s\n",
			       (long long)json_integer_value(json_object_get(out, "id")),
			       json_string_value(json_object_get(out, "kind")),
			       json_string_value(json_object_get(out, "service")),
			       json_string_value(json_object_get(out, "version")),
			       json_string_value(json_object_get(out, "env")),
			       json_string_value(json_object_get(out, "phase")));
		}
		size_t k;
		json_t *ev;
		json_array_foreach(json_object_get(out, "events"), k, ev) {
			print_event(ev);
			show_evidence(ev);
		}
	}
	json_decref(out);
out:
	client_release(&c);
	return rc;
}

struct logs_opts {
	const char *region, *env, *bytes;
};

static int logs_opt(int opt, const char *arg, void *ctx)
{
	struct logs_opts *lo = ctx;
	struct err e;
	long long n;
	int bad = 0;
	if (opt == 'r')
		bad = opt_name("--region", lo->region = arg, NAME_OBJECT, &e);
	else if (opt == 'e')
		bad = opt_name("--env", lo->env = arg, NAME_OBJECT, &e);
	else if (opt == 'b')
		bad = opt_int("--bytes", lo->bytes = arg, 1, 8 << 20, &n, &e);
	else
		return -1;
	return bad ? error("%s", e.msg) : 0;
}

int cmd_logs(int argc, char **argv)
{
	static const char usage[] = "usage: sluice logs SERVICE [--region R] [--env ENV] [--bytes N]\n\n"
				    "Shows the end of the instance logs of a service, each line prefixed with\n"
				    "the instance.\n\n"
				    "  --region R  only this region\n"
				    "  --env ENV   only this environment\n"
				    "  --bytes N   how much of the end of each log (default 65536)\n" CLIENT_HELP;
	static const struct option extra[] = {{"region", required_argument, NULL, 'r'},
					      {"env", required_argument, NULL, 'e'},
					      {"bytes", required_argument, NULL, 'b'}, {0}};
	struct logs_opts lo = {0};
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, logs_opt, &lo, usage, &rc);
	if (i < 0 || positional("logs", argc, argv, i, 1, 1, "SERVICE", "s"))
		goto out;
	struct buf q;
	buf_init(&q, 4096);
	char *esc = httpc_escape(argv[i]);
	int bad = buf_addf(&q, "%s/v1/logs?service=%s", c.server, esc);
	free(esc);
	const char *keys[] = {"region", "env", "bytes"}, *vals[] = {lo.region, lo.env, lo.bytes};
	for (int k = 0; k < 3; k++)
		if (vals[k]) {
			esc = httpc_escape(vals[k]);
			bad |= buf_addf(&q, "&%s=%s", keys[k], esc);
			free(esc);
		}
	long status = 0;
	struct buf resp;
	buf_init(&resp, 64u << 20);
	struct err e = {""};
	int trc = bad ? 0 : client_token(&c);
	int hrc = trc ? 0 : bad ? err_set(&e, "out of memory") : httpc_request(c.http, "GET", q.data, NULL, 0,
										 NULL, &status, &resp, &e);
	if (trc) {
		rc = trc;
	} else if (hrc) {
		rc = client_unreachable(&c, hrc, &e);
	} else if (status != 200) {
		error("%s", resp.data);
		rc = status == 404 ? EXIT_NOTFOUND : EXIT_USAGE;
	} else {
		fwrite(resp.data, 1, resp.len, stdout);
		rc = EXIT_OK;
	}
	buf_release(&resp);
	buf_release(&q);
out:
	client_release(&c);
	return rc;
}

static int shutdown_opt(int opt, const char *arg, void *ctx)
{
	if (opt != 'D')
		return -1;
	*(int *)ctx = 1;
	return 0;
}

int cmd_shutdown(int argc, char **argv)
{
	static const char usage[] = "usage: sluice shutdown [--data-plane]\n\n"
				    "Stops the server. With --data-plane, also stops every instance it runs\n"
				    "(gracefully) and the proxy; without it they keep serving.\n\n" CLIENT_HELP;
	static const struct option extra[] = {{"data-plane", no_argument, NULL, 'D'}, {0}};
	int all = 0;
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, shutdown_opt, &all, usage, &rc);
	if (i < 0 || positional("shutdown", argc, argv, i, 0, 0, "no argument", ""))
		goto out;
	json_t *body = json_pack("{s:b}", "data_plane", all);
	rc = client_call(&c, "POST", "/v1/shutdown", body, NULL, NULL);
	json_decref(body);
	if (rc == EXIT_OK && !c.json)
		printf("server stopping%s\n", all ? " with its instances and proxy" : "");
out:
	client_release(&c);
	return rc;
}

int cmd_promote(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice promote DEPLOYMENT [--region REGION] [--wait]\n\n"
		"Promotes now: the deployment's regions in a canary step (or holding the old set after a\n"
		"blue-green switch) skip their remaining steps and checks and become stable. Later\n"
		"waves keep their own steps. Needs the deploy permission.\n\n"
		"  --region R  only this region\n"
		"  --wait      follow the deployment; exit 0 when it ends promoted\n" CLIENT_HELP;
	static const struct option extra[] = {{"region", required_argument, NULL, 'R'},
					      {"wait", no_argument, NULL, 'w'}, {0}};
	struct client c;
	struct deploy_opts d = {0};
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, deploy_opt, &d, usage, &rc);
	if (i < 0 || positional("promote", argc, argv, i, 1, 1, "DEPLOYMENT (an id)", "d"))
		goto out;
	char path[256];
	snprintf(path, sizeof(path), "/v1/deployments/%s/promote%s%s", argv[i], d.region ? "?region=" : "",
		 d.region ? d.region : "");
	json_t *resp = NULL;
	rc = client_call(&c, "POST", path, NULL, &resp, NULL);
	if (rc == EXIT_OK) {
		if (c.json && !d.wait)
			client_print_json(resp);
		else if (!c.json)
			printf("deployment %s: promoting now%s%s\n", argv[i], d.region ? " in " : "",
			       d.region ? d.region : "");
		if (d.wait)
			rc = follow(&c, json_integer_value(json_object_get(resp, "id")), 0);
	}
	json_decref(resp);
out:
	client_release(&c);
	return rc;
}

int cmd_retry(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice retry DEPLOYMENT --region REGION [--wait]\n\n"
		"Retries one failed region of a deployment alone: no other region is touched.\n\n"
		"  --region R  the failed region\n"
		"  --wait      follow the deployment; exit 0 when it ends promoted\n" CLIENT_HELP;
	static const struct option extra[] = {{"region", required_argument, NULL, 'R'},
					      {"wait", no_argument, NULL, 'w'}, {0}};
	struct client c;
	struct deploy_opts d = {0};
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "", extra, deploy_opt, &d, usage, &rc);
	if (i < 0 || positional("retry", argc, argv, i, 1, 1, "DEPLOYMENT (an id)", "d"))
		goto out;
	if (!d.region) {
		error("retry: --region REGION is required");
		goto out;
	}
	char path[256];
	snprintf(path, sizeof(path), "/v1/deployments/%s/retry", argv[i]);
	json_t *body = json_pack("{s:s}", "region", d.region), *resp = NULL;
	rc = client_call(&c, "POST", path, body, &resp, NULL);
	json_decref(body);
	if (rc == EXIT_OK) {
		if (c.json && !d.wait)
			client_print_json(resp);
		else if (!c.json)
			printf("deployment %s: retrying %s\n", argv[i], d.region);
		if (d.wait)
			rc = follow(&c, json_integer_value(json_object_get(resp, "id")), 0);
	}
	json_decref(resp);
out:
	client_release(&c);
	return rc;
}
