/*
 * runtime_local: the runtime driver that runs instances as processes on this machine.
 *
 * Every instance has a directory DIR/<id>/ holding state.json (what to run, the pid and its
 * start time, the port, the desired state, the stop deadline) and log (its stdout+stderr).
 * state.json is rewritten atomically (tmp + fsync + rename) whenever something a restarted
 * server would need changes, so the processes outlive this driver and are re-adopted by
 * local_open: a pid whose /proc start time still matches is the same process.
 *
 * Processes are started with fork+exec in their own session (setsid), so a Ctrl-C or kill -9
 * of the server does not reach them, and stopped by signalling their whole process group.
 * See docs/runtime.md for the behaviour in prose.
 */
#include "runtime/runtime_local.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/name.h"
#include "util/spawn.h"

extern char **environ;

/* Instance ports: below the kernel's ephemeral range (32768+, where outgoing connections
 * take their local ports) and below 27000, where the project's tests and demo put listeners
 * of their own (27070, 28001-28102, 29001-29071). The `ports` setting changes it. */
#define PORT_LO 20000
#define PORT_HI 26999
#define MAX_INSTANCES 4096           /* per runtime: a bound on memory and on tick work */
#define MAX_COUNT 1000               /* per ensure */
#define MAX_ARGS 256                 /* args and env vars of a spec, each */
#define MAX_STR 4096                 /* any spec string, before and after substitution */
#define STATE_MAX (1u << 20)         /* state.json read limit */
#define LOG_CAP_DEFAULT (10u << 20)  /* trim a log to its newest half past this size */
#define LOG_CHECK_MS 1000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_MS 60000       /* healthy this long -> the next crash restarts quickly */
#define HEALTH_FAILS 3               /* failures in a row that make a healthy instance unhealthy */
#define STARTING_RETRY_MS 100        /* health retry period while starting (bounded by interval) */
#define STATUS_LINE_MAX 64
#define KEPT_LOGS 64                 /* logs of stopped instances kept in DIR/logs/ */

enum hc_phase { HC_IDLE, HC_CONNECTING, HC_READING };

struct spec_copy {
	char *artifact, *command, *health_path;
	char **args, **env; /* NULL-terminated */
	unsigned health_interval_ms, health_timeout_ms, drain_timeout_ms;
};

struct inst {
	struct inst *next;
	char id[RUNTIME_LOCAL_ID_MAX], service[RUNTIME_NAME_MAX], env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX],
		version[RUNTIME_NAME_MAX];
	int index;
	struct spec_copy spec;

	int pid;                       /* 0 when not running */
	unsigned long long start_time; /* /proc/PID/stat field 22, identifies the process */
	int pidfd;                     /* for processes that are not our children; -1 if none */
	bool child;                    /* pid is our child (spawned, not adopted): its exit leaves
					* a zombie that waitid sees */
	int port;
	enum instance_state state;
	bool want_running;
	bool term_sent, kill_sent;
	bool gone;                     /* STOPPED: listed once more, then freed */
	bool persisted;                /* state.json has been written durably once */
	unsigned restarts;
	unsigned failed_starts; /* see struct instance_info */
	int last_exit;
	char reason[128];
	uint64_t next_start;           /* BACKOFF: when to start again */
	uint64_t backoff_ms;           /* delay after the next exit */
	uint64_t healthy_since;
	uint64_t stop_deadline;        /* STOPPING: when SIGTERM becomes SIGKILL */

	int hc_fd;
	enum hc_phase hc_phase;
	uint64_t hc_deadline, hc_next;
	unsigned hc_fails;
	char hc_resp[STATUS_LINE_MAX];
	size_t hc_len;
};

struct local {
	char *dir;
	char *real_dir;                /* canonical dir: the SLUICE_RUNTIME_DIR marker of our processes */
	int lock_fd;
	struct inst *list;
	size_t count;
	uint64_t generation; /* local_generation */
	uint64_t now;
	unsigned port_cursor;
	int port_lo, port_hi;
	size_t log_cap;
	uint64_t next_log_check;
	struct runtime_local_settings settings; /* as opened */
};

/* ---- small helpers ---- */

static uint64_t clock_ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_reason(struct inst *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct inst *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->reason, sizeof in->reason, fmt, ap);
	va_end(ap);
}

/* Names become directory names and ids: the names' own rules (util/name.h) keep out '/', a
 * leading '.', spaces and control characters. */
static bool valid_names(const char *service, const char *env, const char *region, const char *version)
{
	return name_object_ok(service) && name_object_ok(env) && name_object_ok(region) &&
	       name_label_ok(version) && strlen(version) < RUNTIME_NAME_MAX;
}

static bool match(const char *filter, const char *v)
{
	return !filter || strcmp(filter, v) == 0;
}

static int path_of(const struct local *rt, const struct inst *in, const char *file, char *out, size_t n)
{
	int r = file ? snprintf(out, n, "%s/%s/%s", rt->dir, in->id, file)
		     : snprintf(out, n, "%s/%s", rt->dir, in->id);
	return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot. Together with the pid
 * it names one process for the life of the machine (pids are reused, start times are not). */
static int proc_start_time(int pid, unsigned long long *out)
{
	char path[64], b[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0)
		return -1;
	b[n] = 0;
	char *p = strrchr(b, ')'); /* comm may contain spaces and parentheses */
	if (!p)
		return -1;
	p++;
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (field == 3 && *p == 'Z')
			return -1; /* a zombie is dead for our purposes */
		if (field == 22) {
			*out = strtoull(p, NULL, 10);
			return 0;
		}
		while (*p && *p != ' ')
			p++;
	}
	return -1;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	remove(p);
	return 0;
}

/* ---- spec copies ---- */

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void spec_free(struct spec_copy *s)
{
	free(s->artifact);
	free(s->command);
	free(s->health_path);
	strv_free(s->args);
	strv_free(s->env);
	memset(s, 0, sizeof *s);
}

static char **strv_dup(const char *const *v, struct err *e, const char *what)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	if (n > MAX_ARGS)
		return err_set(e, "too many %s (%zu, at most %d)", what, n, MAX_ARGS), NULL;
	char **r = calloc(n + 1, sizeof *r);
	if (!r)
		return err_set(e, "out of memory"), NULL;
	for (size_t i = 0; i < n; i++) {
		if (strlen(v[i]) >= MAX_STR || !(r[i] = strdup(v[i]))) {
			strv_free(r);
			return err_set(e, "%s entry %zu is too long or memory is exhausted", what, i), NULL;
		}
	}
	return r;
}

static int spec_copy_from(struct spec_copy *s, const struct instance_spec *in, struct err *e)
{
	memset(s, 0, sizeof *s);
	if (!in->command || !*in->command)
		return err_set(e, "instance spec has no command");
	if (in->health_ca && *in->health_ca)
		return err_set(e, "the local runtime checks health over plain HTTP only (health_ca)");
	if (strlen(in->command) >= MAX_STR || (in->artifact && strlen(in->artifact) >= MAX_STR) ||
	    (in->health_path && strlen(in->health_path) >= MAX_STR))
		return err_set(e, "instance spec string longer than %d bytes", MAX_STR);
	const char *hp = in->health_path && *in->health_path ? in->health_path : "/healthz";
	if (hp[0] != '/' || strpbrk(hp, " \r\n"))
		return err_set(e, "health path '%s' must start with '/' and contain no spaces", hp);
	s->artifact = strdup(in->artifact ? in->artifact : "");
	s->command = strdup(in->command);
	s->health_path = strdup(hp);
	if (!s->artifact || !s->command || !s->health_path) {
		spec_free(s);
		return err_set(e, "out of memory");
	}
	if (!(s->args = strv_dup(in->args, e, "args")) || !(s->env = strv_dup(in->env_vars, e, "env vars"))) {
		spec_free(s);
		return -1;
	}
	for (char **p = s->env; *p; p++) {
		if (!strchr(*p, '=') || **p == '=') {
			err_set(e, "env var '%s' must be KEY=value", *p);
			spec_free(s);
			return -1;
		}
	}
	s->health_interval_ms = in->health_interval_ms ? in->health_interval_ms : 1000;
	s->health_timeout_ms = in->health_timeout_ms ? in->health_timeout_ms : 1000;
	s->drain_timeout_ms = in->drain_timeout_ms ? in->drain_timeout_ms : 10000;
	return 0;
}

static json_t *strv_json(char **v)
{
	json_t *a = json_array();
	for (char **p = v; p && *p; p++)
		json_array_append_new(a, json_string(*p));
	return a;
}

static json_t *spec_json(const struct spec_copy *s)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:I}", "artifact", s->artifact, "command",
			 s->command, "args", strv_json(s->args), "env", strv_json(s->env), "health_path",
			 s->health_path, "health_interval_ms", (json_int_t)s->health_interval_ms,
			 "health_timeout_ms", (json_int_t)s->health_timeout_ms, "drain_timeout_ms",
			 (json_int_t)s->drain_timeout_ms);
}

static const char **json_strv(json_t *a)
{
	if (!json_is_array(a) || json_array_size(a) > MAX_ARGS)
		return NULL;
	const char **v = calloc(json_array_size(a) + 1, sizeof *v);
	if (!v)
		return NULL;
	size_t i;
	json_t *x;
	json_array_foreach(a, i, x)
	{
		if (!json_is_string(x)) {
			free(v);
			return NULL;
		}
		v[i] = json_string_value(x);
	}
	return v;
}

static int spec_from_json(struct spec_copy *s, json_t *j, struct err *e)
{
	struct instance_spec in = {0};
	json_int_t hi = 0, ht = 0, dt = 0;
	json_t *args = NULL, *env = NULL;
	if (json_unpack(j, "{s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:I}", "artifact", &in.artifact, "command",
			&in.command, "args", &args, "env", &env, "health_path", &in.health_path,
			"health_interval_ms", &hi, "health_timeout_ms", &ht, "drain_timeout_ms", &dt) ||
	    hi < 0 || ht < 0 || dt < 0 || hi > UINT32_MAX || ht > UINT32_MAX || dt > UINT32_MAX)
		return err_set(e, "spec is missing a field or has one of the wrong type");
	const char **a = json_strv(args), **v = json_strv(env);
	int r = -1;
	if (!a || !v)
		err_set(e, "spec args/env must be arrays of at most %d strings", MAX_ARGS);
	else {
		in.args = a;
		in.env_vars = v;
		in.health_interval_ms = (unsigned)hi;
		in.health_timeout_ms = (unsigned)ht;
		in.drain_timeout_ms = (unsigned)dt;
		r = spec_copy_from(s, &in, e);
	}
	free(a);
	free(v);
	return r;
}

/* ---- state files ---- */

/* Monotonic deadline -> wall clock, so a deadline survives a restart of the server. */
static uint64_t to_wall(const struct local *rt, uint64_t mono)
{
	uint64_t wall = clock_ms(CLOCK_REALTIME);
	return mono >= rt->now ? wall + (mono - rt->now) : wall - (rt->now - mono);
}

/* `durable` (fsync before the rename) when the change should survive a power loss: the
 * record's creation, a new desired state or spec. The frequent updates (pid, health, exits) are
 * only written: the page cache survives a kill of the server, and after a machine crash the
 * processes they describe are gone anyway. Directories are not fsynced: after a machine crash
 * the store is the truth and the reconciler calls ensure/stop again, which repairs a lost
 * record; an fsync costs ~5 ms here and ensure/stop run on the server's loop thread. */
static int state_save(struct local *rt, struct inst *in, bool durable)
{
	rt->generation++;
	char path[4096], tmp[4200];
	if (path_of(rt, in, "state.json", path, sizeof path))
		return -1;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:i, s:I, s:i, s:s, s:s, s:i, s:i, s:s, s:I}",
			      "version_of_file", 1, "id", in->id, "service", in->service, "env", in->env,
			      "region", in->region, "release", in->version, "index", in->index, "spec",
			      spec_json(&in->spec), "pid", in->pid, "start_time", (json_int_t)in->start_time,
			      "port", in->port, "state", runtime_state_name(in->state), "desired",
			      in->want_running ? "running" : "stopped", "restarts", (int)in->restarts,
			      "last_exit", in->last_exit, "reason", in->reason, "stop_deadline_unix_ms",
			      (json_int_t)(in->state == INSTANCE_STOPPING ? to_wall(rt, in->stop_deadline) : 0));
	char *text = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!text)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = -1;
	if (fd >= 0) {
		size_t len = strlen(text);
		rc = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && (!durable || fsync(fd) == 0)
			     ? 0
			     : -1;
		close(fd);
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -1;
	}
	if (rc == 0 && durable)
		in->persisted = true;
	if (rc != 0) {
		log_warn("runtime: could not write '%s': %s", path, strerror(errno));
		unlink(tmp);
	}
	free(text);
	return rc;
}

/* Appends a line of our own to the instance's log, so the log tells the whole story. */
static void log_note(struct local *rt, struct inst *in, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void log_note(struct local *rt, struct inst *in, const char *fmt, ...)
{
	char path[4096], line[512];
	if (path_of(rt, in, "log", path, sizeof path))
		return;
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(line, sizeof line, "--- sluice %Y-%m-%dT%H:%M:%SZ: ", &tm);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n++] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, line, n) < 0) {
			/* nothing better to do: the log is advisory */
		}
		close(fd);
	}
}

/* ---- ports ---- */

/* A port is free when a listener could bind it now. SO_REUSEADDR, like servers use, so that
 * connections of a previous instance in TIME_WAIT do not make its own port look taken. */
static bool port_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static bool port_known(const struct local *rt, int port, const struct inst *except)
{
	for (const struct inst *i = rt->list; i; i = i->next)
		if (i != except && !i->gone && i->port == port)
			return true;
	return false;
}

/* Scans from a cursor that starts at a per-process pseudo-random place, so two runtimes (two
 * regions, parallel tests) rarely probe the same port between probe and the instance's bind. */
static int port_alloc(struct local *rt, const struct inst *for_inst)
{
	unsigned span = (unsigned)(rt->port_hi - rt->port_lo + 1);
	for (unsigned k = 0; k < span; k++) {
		int port = rt->port_lo + (int)(rt->port_cursor++ % span);
		if (!port_known(rt, port, for_inst) && port_free(port))
			return port;
	}
	return -1;
}

/* ---- starting ---- */

/* Substitutes {port}, {host} (127.0.0.1: where a local instance serves), {artifact}, {service},
 * {version}, {env}, {region} and {index}. Unknown
 * braces are kept as they are. Returns a malloc'd string or NULL when too long. */
static char *subst(const struct inst *in, const char *t)
{
	char port[16], index[16];
	snprintf(port, sizeof port, "%d", in->port);
	snprintf(index, sizeof index, "%d", in->index);
	const struct {
		const char *name, *value;
	} vars[] = {{"{port}", port},		 {"{host}", "127.0.0.1"},	     {"{artifact}", in->spec.artifact},
		    {"{service}", in->service}, {"{version}", in->version}, {"{env}", in->env},
		    {"{region}", in->region},   {"{index}", index}};
	struct buf b;
	buf_init(&b, MAX_STR);
	while (*t) {
		size_t k, n = sizeof vars / sizeof *vars;
		for (k = 0; k < n; k++)
			if (strncmp(t, vars[k].name, strlen(vars[k].name)) == 0)
				break;
		int r;
		if (k < n) {
			r = buf_adds(&b, vars[k].value);
			t += strlen(vars[k].name);
		} else {
			r = buf_add(&b, t, 1);
			t++;
		}
		if (r) {
			buf_release(&b);
			return NULL;
		}
	}
	return buf_detach(&b, NULL);
}

static bool env_overridden(const char *entry, char **extra)
{
	for (char **p = extra; *p; p++) {
		size_t k = strcspn(*p, "=");
		if (strncmp(entry, *p, k + 1) == 0)
			return true;
	}
	return false;
}

static void hc_reset(struct inst *in)
{
	if (in->hc_fd >= 0)
		close(in->hc_fd);
	in->hc_fd = -1;
	in->hc_phase = HC_IDLE;
	in->hc_len = 0;
}

static void backoff_schedule(struct local *rt, struct inst *in)
{
	rt->generation++;
	in->state = INSTANCE_BACKOFF;
	in->next_start = rt->now + in->backoff_ms;
	in->backoff_ms = in->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : in->backoff_ms * 2;
}

/* Starts the process. On failure the instance is in BACKOFF with the reason. */
static int spawn(struct local *rt, struct inst *in)
{
	char dir[4096], logp[4096];
	char **argv = NULL, **envp = NULL;
	int logfd = -1, rc = -1;
	size_t nargs = 0, nenv = 0, nextra = 0;

	if (path_of(rt, in, NULL, dir, sizeof dir) || path_of(rt, in, "log", logp, sizeof logp)) {
		set_reason(in, "runtime path too long");
		goto out;
	}
	mkdir(dir, 0755);
	/* Keep the port across restarts so the address the router knows stays valid, unless
	 * someone else took it meanwhile. */
	if (in->port <= 0 || port_known(rt, in->port, in) || !port_free(in->port))
		in->port = port_alloc(rt, in);
	if (in->port < 0) {
		in->port = 0;
		set_reason(in, "no free port in %d-%d", rt->port_lo, rt->port_hi);
		goto out;
	}
	while (in->spec.args[nargs])
		nargs++;
	while (in->spec.env[nextra])
		nextra++;
	while (environ && environ[nenv])
		nenv++;
	argv = calloc(nargs + 2, sizeof *argv);
	char **extra = calloc(nextra + 4, sizeof *extra);
	envp = calloc(nenv + nextra + 4, sizeof *envp);
	if (!argv || !envp || !extra) {
		free(extra);
		set_reason(in, "out of memory");
		goto out;
	}
	bool ok = (argv[0] = subst(in, in->spec.command)) != NULL;
	if (ok && argv[0][0] != '/' && strchr(argv[0], '/')) {
		/* The child runs in its own directory: a relative path means the server's cwd. */
		char cwd[4096], *abs = NULL;
		ok = getcwd(cwd, sizeof cwd) && asprintf(&abs, "%s/%s", cwd, argv[0]) > 0;
		free(argv[0]);
		argv[0] = abs;
		ok = ok && abs;
	}
	for (size_t i = 0; ok && i < nargs; i++)
		ok = (argv[i + 1] = subst(in, in->spec.args[i])) != NULL;
	for (size_t i = 0; ok && i < nextra; i++)
		ok = (extra[i] = subst(in, in->spec.env[i])) != NULL;
	if (ok)
		ok = asprintf(&extra[nextra], "PORT=%d", in->port) > 0 &&
		     asprintf(&extra[nextra + 1], "SLUICE_INSTANCE=%s", in->id) > 0 &&
		     asprintf(&extra[nextra + 2], "SLUICE_RUNTIME_DIR=%s", rt->real_dir) > 0;
	if (!ok) {
		strv_free(extra);
		set_reason(in, "command, argument or env var too long after substitution");
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++)
		if (!env_overridden(environ[i], extra))
			envp[k++] = strdup(environ[i]);
	for (char **p = extra; *p; p++)
		envp[k++] = *p;
	free(extra);
	for (size_t i = 0; i < k; i++)
		if (!envp[i]) { /* a strdup failed: shift is not worth it, refuse */
			set_reason(in, "out of memory");
			goto out;
		}

	logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		set_reason(in, "could not open log '%s': %s", logp, strerror(errno));
		goto out;
	}
	/* Persist, then act: the file says "should run" before the process exists. If we die
	 * between fork and the next save, local_open finds the process by its environment
	 * (SLUICE_RUNTIME_DIR + SLUICE_INSTANCE) and adopts it instead of starting a twin. */
	in->pid = 0;
	in->state = INSTANCE_STARTING;
	state_save(rt, in, !in->persisted);
	struct spawn_opts so = {.argv = argv, .envp = envp, .cwd = dir, .out_fd = logfd};
	struct err se;
	pid_t pid;
	if (spawn_start(&so, &pid, &se) != 0) {
		set_reason(in, "%s", se.msg);
		log_note(rt, in, "%s", in->reason);
		goto out;
	}
	in->pid = pid;
	in->child = true;
	in->start_time = 0;
	if (proc_start_time(pid, &in->start_time) != 0)
		in->start_time = 0; /* exited already; the next tick reaps it */
	in->state = INSTANCE_STARTING;
	in->term_sent = in->kill_sent = false;
	in->hc_fails = 0;
	in->hc_next = rt->now;
	in->reason[0] = 0;
	log_note(rt, in, "started pid %d on port %d: %s", pid, in->port, argv[0]);
	rc = 0;
out:
	if (rc != 0) {
		in->pid = 0;
		backoff_schedule(rt, in);
	}
	state_save(rt, in, false);
	if (logfd >= 0)
		close(logfd);
	strv_free(argv);
	strv_free(envp);
	return rc;
}

/* ---- stopping and exits ---- */

/* Signals the instance's process group. Never with a pid of 0 or 1 (or our own): kill(-1)
 * would signal every process we may signal, and kill(0) our own group. */
static void signal_group(struct inst *in, int sig)
{
	if (in->pid <= 1 || in->pid == getpid())
		return;
	if (kill(-in->pid, sig) != 0 && errno == ESRCH)
		kill(in->pid, sig); /* not a group leader (should not happen): the process alone */
}

struct kept {
	char name[RUNTIME_LOCAL_ID_MAX + 8]; /* "ID.log" */
	time_t mtime;
};

static int cmp_kept(const void *a, const void *b)
{
	time_t x = ((const struct kept *)a)->mtime, y = ((const struct kept *)b)->mtime;
	return (x > y) - (x < y);
}

/* Keeps the newest KEPT_LOGS files of DIR/logs/, so stopped releases do not fill the disk. */
static void prune_logs(const char *logs)
{
	DIR *d = opendir(logs);
	if (!d)
		return;
	struct kept *v = calloc(1024, sizeof *v);
	size_t n = 0;
	struct dirent *de;
	while (v && (de = readdir(d)) && n < 1024) {
		struct stat st;
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof v->name ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		strcpy(v[n].name, de->d_name);
		v[n++].mtime = st.st_mtime;
	}
	if (v && n > KEPT_LOGS) {
		qsort(v, n, sizeof *v, cmp_kept);
		for (size_t i = 0; i < n - KEPT_LOGS; i++)
			unlinkat(dirfd(d), v[i].name, 0);
	}
	free(v);
	closedir(d);
}

/* The instance is gone for good: keep its log under DIR/logs/, remove its directory. */
static void finish_stopped(struct local *rt, struct inst *in)
{
	char dir[4096], logp[4096], keep[4096];
	hc_reset(in);
	if (in->pidfd >= 0)
		close(in->pidfd);
	in->pidfd = -1;
	in->pid = 0;
	in->state = INSTANCE_STOPPED;
	in->gone = true;
	rt->generation++;
	if (path_of(rt, in, NULL, dir, sizeof dir) || path_of(rt, in, "log", logp, sizeof logp))
		return;
	log_note(rt, in, "stopped");
	snprintf(keep, sizeof keep, "%s/logs", rt->dir);
	mkdir(keep, 0755);
	int r = snprintf(keep, sizeof keep, "%s/logs/%s.log", rt->dir, in->id);
	if (r > 0 && (size_t)r < sizeof keep && rename(logp, keep) == 0) {
		snprintf(keep, sizeof keep, "%s/logs", rt->dir);
		prune_logs(keep);
	}
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void describe_exit(struct inst *in, int status, bool never_healthy)
{
	const char *when = never_healthy ? " before becoming healthy" : "";
	if (status < 0)
		set_reason(in, "exited (status unknown: not our child)%s", when);
	else if (WIFEXITED(status))
		set_reason(in, "exited with status %d%s", WEXITSTATUS(status), when);
	else if (WIFSIGNALED(status))
		set_reason(in, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)), when);
	else
		set_reason(in, "exited (wait status %d)%s", status, when);
}

static void on_exit_seen(struct local *rt, struct inst *in, int status)
{
	bool never_healthy = in->state == INSTANCE_STARTING;
	/* Helpers the instance left in its group would hold its port: they go with it. */
	signal_group(in, SIGKILL);
	hc_reset(in);
	if (in->pidfd >= 0)
		close(in->pidfd);
	in->pidfd = -1;
	in->last_exit = status;
	in->pid = 0;
	if (!in->want_running) {
		finish_stopped(rt, in);
		return;
	}
	describe_exit(in, status, never_healthy);
	log_note(rt, in, "%s", in->reason);
	if (in->term_sent) { /* stopped, then wanted again: start over at once */
		in->state = INSTANCE_BACKOFF;
		in->next_start = rt->now;
	} else {
		uint64_t delay = in->backoff_ms;
		backoff_schedule(rt, in);
		size_t l = strlen(in->reason);
		snprintf(in->reason + l, sizeof in->reason - l, "; restarting in %llu ms", (unsigned long long)delay);
	}
	state_save(rt, in, false);
}

/* Whether some child of this process has exited and waits to be reaped (not reaping it): one
 * waitid for the whole tick, so that an instance's own pid is asked about only when one has.
 * An error other than "no children" counts as yes, which only costs the per-pid waitids. */
static bool some_child_exited(void)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno != ECHILD;
	return si.si_pid != 0;
}

/* Returns true when the process has exited (and handles it). child_exits: some_child_exited()
 * of this tick; without it, no child of ours has exited. */
static bool check_exit(struct local *rt, struct inst *in, bool child_exits)
{
	if (in->child && !child_exits)
		return false;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)in->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
		if (si.si_pid == 0)
			return false;
		int status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
		signal_group(in, SIGKILL); /* before reaping: the pid cannot be reused yet */
		waitpid(in->pid, NULL, WNOHANG);
		on_exit_seen(rt, in, status);
		return true;
	}
	/* Not our child (adopted): the pidfd turns readable at exit. */
	bool dead;
	if (in->pidfd >= 0) {
		struct pollfd p = {.fd = in->pidfd, .events = POLLIN};
		dead = poll(&p, 1, 0) > 0;
	} else {
		unsigned long long st;
		dead = proc_start_time(in->pid, &st) != 0 || st != in->start_time;
	}
	if (dead)
		on_exit_seen(rt, in, -1);
	return dead;
}

static void stop_inst(struct local *rt, struct inst *in)
{
	if (in->gone || (!in->want_running && in->state == INSTANCE_STOPPING))
		return;
	in->want_running = false;
	if (in->pid <= 0) {
		finish_stopped(rt, in);
		return;
	}
	hc_reset(in);
	signal_group(in, SIGTERM);
	in->term_sent = true;
	in->kill_sent = false;
	in->state = INSTANCE_STOPPING;
	in->stop_deadline = rt->now + in->spec.drain_timeout_ms;
	log_note(rt, in, "stopping: SIGTERM sent, SIGKILL in %u ms", in->spec.drain_timeout_ms);
	state_save(rt, in, true);
}

/* ---- health ---- */

static void hc_done(struct local *rt, struct inst *in, bool ok, const char *why)
{
	hc_reset(in);
	bool starting = in->state == INSTANCE_STARTING;
	uint64_t period = in->spec.health_interval_ms;
	if (starting && period > STARTING_RETRY_MS)
		period = STARTING_RETRY_MS;
	in->hc_next = rt->now + period;
	if (ok) {
		in->hc_fails = 0;
		if (in->state != INSTANCE_HEALTHY) {
			in->state = INSTANCE_HEALTHY;
			in->failed_starts = 0;
			in->healthy_since = rt->now;
			in->reason[0] = 0;
			state_save(rt, in, false);
		}
		return;
	}
	in->hc_fails++;
	set_reason(in, "health check %s: %s", in->spec.health_path, why);
	if (in->state == INSTANCE_HEALTHY && in->hc_fails >= HEALTH_FAILS) {
		in->state = INSTANCE_UNHEALTHY;
		log_note(rt, in, "unhealthy after %u failed health checks: %s", in->hc_fails, why);
		state_save(rt, in, false);
	}
}

/* One step of the health check state machine; never blocks. */
static void health_step(struct local *rt, struct inst *in)
{
	char why[96];
	if (in->hc_phase == HC_IDLE) {
		if (rt->now < in->hc_next)
			return;
		in->hc_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (in->hc_fd < 0)
			return hc_done(rt, in, false, strerror(errno));
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)in->port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->hc_deadline = rt->now + in->spec.health_timeout_ms;
		in->hc_len = 0;
		if (connect(in->hc_fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
			return hc_done(rt, in, false, strerror(errno));
		in->hc_phase = HC_CONNECTING;
	}
	if (in->hc_phase == HC_CONNECTING) {
		struct pollfd p = {.fd = in->hc_fd, .events = POLLOUT};
		if (poll(&p, 1, 0) <= 0)
			goto timeout;
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(in->hc_fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return hc_done(rt, in, false, strerror(err));
		char req[MAX_STR + 128];
		int n = snprintf(req, sizeof req,
				 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: sluice-health\r\n"
				 "Connection: close\r\n\r\n",
				 in->spec.health_path, in->port);
		/* A request this small fits in an empty socket buffer: a short send is a failure. */
		if (send(in->hc_fd, req, (size_t)n, MSG_NOSIGNAL) != n)
			return hc_done(rt, in, false, "could not send the request");
		in->hc_phase = HC_READING;
	}
	for (;;) {
		ssize_t n = recv(in->hc_fd, in->hc_resp + in->hc_len, sizeof in->hc_resp - 1 - in->hc_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			goto timeout;
		if (n < 0)
			return hc_done(rt, in, false, strerror(errno));
		in->hc_len += (size_t)n;
		in->hc_resp[in->hc_len] = 0;
		if (strstr(in->hc_resp, "\r\n") || n == 0 || in->hc_len == sizeof in->hc_resp - 1)
			break;
	}
	int minor, code;
	char sp;
	if (sscanf(in->hc_resp, "HTTP/1.%d %3d%c", &minor, &code, &sp) != 3 || sp != ' ' || code < 100)
		return hc_done(rt, in, false, in->hc_len ? "malformed status line" : "connection closed without a response");
	if (code < 200 || code > 299) {
		snprintf(why, sizeof why, "status %d", code);
		return hc_done(rt, in, false, why);
	}
	return hc_done(rt, in, true, NULL);
timeout:
	if (rt->now >= in->hc_deadline) {
		snprintf(why, sizeof why, "no response within %u ms", in->spec.health_timeout_ms);
		hc_done(rt, in, false, why);
	}
}

/* ---- logs ---- */

/* Keeps the newest half (from a line start) once a log passes the cap. Done in place because
 * the process holds the file open with O_APPEND: its next write lands at the new end. Lines it
 * writes during the copy (a few ms for 5 MiB) may be lost. */
static void log_trim(const char *path, size_t cap)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size <= cap) {
		close(fd);
		return;
	}
	off_t from = st.st_size - (off_t)(cap / 2), to = 0;
	char b[65536];
	ssize_t n = pread(fd, b, sizeof b, from);
	char *nl = n > 0 ? memchr(b, '\n', (size_t)n) : NULL;
	if (nl)
		from += nl - b + 1;
	while ((n = pread(fd, b, sizeof b, from)) > 0) {
		if (pwrite(fd, b, (size_t)n, to) != n)
			break;
		from += n;
		to += n;
	}
	if (ftruncate(fd, to) != 0) {
		/* the log stays longer than wanted; the next check retries */
	}
	close(fd);
}

/* ---- adoption ---- */

static struct inst *inst_new(struct local *rt)
{
	rt->generation++;
	if (rt->count >= MAX_INSTANCES)
		return NULL;
	struct inst *in = calloc(1, sizeof *in);
	if (!in)
		return NULL;
	in->pidfd = -1;
	in->hc_fd = -1;
	in->last_exit = -1;
	in->backoff_ms = BACKOFF_MIN_MS;
	in->next = rt->list;
	rt->list = in;
	rt->count++;
	return in;
}

static void inst_free(struct inst *in)
{
	hc_reset(in);
	if (in->pidfd >= 0)
		close(in->pidfd);
	spec_free(&in->spec);
	free(in);
}

static void inst_unlink(struct local *rt, struct inst *in)
{
	rt->generation++;
	for (struct inst **p = &rt->list; *p; p = &(*p)->next)
		if (*p == in) {
			*p = in->next;
			rt->count--;
			return;
		}
}

static int copy_name(char *dst, json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	if (!s || strlen(s) >= RUNTIME_NAME_MAX ||
	    !(strcmp(key, "version") ? name_object_ok(s) : name_label_ok(s)))
		return -1;
	strcpy(dst, s);
	return 0;
}

static int adopt_one(struct local *rt, const char *name)
{
	char path[4096];
	int r = snprintf(path, sizeof path, "%s/%s/state.json", rt->dir, name);
	if (r < 0 || (size_t)r >= sizeof path)
		return -1;
	json_error_t je;
	struct stat st;
	if (stat(path, &st) != 0)
		return -1; /* not an instance directory */
	if ((size_t)st.st_size > STATE_MAX) {
		log_warn("runtime: '%s' is larger than %u bytes; ignored", path, STATE_MAX);
		return -1;
	}
	json_t *j = json_load_file(path, 0, &je);
	if (!j) {
		log_warn("runtime: could not read '%s': %s (line %d); instance ignored", path, je.text, je.line);
		return -1;
	}
	struct inst *in = inst_new(rt);
	struct err e = {{0}};
	json_int_t idx = -1, pid = 0, port = 0, restarts = 0, last_exit = -1, deadline = 0;
	json_int_t start_time = 0;
	const char *desired = NULL, *state = NULL, *reason = "";
	if (!in) {
		json_decref(j);
		log_warn("runtime: more than %d instances; '%s' ignored", MAX_INSTANCES, path);
		return -1;
	}
	if (copy_name(in->service, j, "service") || copy_name(in->env, j, "env") ||
	    copy_name(in->region, j, "region") || copy_name(in->version, j, "release") ||
	    json_unpack(j, "{s:I, s:I, s:I, s:I, s:s, s:s, s?:I, s?:I, s?:s, s?:I}", "index", &idx, "pid", &pid,
			"start_time", &start_time, "port", &port, "desired", &desired, "state", &state, "restarts",
			&restarts, "last_exit", &last_exit, "reason", &reason, "stop_deadline_unix_ms", &deadline) ||
	    idx < 0 || idx >= MAX_COUNT || pid < 0 || pid > INT32_MAX || port < 0 || port > 65535 ||
	    restarts < 0 || restarts > UINT32_MAX || last_exit < -1 || last_exit > INT32_MAX) {
		err_set(&e, "missing or invalid fields");
		goto bad;
	}
	in->index = (int)idx;
	in->persisted = true;
	r = snprintf(in->id, sizeof in->id, "%s.%s.%s.%s.%d", in->service, in->env, in->region, in->version, in->index);
	if (r < 0 || (size_t)r >= sizeof in->id || strcmp(in->id, name) != 0) {
		err_set(&e, "the id does not match the directory name");
		goto bad;
	}
	if (spec_from_json(&in->spec, json_object_get(j, "spec"), &e))
		goto bad;
	in->port = (int)port;
	in->restarts = (unsigned)restarts;
	in->last_exit = (int)last_exit;
	in->want_running = strcmp(desired, "running") == 0;
	snprintf(in->reason, sizeof in->reason, "%s", reason);
	enum instance_state recorded = strcmp(state, "healthy") == 0     ? INSTANCE_HEALTHY
				       : strcmp(state, "unhealthy") == 0 ? INSTANCE_UNHEALTHY
									 : INSTANCE_STARTING;
	json_decref(j); /* desired, state and reason point into it */

	unsigned long long now_st;
	/* Ours are session leaders (setsid) other than init and us: a record that names anything
	 * else is wrong, and signalling its "group" could hit unrelated processes. */
	bool alive = pid > 1 && pid != getpid() && getsid((pid_t)pid) == (pid_t)pid &&
		     proc_start_time((int)pid, &now_st) == 0 && now_st == (unsigned long long)start_time;
	if (alive) {
		in->pid = (int)pid;
		in->child = false;
		in->start_time = (unsigned long long)start_time;
		in->pidfd = (int)syscall(SYS_pidfd_open, in->pid, 0);
		/* The pid could have been reused between the check and pidfd_open: check again now
		 * that the pidfd pins the process. */
		if (proc_start_time(in->pid, &now_st) != 0 || now_st != in->start_time) {
			alive = false;
			if (in->pidfd >= 0)
				close(in->pidfd);
			in->pidfd = -1;
			in->pid = 0;
		}
	}
	if (alive && in->want_running) {
		in->state = recorded;
		in->healthy_since = rt->now;
		in->hc_next = rt->now;
	} else if (alive) {
		/* A stop was under way: keep its deadline (wall clock in the file). */
		uint64_t wall = clock_ms(CLOCK_REALTIME);
		in->state = INSTANCE_STOPPING;
		in->term_sent = true;
		if (deadline > 0) {
			in->stop_deadline = (uint64_t)deadline > wall ? rt->now + ((uint64_t)deadline - wall) : rt->now;
		} else { /* stopped before SIGTERM was recorded: start the drain now */
			signal_group(in, SIGTERM);
			in->stop_deadline = rt->now + in->spec.drain_timeout_ms;
		}
	} else if (in->want_running) {
		in->state = INSTANCE_BACKOFF;
		in->next_start = rt->now;
		set_reason(in, "process %lld was gone when the runtime reopened; restarting", (long long)pid);
		log_note(rt, in, "%s", in->reason);
		state_save(rt, in, false);
	} else {
		finish_stopped(rt, in);
	}
	return 0;
bad:
	json_decref(j);
	log_warn("runtime: '%s': %s; instance ignored", path, e.msg);
	inst_unlink(rt, in);
	inst_free(in);
	return -1;
}

/* Reads /proc/PID/environ (bounded) and returns the values of SLUICE_RUNTIME_DIR and
 * SLUICE_INSTANCE, or -1 when the process is not one of ours. */
static int proc_marks(int pid, const char *real_dir, char *id, size_t idn)
{
	char path[64];
	static char b[65536]; /* one call at a time: the driver is single-threaded */
	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof b - 1 && (n = read(fd, b + len, sizeof b - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	b[len] = 0;
	bool ours = false;
	id[0] = 0;
	for (size_t i = 0; i < len; i += strlen(b + i) + 1) {
		if (!strncmp(b + i, "SLUICE_RUNTIME_DIR=", 19) && !strcmp(b + i + 19, real_dir))
			ours = true;
		else if (!strncmp(b + i, "SLUICE_INSTANCE=", 16))
			snprintf(id, idn, "%s", b + i + 16);
	}
	return ours && id[0] ? 0 : -1;
}

/* Closes the window between fork and the state file's update: a process that carries our
 * marks but is not recorded is adopted when its instance has no process, and killed (with
 * its group) otherwise, so a crash at any point leaves neither a twin nor an orphan. Only
 * session leaders count: an instance's own children inherit its environment. */
static void adopt_unrecorded(struct local *rt)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1 || pid > INT32_MAX || pid == getpid() || getsid((pid_t)pid) != pid)
			continue;
		char id[RUNTIME_LOCAL_ID_MAX];
		if (proc_marks((int)pid, rt->real_dir, id, sizeof id) != 0)
			continue;
		struct inst *in = rt->list;
		while (in && strcmp(in->id, id) != 0)
			in = in->next;
		if (in && in->pid == (int)pid)
			continue; /* recorded: adopted already */
		unsigned long long st;
		if (proc_start_time((int)pid, &st) != 0)
			continue;
		if (in && !in->gone && in->want_running && in->pid <= 0) {
			in->pid = (int)pid;
			in->child = false;
			in->start_time = st;
			in->pidfd = (int)syscall(SYS_pidfd_open, in->pid, 0);
			in->state = INSTANCE_STARTING;
			in->hc_next = rt->now;
			in->reason[0] = 0;
			log_note(rt, in, "adopted unrecorded pid %ld", pid);
			state_save(rt, in, false);
			continue;
		}
		log_warn("runtime: killing process group %ld: an unrecorded duplicate of instance '%s'", pid, id);
		kill((pid_t)-pid, SIGKILL);
	}
	closedir(d);
}

/* ---- the interface ---- */

static int mkdir_p(const char *dir)
{
	char p[4096];
	int r = snprintf(p, sizeof p, "%s", dir);
	if (r < 0 || (size_t)r >= sizeof p)
		return -1;
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Reads the region's settings ({ports: [LOW, HIGH], log_cap: BYTES}, all optional). */
static int settings_parse(struct runtime_local_settings *st, const json_t *j, struct err *e)
{
	*st = (struct runtime_local_settings){.port_lo = PORT_LO, .port_hi = PORT_HI, .log_cap = LOG_CAP_DEFAULT};
	if (!j)
		return 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)j, key, v) {
		if (!strcmp(key, "kind"))
			continue; /* the region's `runtime: {kind: local, ...}` */
		if (!strcmp(key, "ports")) {
			json_int_t lo = json_integer_value(json_array_get(v, 0)), hi = json_integer_value(json_array_get(v, 1));
			if (json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
			    !json_is_integer(json_array_get(v, 1)) || lo < 1024 || hi > 65535 || lo > hi)
				return err_set(e, "runtime local: ports must be [LOW, HIGH] within 1024-65535, low end first");
			st->port_lo = (int)lo;
			st->port_hi = (int)hi;
		} else if (!strcmp(key, "log_cap")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1024 || json_integer_value(v) > (1ll << 40))
				return err_set(e, "runtime local: log_cap must be a number of bytes, at least 1024");
			st->log_cap = (size_t)json_integer_value(v);
		} else {
			return err_set(e, "runtime local: unknown setting '%s' (known: ports, log_cap)", key);
		}
	}
	return 0;
}

static void local_close(void *drv);

static int local_open(void **out, const json_t *settings, const struct runtime_host *host, struct err *e)
{
	struct runtime_local_settings st;
	if (settings_parse(&st, settings, e))
		return -1;
	char dir[4096];
	if (!host || !host->data_dir || !*host->data_dir || strlen(host->data_dir) > 3000)
		return err_set(e, "runtime local: the data directory name is empty or too long");
	snprintf(dir, sizeof dir, "%s/instances", host->data_dir);
	if (mkdir_p(dir) != 0)
		return err_set(e, "could not create runtime directory '%s': %s", dir, strerror(errno));
	struct local *rt = calloc(1, sizeof *rt);
	if (!rt || !(rt->dir = strdup(dir)) || !(rt->real_dir = realpath(dir, NULL))) {
		if (rt)
			free(rt->dir);
		free(rt);
		return err_set(e, "out of memory");
	}
	char lock[4200];
	snprintf(lock, sizeof lock, "%s/.lock", dir);
	rt->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (rt->lock_fd < 0 || flock(rt->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		err_set(e, "runtime directory '%s' is in use by another sluice server (or not writable): %s", dir,
			strerror(errno));
		if (rt->lock_fd >= 0)
			close(rt->lock_fd);
		free(rt->dir);
		free(rt->real_dir);
		free(rt);
		return -1;
	}
	rt->now = clock_ms(CLOCK_MONOTONIC);
	rt->settings = st;
	rt->log_cap = st.log_cap;
	rt->port_lo = st.port_lo;
	rt->port_hi = st.port_hi;
	rt->port_cursor = (unsigned)getpid() * 2654435761u + (unsigned)clock_ms(CLOCK_REALTIME);
	DIR *d = opendir(dir);
	if (!d) {
		err_set(e, "could not read runtime directory '%s': %s", dir, strerror(errno));
		local_close(rt);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, "logs") != 0)
			(void)adopt_one(rt, de->d_name);
	closedir(d);
	adopt_unrecorded(rt);
	*out = rt;
	return 0;
}

static void local_close(void *drv)
{
	struct local *rt = drv;
	if (!rt)
		return;
	while (rt->list) {
		struct inst *in = rt->list;
		rt->list = in->next;
		inst_free(in);
	}
	if (rt->lock_fd >= 0)
		close(rt->lock_fd);
	free(rt->dir);
	free(rt->real_dir);
	free(rt);
}

static int local_same_settings(void *drv, const json_t *settings)
{
	struct local *rt = drv;
	struct runtime_local_settings st;
	return settings_parse(&st, settings, NULL) == 0 && st.port_lo == rt->settings.port_lo &&
	       st.port_hi == rt->settings.port_hi && st.log_cap == rt->settings.log_cap;
}

/* Ids name files: "s.e.r.v.NN" (an index of up to two digits) must fit. */
static int local_check_names(void *drv, const char *service, const char *env, const char *region,
			     const char *version, struct err *e)
{
	(void)drv;
	if (!valid_names(service, env, region, version))
		return err_set(e, "service, env, region and version must be 1-79 printable characters "
				  "without '/' or spaces, not starting with '.'");
	size_t n = strlen(service) + strlen(env) + strlen(region) + strlen(version) + 4 + 2;
	if (n >= RUNTIME_LOCAL_ID_MAX)
		return err_set(e, "instance ids of %s %s in %s/%s would be %zu bytes, at most %d (they name "
				  "files): use a shorter version name",
			       service, version, env, region, n, RUNTIME_LOCAL_ID_MAX - 1);
	return 0;
}

static struct inst *find(struct local *rt, const struct instance_spec *s, int index)
{
	for (struct inst *in = rt->list; in; in = in->next)
		if (in->index == index && !strcmp(in->service, s->service) && !strcmp(in->env, s->env) &&
		    !strcmp(in->region, s->region) && !strcmp(in->version, s->version))
			return in;
	return NULL;
}

static bool spec_equal(const struct spec_copy *a, const struct spec_copy *b)
{
	json_t *x = spec_json(a), *y = spec_json(b);
	bool eq = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

/* A new instance needs its artifact when the command line names it: refused here, before an
 * instance exists, so that the caller hears of it at once rather than through restarts. */
static bool artifact_missing(const struct instance_spec *spec, struct err *e)
{
	if (!spec->artifact || !*spec->artifact)
		return false;
	bool named = strstr(spec->command, "{artifact}") != NULL;
	for (const char *const *a = spec->args; !named && a && *a; a++)
		named = strstr(*a, "{artifact}") != NULL;
	if (!named || access(spec->artifact, F_OK) == 0)
		return false;
	err_set(e, "artifact '%s' is missing: %s", spec->artifact, strerror(errno));
	return true;
}

static int local_ensure(void *drv, const struct instance_spec *spec, unsigned count, struct err *e)
{
	struct local *rt = drv;
	if (!valid_names(spec->service, spec->env, spec->region, spec->version))
		return err_set(e, "service, env, region and version must be 1-79 printable characters "
				  "without '/' or spaces, not starting with '.'");
	if (count > MAX_COUNT)
		return err_set(e, "%u instances asked, at most %d per release and region", count, MAX_COUNT);
	struct spec_copy sc;
	if (spec_copy_from(&sc, spec, e))
		return -1;
	int rc = 0;
	for (unsigned i = 0; i < count; i++) {
		struct inst *in = find(rt, spec, (int)i);
		if (in && in->gone) {
			inst_unlink(rt, in);
			inst_free(in);
			in = NULL;
		}
		if (in) {
			bool dirty = false;
			if (!spec_equal(&in->spec, &sc)) { /* applies at the next (re)start */
				spec_free(&in->spec);
				if (spec_copy_from(&in->spec, spec, e)) {
					rc = -1;
					break;
				}
				dirty = true;
			}
			if (!in->want_running) {
				in->want_running = true; /* revived while stopping: restarted at its exit */
				dirty = true;
			}
			if (dirty)
				state_save(rt, in, true);
			continue;
		}
		if (artifact_missing(spec, e)) {
			rc = -1;
			break;
		}
		if (!(in = inst_new(rt))) {
			rc = err_set(e, "too many instances in this runtime (at most %d)", MAX_INSTANCES);
			break;
		}
		strcpy(in->service, spec->service);
		strcpy(in->env, spec->env);
		strcpy(in->region, spec->region);
		strcpy(in->version, spec->version);
		in->index = (int)i;
		int r = snprintf(in->id, sizeof in->id, "%s.%s.%s.%s.%u", spec->service, spec->env, spec->region,
				 spec->version, i);
		if (r < 0 || (size_t)r >= sizeof in->id || spec_copy_from(&in->spec, spec, e)) {
			if (r < 0 || (size_t)r >= sizeof in->id)
				err_set(e, "instance id '%s.%s.%s.%s.%u' is longer than %zu characters", spec->service,
					spec->env, spec->region, spec->version, i, sizeof in->id - 1);
			inst_unlink(rt, in);
			inst_free(in);
			rc = -1;
			break;
		}
		in->want_running = true;
		spawn(rt, in); /* a failure leaves it in BACKOFF with a reason: retried, reported */
	}
	spec_free(&sc);
	if (rc)
		return rc;
	/* Extra instances, highest index first. */
	for (;;) {
		struct inst *hi = NULL;
		for (struct inst *in = rt->list; in; in = in->next)
			if (in->want_running && !in->gone && in->index >= (int)count && !strcmp(in->service, spec->service) &&
			    !strcmp(in->env, spec->env) && !strcmp(in->region, spec->region) &&
			    !strcmp(in->version, spec->version) && (!hi || in->index > hi->index))
				hi = in;
		if (!hi)
			break;
		stop_inst(rt, hi);
	}
	return 0;
}

static int local_stop(void *drv, const char *service, const char *env, const char *region, const char *version)
{
	struct local *rt = drv;
	for (struct inst *in = rt->list; in; in = in->next)
		if (match(service, in->service) && match(env, in->env) && match(region, in->region) &&
		    match(version, in->version))
			stop_inst(rt, in);
	return 0;
}

static void local_stop_all(void *drv)
{
	struct local *rt = drv;
	for (struct inst *in = rt->list; in; in = in->next)
		stop_inst(rt, in);
}

static uint64_t local_generation(const void *drv)
{
	return ((const struct local *)drv)->generation;
}

static void local_tick(void *drv, uint64_t now_ms)
{
	struct local *rt = drv;
	rt->now = now_ms;
	/* A tick every 50 ms over thousands of instances: one waitid for all children rather
	 * than one per instance (bench/footprint). */
	bool child_exits = some_child_exited();
	for (struct inst *in = rt->list; in; in = in->next) {
		if (in->gone)
			continue;
		if (in->pid > 0 && check_exit(rt, in, child_exits) && in->gone)
			continue;
		if (in->state == INSTANCE_BACKOFF && in->want_running && now_ms >= in->next_start) {
			in->restarts++;
			in->failed_starts++;
			spawn(rt, in);
		}
		if (in->pid <= 0)
			continue;
		if (in->state == INSTANCE_STOPPING) {
			if (!in->kill_sent && now_ms >= in->stop_deadline) {
				signal_group(in, SIGKILL);
				in->kill_sent = true;
				log_note(rt, in, "drain deadline passed: SIGKILL sent");
			}
			continue;
		}
		health_step(rt, in);
		if (in->state == INSTANCE_HEALTHY && now_ms - in->healthy_since >= BACKOFF_RESET_MS)
			in->backoff_ms = BACKOFF_MIN_MS;
	}
	if (now_ms >= rt->next_log_check) {
		rt->next_log_check = now_ms + LOG_CHECK_MS;
		char p[4096];
		for (struct inst *in = rt->list; in; in = in->next)
			if (!in->gone && path_of(rt, in, "log", p, sizeof p) == 0)
				log_trim(p, rt->log_cap);
	}
}

static void fill_info(struct instance_info *o, const struct inst *in)
{
	memset(o, 0, sizeof *o);
	memcpy(o->id, in->id, sizeof in->id);
	memcpy(o->service, in->service, sizeof o->service);
	memcpy(o->env, in->env, sizeof o->env);
	memcpy(o->region, in->region, sizeof o->region);
	memcpy(o->version, in->version, sizeof o->version);
	o->index = in->index;
	if (in->pid > 0 && in->port > 0)
		snprintf(o->endpoint, sizeof o->endpoint, "127.0.0.1:%d", in->port);
	if (in->pid > 0)
		snprintf(o->detail, sizeof o->detail, "pid %d", in->pid);
	o->state = in->state;
	o->restarts = in->restarts;
	o->failed_starts = in->failed_starts;
	memcpy(o->reason, in->reason, sizeof o->reason);
}

/* Stable order for people and tests: by release, then by index (so 2 comes before 10). */
static int cmp_info(const void *pa, const void *pb)
{
	const struct instance_info *a = pa, *b = pb;
	int c = strcmp(a->service, b->service);
	if (!c)
		c = strcmp(a->env, b->env);
	if (!c)
		c = strcmp(a->region, b->region);
	if (!c)
		c = strcmp(a->version, b->version);
	return c ? c : (a->index > b->index) - (a->index < b->index);
}

static int local_list(void *drv, const char *service, const char *env, const char *region, const char *version,
		      struct instance_info **out, size_t *n)
{
	struct local *rt = drv;
	size_t k = 0;
	*out = NULL;
	*n = 0;
	for (struct inst *in = rt->list; in; in = in->next)
		if (match(service, in->service) && match(env, in->env) && match(region, in->region) &&
		    match(version, in->version))
			k++;
	if (!k)
		return 0;
	struct instance_info *v = calloc(k, sizeof *v);
	if (!v)
		return -1;
	size_t i = 0;
	for (struct inst **p = &rt->list; *p;) {
		struct inst *in = *p;
		if (match(service, in->service) && match(env, in->env) && match(region, in->region) &&
		    match(version, in->version)) {
			fill_info(&v[i++], in);
			if (in->gone) { /* listed once as STOPPED: forget it now */
				*p = in->next;
				rt->count--;
				inst_free(in);
				continue;
			}
		}
		p = &in->next;
	}
	qsort(v, i, sizeof *v, cmp_info);
	*out = v;
	*n = i;
	return 0;
}

static int cmp_inst(const void *a, const void *b)
{
	return strcmp((*(struct inst *const *)a)->id, (*(struct inst *const *)b)->id);
}

/* Appends the newest lines of one log that fit in `budget` bytes, each prefixed "[id] ". */
static int tail_one(const char *path, const char *id, size_t budget, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no output yet */
	struct stat st;
	size_t want = budget;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return 0;
	}
	off_t from = (size_t)st.st_size > want ? st.st_size - (off_t)want : 0;
	char *b = malloc(want + 1);
	if (!b) {
		close(fd);
		return -1;
	}
	ssize_t n = pread(fd, b, want, from);
	close(fd);
	if (n <= 0) {
		free(b);
		return 0;
	}
	size_t len = (size_t)n, start = 0;
	if (from > 0) { /* drop the partial first line */
		char *nl = memchr(b, '\n', len);
		start = nl ? (size_t)(nl - b) + 1 : len;
	}
	/* Walk back from the end while the prefixed lines still fit. */
	size_t pre = strlen(id) + 3, used = 0, first = len;
	size_t end = len;
	while (end > start) {
		size_t ls = end - 1; /* skip this line's '\n' (or last char) */
		while (ls > start && b[ls - 1] != '\n')
			ls--;
		size_t cost = pre + (end - ls) + (b[end - 1] == '\n' ? 0 : 1);
		if (used + cost > budget)
			break;
		used += cost;
		first = ls;
		end = ls;
	}
	int rc = 0;
	for (size_t p = first; p < len && rc == 0;) {
		char *nl = memchr(b + p, '\n', len - p);
		size_t l = nl ? (size_t)(nl - (b + p)) : len - p;
		rc = buf_addf(out, "[%s] %.*s\n", id, (int)l, b + p);
		p += l + 1;
	}
	free(b);
	return rc;
}

/* Whether a kept log's name "service.env.region.version.index.log" matches the filters.
 * Service, env and region names contain no dots (manifest names are [a-z0-9-]). */
static bool kept_matches(const char *name, const char *service, const char *env, const char *region)
{
	const char *f[3] = {service, env, region}, *p = name;
	for (int i = 0; i < 3; i++) {
		const char *dot = strchr(p, '.');
		if (!dot)
			return false;
		if (f[i] && (strlen(f[i]) != (size_t)(dot - p) || strncmp(p, f[i], (size_t)(dot - p)) != 0))
			return false;
		p = dot + 1;
	}
	size_t n = strlen(name);
	return n > 4 && !strcmp(name + n - 4, ".log");
}

static bool id_is_live(const struct local *rt, const char *name)
{
	for (const struct inst *in = rt->list; in; in = in->next)
		if (!in->gone && strlen(in->id) + 4 == strlen(name) && !strncmp(in->id, name, strlen(in->id)))
			return true;
	return false;
}

/* The newest KEPT_SHOWN logs of stopped instances that match, oldest first, so that the output
 * tells why a rolled-back release failed even after its instances stopped. */
#define KEPT_SHOWN 8
static size_t kept_select(struct local *rt, const char *service, const char *env, const char *region,
			  struct kept *out)
{
	char logs[4096];
	snprintf(logs, sizeof logs, "%s/logs", rt->dir);
	DIR *d = opendir(logs);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof out->name ||
		    !kept_matches(de->d_name, service, env, region) || id_is_live(rt, de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		size_t at = n;
		if (n == KEPT_SHOWN) { /* full: replace the oldest if this one is newer */
			at = 0;
			for (size_t i = 1; i < n; i++)
				if (out[i].mtime < out[at].mtime)
					at = i;
			if (out[at].mtime >= st.st_mtime)
				continue;
		} else {
			n++;
		}
		strcpy(out[at].name, de->d_name);
		out[at].mtime = st.st_mtime;
	}
	closedir(d);
	qsort(out, n, sizeof *out, cmp_kept);
	return n;
}

static int local_logs(void *drv, const char *service, const char *env, const char *region, size_t max_bytes,
		      struct buf *out)
{
	struct local *rt = drv;
	struct inst *sel[MAX_INSTANCES];
	struct kept kept[KEPT_SHOWN];
	size_t k = 0;
	for (struct inst *in = rt->list; in && k < MAX_INSTANCES; in = in->next)
		if (!in->gone && match(service, in->service) && match(env, in->env) && match(region, in->region))
			sel[k++] = in;
	size_t nk = kept_select(rt, service, env, region, kept);
	if (!k && !nk)
		return 0;
	qsort(sel, k, sizeof *sel, cmp_inst);
	size_t budget = max_bytes / (k + nk);
	char p[4096], label[RUNTIME_LOCAL_ID_MAX + 16];
	for (size_t i = 0; i < nk; i++) {
		int r = snprintf(p, sizeof p, "%s/logs/%s", rt->dir, kept[i].name);
		snprintf(label, sizeof label, "%.*s stopped", (int)strlen(kept[i].name) - 4, kept[i].name);
		if (r > 0 && (size_t)r < sizeof p && tail_one(p, label, budget, out) != 0)
			return -1;
	}
	for (size_t i = 0; i < k; i++)
		if (path_of(rt, sel[i], "log", p, sizeof p) == 0 && tail_one(p, sel[i]->id, budget, out) != 0)
			return -1;
	return 0;
}

int runtime_local_proc(runtime *r, const char *id, struct runtime_local_proc *out)
{
	if (!r || strcmp(runtime_kind(r), "local") != 0)
		return -1;
	const struct local *rt = runtime_driver(r);
	for (const struct inst *in = rt->list; in; in = in->next)
		if (!strcmp(in->id, id)) {
			*out = (struct runtime_local_proc){.pid = in->pid, .port = in->port, .last_exit = in->last_exit};
			return 0;
		}
	return -1;
}

const struct runtime_ops runtime_local_ops = {
	.kind = "local",
	.open = local_open,
	.close = local_close,
	.same_settings = local_same_settings,
	.check_names = local_check_names,
	.ensure = local_ensure,
	.stop = local_stop,
	.stop_all = local_stop_all,
	.tick = local_tick,
	.generation = local_generation,
	.list = local_list,
	.logs = local_logs,
};
