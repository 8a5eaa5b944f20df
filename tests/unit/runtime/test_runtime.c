/*
 * Tests of what only the local runtime driver does, with real processes
 * (tests/unit/runtime/testsrv.c) on 127.0.0.1: pids, process groups and signals, ports, the
 * backoff clock, state files and adoption by /proc, log files. What every driver must do is in
 * the conformance suite (conformance.c, run for the local driver by test_conformance_local.c).
 * Every test runs in its own temporary data directory; the fixture kills the process group of
 * every pid recorded there, even when the test fails.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime_local.h"

static char root[128]; /* the server's DATA */
static char dir[160];  /* the local driver's directory, DATA/instances */
static runtime *rt;
static uint64_t skew;   /* added to the clock the runtime sees, to test long durations */
static uint64_t frozen; /* when set, the clock the runtime sees stands still at this time */

/* Waits are generous: CI runs this under ASan beside other tests on two shared cores, where an
 * instance can take seconds to start. What a test proves rests on lower bounds and on the
 * runtime's own notes, never on something happening within a short time. */
enum { START_MS = 15000, EXIT_MS = 5000 };

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether pid is an instance started from this test's runtime directory: a session leader
 * whose environment carries SLUICE_RUNTIME_DIR=<dir>. The fixture signals nothing else: a
 * state file can say anything, and kill(-1) would hit every process on the machine. */
static bool ours(int pid)
{
	if (pid <= 1 || pid == getpid() || getsid(pid) != pid)
		return false;
	char p[64], real[PATH_MAX], want[PATH_MAX + 32];
	if (!realpath(dir, real))
		return false;
	snprintf(want, sizeof want, "SLUICE_RUNTIME_DIR=%s", real);
	snprintf(p, sizeof p, "/proc/%d/environ", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return false;
	static char b[65536];
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = 0;
	for (size_t i = 0; i < n; i += strlen(b + i) + 1)
		if (!strcmp(b + i, want))
			return true;
	return false;
}

/* kill -9 of one instance "by hand", refusing anything that is not one of ours. */
static void kill_instance(int pid)
{
	cr_assert(ours(pid), "pid %d is not an instance of this test", pid);
	cr_assert_eq(kill(pid, SIGKILL), 0);
}

static void kill_recorded(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[512];
		snprintf(p, sizeof p, "%s/%s/state.json", dir, de->d_name);
		json_t *j = json_load_file(p, 0, NULL);
		json_int_t pid = json_integer_value(json_object_get(j, "pid"));
		if (pid > 1 && pid < INT32_MAX && ours((int)pid))
			kill(-(pid_t)pid, SIGKILL);
		json_decref(j);
	}
	closedir(d);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	remove(p);
	return 0;
}

static int open_local(runtime **out, const char *settings, struct err *e)
{
	struct runtime_host host = {.data_dir = root};
	json_t *j = settings ? json_loads(settings, 0, NULL) : NULL;
	int rc = runtime_open(out, "local", j, &host, e);
	json_decref(j);
	return rc;
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/sluice-rt-test-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(dir, sizeof dir, "%s/instances", root);
	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
	if (rt) {
		struct instance_info *v;
		size_t n;
		struct runtime_local_proc p;
		if (runtime_list(rt, NULL, NULL, NULL, NULL, &v, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				if (runtime_local_proc(rt, v[i].id, &p) == 0 && ours(p.pid))
					kill(-p.pid, SIGKILL);
			free(v);
		}
		runtime_close(rt);
		rt = NULL;
	}
	kill_recorded();
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(runtime, .init = setup, .fini = teardown, .timeout = 90);

static const char *no_args[] = {NULL};
static const char *env_vars[] = {"GREETING=hi-{service}-{index}", NULL};

static struct instance_spec spec_of(const char *version, const char *const *args)
{
	const char *srv = getenv("RT_TESTSRV");
	cr_assert_not_null(srv, "RT_TESTSRV must name the test server binary");
	return (struct instance_spec){.service = "svc", .env = "test", .region = "r1", .version = version,
				      .artifact = srv, .command = "{artifact}", .args = args ? args : no_args,
				      .env_vars = env_vars, .health_path = "/healthz", .health_interval_ms = 100,
				      .health_timeout_ms = 500, .drain_timeout_ms = 2000};
}

/* An instance as the interface lists it, with what the local driver alone knows. */
struct li {
	char id[RUNTIME_ID_MAX];
	int index;
	char endpoint[RUNTIME_ENDPOINT_MAX];
	enum instance_state state;
	unsigned restarts;
	char reason[128];
	int pid, port, last_exit;
};

/* Snapshot of one release's instances, sorted by index. */
static size_t list_of(const char *version, struct li *out, size_t max)
{
	struct instance_info *v;
	size_t n;
	cr_assert_eq(runtime_list(rt, NULL, NULL, NULL, version, &v, &n), 0);
	size_t k = 0;
	for (size_t i = 0; i < n && k < max; i++) {
		struct li *o = &out[k++];
		memset(o, 0, sizeof *o);
		snprintf(o->id, sizeof o->id, "%s", v[i].id);
		snprintf(o->endpoint, sizeof o->endpoint, "%s", v[i].endpoint);
		snprintf(o->reason, sizeof o->reason, "%s", v[i].reason);
		o->index = v[i].index;
		o->state = v[i].state;
		o->restarts = v[i].restarts;
		struct runtime_local_proc p = {0, 0, -1};
		if (v[i].state != INSTANCE_STOPPED)
			cr_assert_eq(runtime_local_proc(rt, v[i].id, &p), 0, "%s", v[i].id);
		o->pid = p.pid;
		o->port = p.port;
		o->last_exit = p.last_exit;
	}
	free(v);
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && out[j].index < out[j - 1].index; j--) {
			struct li t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return k;
}

static uint64_t runtime_clock(void)
{
	return frozen ? frozen : now_ms() + skew;
}

static size_t count_state(const char *version, enum instance_state s)
{
	struct li v[16];
	size_t n = list_of(version, v, 16), k = 0;
	for (size_t i = 0; i < n; i++)
		k += v[i].state == s;
	return k;
}

/* Ticks like the server would until pred holds or ms pass. */
static bool tick_until(bool (*pred)(const void *), const void *arg, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	for (;;) {
		runtime_tick(rt, runtime_clock());
		if (pred(arg))
			return true;
		if (now_ms() >= end)
			return false;
		usleep(10000);
	}
}

static void tick_for(unsigned ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end) {
		runtime_tick(rt, runtime_clock());
		usleep(10000);
	}
}

struct want {
	const char *version;
	enum instance_state state;
	size_t n;
};

static bool have_state(const void *arg)
{
	const struct want *w = arg;
	return count_state(w->version, w->state) == w->n;
}

/* A process is gone when /proc has no entry for it or it is a zombie. */
static bool proc_gone(int pid)
{
	char p[64], b[512];
	snprintf(p, sizeof p, "/proc/%d/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return true;
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = 0;
	char *r = strrchr(b, ')');
	return !r || r[2] == 'Z';
}

static void ensure(const struct instance_spec *s, unsigned n)
{
	struct err e;
	cr_assert_eq(runtime_ensure(rt, s, n, &e), 0, "%s", e.msg);
}

static int http_get(int port, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	char req[256], resp[256] = "";
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	int code = -1;
	if (write(fd, req, (size_t)n) == n && read(fd, resp, sizeof resp - 1) > 0)
		sscanf(resp, "HTTP/1.1 %d", &code);
	close(fd);
	return code;
}

Test(runtime, instances_are_processes_in_their_own_sessions_on_distinct_ports)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 3);
	struct want w = {"v1", INSTANCE_HEALTHY, 3};
	cr_assert(tick_until(have_state, &w, START_MS), "3 instances did not become healthy");
	struct li a[8];
	cr_assert_eq(list_of("v1", a, 8), 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(a[i].pid, 0);
		cr_assert_eq(getsid(a[i].pid), a[i].pid, "instance is not in its own session");
		cr_assert(a[i].port >= 20000 && a[i].port <= 26999, "port %d", a[i].port);
		char endpoint[64];
		snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", a[i].port);
		cr_assert_str_eq(a[i].endpoint, endpoint);
		cr_assert_eq(http_get(a[i].port, "/"), 200);
		for (int j = 0; j < i; j++) {
			cr_assert_neq(a[i].port, a[j].port);
			cr_assert_neq(a[i].pid, a[j].pid);
		}
	}
	/* The detail people see names the process. */
	struct instance_info *v;
	size_t n;
	char want[32];
	cr_assert_eq(runtime_list(rt, "svc", "test", "r1", "v1", &v, &n), 0);
	cr_assert_eq(n, 3);
	snprintf(want, sizeof want, "pid %d", a[1].pid);
	cr_assert_str_eq(v[1].detail, want);
	free(v);
}

static bool restarted(const void *arg)
{
	const int *old = arg;
	struct li v[2];
	return list_of("v1", v, 2) == 1 && v[0].pid > 0 && v[0].pid != *old && v[0].state == INSTANCE_HEALTHY;
}

/* kill -9 of v1's only instance, then ticks until the runtime shows it in backoff, with the
 * runtime's clock standing still so that the backoff cannot run out before it is seen, however
 * slowly this process is scheduled. Leaves v1's listing in out. */
static void kill_and_see_backoff(int pid, struct li out[2])
{
	frozen = now_ms() + skew;
	kill_instance(pid);
	struct want w = {"v1", INSTANCE_BACKOFF, 1};
	cr_assert(tick_until(have_state, &w, EXIT_MS), "the killed instance was not seen to exit");
	frozen = 0;
	list_of("v1", out, 2);
}

Test(runtime, killed_instance_is_restarted_with_backoff)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2], b[2];
	list_of("v1", a, 2);
	uint64_t t0 = now_ms();
	kill_and_see_backoff(a[0].pid, b);
	cr_assert_str_eq(b[0].reason, "killed by signal 9 (Killed); restarting in 500 ms");
	cr_assert(WIFSIGNALED(b[0].last_exit) && WTERMSIG(b[0].last_exit) == SIGKILL);
	cr_assert(tick_until(restarted, &a[0].pid, START_MS));
	cr_assert_geq(now_ms() - t0, 450, "restarted before the backoff");
	list_of("v1", b, 2);
	cr_assert_eq(b[0].restarts, 1);
	cr_assert_eq(b[0].port, a[0].port, "the port should survive a restart");
	cr_assert(proc_gone(a[0].pid));
}

static bool restarts_at_least(const void *arg)
{
	struct li v[2];
	return list_of("bad", v, 2) == 1 && v[0].restarts >= *(const unsigned *)arg &&
	       v[0].state == INSTANCE_BACKOFF;
}

Test(runtime, crash_at_start_stays_in_backoff_with_reason)
{
	static const char *args[] = {"--crash-at-start", NULL};
	struct instance_spec s = spec_of("bad", args);
	ensure(&s, 1);
	uint64_t t0 = now_ms();
	unsigned two = 2;
	cr_assert(tick_until(restarts_at_least, &two, START_MS));
	/* Starts at 0, 0.5 and 1.5 s; the next one waits until 3.5 s: the backoff doubles. */
	uint64_t el = now_ms() - t0;
	cr_assert_geq(el, 1400);
	tick_for(2500 - (unsigned)(now_ms() - t0 < 2500 ? now_ms() - t0 : 2500));
	struct li v[2];
	cr_assert_eq(list_of("bad", v, 2), 1);
	cr_assert_eq(v[0].state, INSTANCE_BACKOFF);
	cr_assert_eq(v[0].restarts, 2);
	cr_assert(WIFEXITED(v[0].last_exit) && WEXITSTATUS(v[0].last_exit) == 3);
	cr_assert(strstr(v[0].reason, "exited with status 3 before becoming healthy"), "%s", v[0].reason);
	cr_assert(strstr(v[0].reason, "restarting in 2000 ms"), "%s", v[0].reason);
}

Test(runtime, stop_sends_term_then_kill_to_the_group_and_keeps_the_log)
{
	static const char *stubborn[] = {"--ignore-term", "--spawn-child", NULL};
	struct instance_spec s1 = spec_of("v1", NULL), s2 = spec_of("v2", stubborn);
	s2.drain_timeout_ms = 1000;
	ensure(&s1, 1);
	ensure(&s2, 1);
	struct want w1 = {"v1", INSTANCE_HEALTHY, 1}, w2 = {"v2", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w1, START_MS));
	cr_assert(tick_until(have_state, &w2, START_MS));
	struct li a[2], b[2];
	list_of("v1", a, 2);
	list_of("v2", b, 2);

	/* The helper's own child: it must go with the group. */
	char lp[512], line[512];
	int child = 0;
	snprintf(lp, sizeof lp, "%s/%s/log", dir, b[0].id);
	FILE *f = fopen(lp, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof line, f))
		sscanf(line, "child pid %d", &child);
	fclose(f);
	cr_assert_gt(child, 0);

	uint64_t t0 = now_ms();
	cr_assert_eq(runtime_stop(rt, "svc", "test", "r1", "v1"), 0);
	w1.state = INSTANCE_STOPPED;
	cr_assert(tick_until(have_state, &w1, EXIT_MS));
	cr_assert(proc_gone(a[0].pid));
	snprintf(lp, sizeof lp, "%s/logs/%s.log", dir, a[0].id);
	f = fopen(lp, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof line, f))
		cr_assert(!strstr(line, "SIGKILL sent"), "a process that obeys SIGTERM was killed: %s", line);
	fclose(f);

	t0 = now_ms();
	cr_assert_eq(runtime_stop(rt, "svc", "test", "r1", "v2"), 0);
	runtime_stop(rt, "svc", "test", "r1", "v2"); /* idempotent: no new deadline */
	tick_for(200);
	cr_assert_eq(count_state("v2", INSTANCE_STOPPING), 1);
	cr_assert(!proc_gone(b[0].pid), "SIGKILL came before the drain deadline");
	w2.state = INSTANCE_STOPPED;
	cr_assert(tick_until(have_state, &w2, 1000 + EXIT_MS));
	cr_assert_geq(now_ms() - t0, 990);
	cr_assert(proc_gone(b[0].pid));
	tick_for(50);
	cr_assert(proc_gone(child), "the instance's child survived the stop");

	/* The directory is gone; the log is kept with our notes. */
	struct stat st;
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, b[0].id);
	cr_assert_neq(stat(p, &st), 0);
	snprintf(p, sizeof p, "%s/logs/%s.log", dir, b[0].id);
	f = fopen(p, "r");
	cr_assert_not_null(f);
	bool term = false, killed = false;
	while (fgets(line, sizeof line, f)) {
		term |= strstr(line, "SIGTERM sent") != NULL;
		killed |= strstr(line, "SIGKILL sent") != NULL;
	}
	fclose(f);
	cr_assert(term && killed);

	/* runtime_logs still shows the stopped instances' last lines, marked as such. */
	struct buf out;
	buf_init(&out, 1 << 20);
	cr_assert_eq(runtime_logs(rt, "svc", "test", "r1", 1 << 16, &out), 0);
	snprintf(line, sizeof line, "[%s stopped] --- sluice ", b[0].id);
	cr_assert(strstr(out.data, line), "%s", out.data);
	cr_assert(strstr(out.data, "drain deadline passed: SIGKILL sent\n"), "%s", out.data);
	buf_reset(&out);
	cr_assert_eq(runtime_logs(rt, "svc", "other-env", NULL, 1 << 16, &out), 0);
	cr_assert_eq(out.len, 0);
	buf_release(&out);
}

Test(runtime, reopen_adopts_running_instances_without_duplicates)
{
	/* A child process plays the first server: starts 2 instances, then is killed with -9. */
	runtime_close(rt);
	rt = NULL;
	pid_t srv = fork();
	cr_assert_geq(srv, 0);
	if (srv == 0) {
		struct err e;
		if (open_local(&rt, NULL, &e) != 0)
			_exit(1);
		struct instance_spec s = spec_of("v1", NULL);
		if (runtime_ensure(rt, &s, 2, &e) != 0)
			_exit(1);
		struct want w = {"v1", INSTANCE_HEALTHY, 2};
		if (!tick_until(have_state, &w, START_MS))
			_exit(1);
		raise(SIGKILL);
	}
	int st;
	cr_assert_eq(waitpid(srv, &st, 0), srv);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the first server could not start its instances");

	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
	struct li a[4], b[4];
	cr_assert_eq(list_of("v1", a, 4), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_gt(a[i].pid, 0);
		cr_assert(!proc_gone(a[i].pid));
		cr_assert_eq(a[i].state, INSTANCE_HEALTHY);
		cr_assert_eq(getsid(a[i].pid), a[i].pid);
	}
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 2);
	tick_for(300);
	cr_assert_eq(list_of("v1", b, 4), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(b[i].pid, a[i].pid, "adoption started a duplicate");
		cr_assert_eq(b[i].state, INSTANCE_HEALTHY);
		cr_assert_eq(b[i].restarts, 0);
	}

	/* An adopted process is not our child: its exit is still seen (pidfd) and it restarts. */
	frozen = now_ms();
	kill_instance(a[1].pid);
	struct want w = {"v1", INSTANCE_BACKOFF, 1};
	cr_assert(tick_until(have_state, &w, EXIT_MS));
	frozen = 0;
	list_of("v1", b, 4);
	cr_assert(strstr(b[1].reason, "status unknown"), "%s", b[1].reason);
	w.state = INSTANCE_HEALTHY;
	w.n = 2;
	cr_assert(tick_until(have_state, &w, START_MS));
	list_of("v1", b, 4);
	cr_assert_eq(b[0].pid, a[0].pid);
	cr_assert_neq(b[1].pid, a[1].pid);
	cr_assert_eq(b[1].restarts, 1);

	/* A second server on the same directory is refused. */
	runtime *other;
	cr_assert_eq(open_local(&other, NULL, &e), -1);
	cr_assert(strstr(e.msg, "in use"), "%s", e.msg);
}

Test(runtime, dead_recorded_pid_is_restarted_after_reopen)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2], b[2];
	list_of("v1", a, 2);
	runtime_close(rt);
	rt = NULL;
	kill_instance(a[0].pid);
	cr_assert_eq(waitpid(a[0].pid, NULL, 0), a[0].pid);
	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(list_of("v1", b, 2), 1);
	cr_assert_eq(b[0].state, INSTANCE_BACKOFF);
	cr_assert(strstr(b[0].reason, "gone when the runtime reopened"), "%s", b[0].reason);
	cr_assert(tick_until(restarted, &a[0].pid, START_MS));
	list_of("v1", b, 2);
	cr_assert_eq(b[0].restarts, 1);
}

Test(runtime, stop_deadline_survives_reopen)
{
	static const char *stubborn[] = {"--ignore-term", NULL};
	struct instance_spec s = spec_of("v1", stubborn);
	s.drain_timeout_ms = 600;
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2];
	list_of("v1", a, 2);
	uint64_t t0 = now_ms();
	runtime_stop_all(rt);
	runtime_close(rt);
	rt = NULL;
	/* The server is away past the deadline: the first tick after it is back must kill. */
	usleep(700000);
	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(count_state("v1", INSTANCE_STOPPING), 1);
	runtime_tick(rt, runtime_clock());
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(runtime_logs(rt, "svc", NULL, NULL, 1 << 16, &b), 0);
	cr_assert(strstr(b.data, "drain deadline passed: SIGKILL sent"), "the deadline was lost: %s", b.data);
	buf_release(&b);
	w.state = INSTANCE_STOPPED;
	cr_assert(tick_until(have_state, &w, EXIT_MS));
	cr_assert_geq(now_ms() - t0, 700);
	cr_assert(proc_gone(a[0].pid));
}

Test(runtime, logs_show_substitutions_port_and_pid)
{
	static const char *args[] = {"--name={service}-{index}-{env}-{region}-{version}", "--port={port}", NULL};
	struct instance_spec s = spec_of("v1", args);
	ensure(&s, 2);
	struct want w = {"v1", INSTANCE_HEALTHY, 2};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2];
	list_of("v1", a, 2);
	struct buf b;
	buf_init(&b, 1 << 20);
	cr_assert_eq(runtime_logs(rt, "svc", NULL, NULL, 1 << 16, &b), 0);
	char want[256];
	snprintf(want, sizeof want, "[svc.test.r1.v1.1] argv: --name=svc-1-test-r1-v1 --port=%d\n", a[1].port);
	cr_assert(strstr(b.data, want), "%s", b.data);
	snprintf(want, sizeof want, "[svc.test.r1.v1.0] listening on %d pid %d instance svc.test.r1.v1.0\n",
		 a[0].port, a[0].pid);
	cr_assert(strstr(b.data, want), "%s", b.data);
	cr_assert(strstr(b.data, "[svc.test.r1.v1.0] request GET /healthz\n"));
	/* (prefixes and the byte budget: the conformance suite) */
	buf_release(&b);
}

Test(runtime, log_is_cut_to_its_newest_half_past_the_cap)
{
	static const char *args[] = {"--spam", "200", NULL};
	struct instance_spec s = spec_of("v1", args);
	runtime_close(rt);
	rt = NULL;
	struct err e;
	cr_assert_eq(open_local(&rt, "{\"log_cap\": 8192}", &e), 0, "%s", e.msg);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	tick_for(1100);
	struct li a[2];
	list_of("v1", a, 2);
	char p[512];
	snprintf(p, sizeof p, "%s/%s/log", dir, a[0].id);
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_leq(st.st_size, 8192 + 2048, "log is %lld bytes", (long long)st.st_size);
	FILE *f = fopen(p, "r");
	char line[256];
	cr_assert_not_null(fgets(line, sizeof line, f));
	fclose(f);
	cr_assert(!strncmp(line, "line ", 5) || !strncmp(line, "request ", 8) || !strncmp(line, "---", 3) ||
		  !strncmp(line, "listening", 9), "cut in the middle of a line: %s", line);
}

Test(runtime, failing_health_checks_make_it_unhealthy)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2];
	list_of("v1", a, 2);
	cr_assert_eq(http_get(a[0].port, "/sick"), 200);
	uint64_t t0 = now_ms();
	w.state = INSTANCE_UNHEALTHY;
	cr_assert(tick_until(have_state, &w, START_MS));
	cr_assert_geq(now_ms() - t0, 150, "unhealthy after fewer than 3 failures");
	list_of("v1", a, 2);
	cr_assert_str_eq(a[0].reason, "health check /healthz: status 503");
	cr_assert_eq(http_get(a[0].port, "/well"), 200);
	w.state = INSTANCE_HEALTHY;
	cr_assert(tick_until(have_state, &w, START_MS), "did not recover after the health check passed");
	list_of("v1", a, 2);
	cr_assert_eq(a[0].restarts, 0, "an unhealthy instance is not restarted by the driver");
}

Test(runtime, health_check_without_answer_times_out)
{
	struct instance_spec s = spec_of("v1", NULL);
	s.health_timeout_ms = 200;
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2];
	list_of("v1", a, 2);
	cr_assert_eq(http_get(a[0].port, "/hang"), 200);
	uint64_t t0 = now_ms();
	w.state = INSTANCE_UNHEALTHY;
	cr_assert(tick_until(have_state, &w, START_MS));
	/* Three checks that each wait the full timeout. */
	cr_assert_geq(now_ms() - t0, 3 * 200 + 100);
	list_of("v1", a, 2);
	cr_assert_str_eq(a[0].reason, "health check /healthz: no response within 200 ms");
}

Test(runtime, backoff_doubles_and_resets_after_a_minute_healthy)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	static const char *const delays[] = {"500", "1000"};
	struct li a[2];
	for (int i = 0; i < 2; i++) {
		list_of("v1", a, 2);
		kill_and_see_backoff(a[0].pid, a);
		char want[64];
		snprintf(want, sizeof want, "restarting in %s ms", delays[i]);
		cr_assert(strstr(a[0].reason, want), "%s", a[0].reason);
		w.state = INSTANCE_HEALTHY;
		cr_assert(tick_until(have_state, &w, START_MS));
	}
	/* A minute of health later (the runtime's clock is skewed), the next delay is 500 ms again. */
	skew = 61000;
	tick_for(100);
	skew = 122000;
	tick_for(100);
	list_of("v1", a, 2);
	cr_assert_eq(a[0].state, INSTANCE_HEALTHY);
	kill_and_see_backoff(a[0].pid, a);
	cr_assert(strstr(a[0].reason, "restarting in 500 ms"), "%s", a[0].reason);
	cr_assert_eq(a[0].restarts, 2);
}

Test(runtime, bad_specs_are_refused_and_exec_failures_reported)
{
	struct instance_spec s = spec_of("v1", NULL);
	struct err e;
	s.service = "a/b";
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	cr_assert(strstr(e.msg, "service, env, region and version"), "%s", e.msg);
	s = spec_of("v1", NULL);
	s.health_path = "healthz";
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	cr_assert(strstr(e.msg, "must start with '/'"), "%s", e.msg);
	s = spec_of("v1", NULL);
	cr_assert_eq(runtime_ensure(rt, &s, 5000, &e), -1);
	s.command = "/nonexistent/program";
	ensure(&s, 1);
	struct li a[2];
	cr_assert_eq(list_of("v1", a, 2), 1);
	cr_assert_eq(a[0].state, INSTANCE_BACKOFF);
	cr_assert_eq(a[0].pid, 0);
	cr_assert_str_eq(a[0].reason, "could not run '/nonexistent/program': No such file or directory");
	cr_assert_str_eq(runtime_state_name(INSTANCE_BACKOFF), "backoff");
}

Test(runtime, unrecorded_process_is_adopted_and_a_twin_is_killed)
{
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct li a[2], b[2];
	list_of("v1", a, 2);
	runtime_close(rt);
	rt = NULL;

	/* The server died between fork and recording the pid: the file says pid 0. */
	char p[512];
	snprintf(p, sizeof p, "%s/%s/state.json", dir, a[0].id);
	json_t *j = json_load_file(p, 0, NULL);
	cr_assert_not_null(j);
	json_object_set_new(j, "pid", json_integer(0));
	json_object_set_new(j, "state", json_string("starting"));
	cr_assert_eq(json_dump_file(j, p, 0), 0);
	json_decref(j);

	/* And a twin carrying the same marks (as if started twice). */
	char *real = realpath(dir, NULL);
	pid_t twin = fork();
	cr_assert_geq(twin, 0);
	if (twin == 0) {
		setsid();
		setenv("SLUICE_RUNTIME_DIR", real, 1);
		setenv("SLUICE_INSTANCE", a[0].id, 1);
		execlp("sleep", "sleep", "20", (char *)NULL);
		_exit(127);
	}
	free(real);
	usleep(50000); /* let the twin exec */

	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(list_of("v1", b, 2), 1);
	cr_assert(b[0].pid == a[0].pid || b[0].pid == twin, "adopted pid %d, expected %d or %d", b[0].pid,
		  a[0].pid, twin);
	int other = b[0].pid == a[0].pid ? twin : a[0].pid;
	for (uint64_t end = now_ms() + EXIT_MS; !proc_gone(other) && now_ms() < end;)
		usleep(10000);
	cr_assert(proc_gone(other), "the twin %d was left running", other);
	cr_assert(!proc_gone(b[0].pid));
	if (twin > 1)
		kill(-twin, SIGKILL);
}

Test(runtime, kept_logs_of_stopped_instances_are_bounded)
{
	char p[512];
	snprintf(p, sizeof p, "%s/logs", dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	for (int i = 0; i < 70; i++) {
		snprintf(p, sizeof p, "%s/logs/old.e.r.v%d.0.log", dir, i);
		FILE *f = fopen(p, "w");
		cr_assert_not_null(f);
		fclose(f);
		struct timespec ts[2] = {{.tv_sec = 1000000 + i}, {.tv_sec = 1000000 + i}};
		cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	runtime_stop(rt, NULL, NULL, NULL, NULL);
	struct want w = {"v1", INSTANCE_STOPPED, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	snprintf(p, sizeof p, "%s/logs", dir);
	DIR *d = opendir(p);
	int n = 0;
	bool mine = false, oldest = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		n += de->d_name[0] != '.';
		mine |= !strcmp(de->d_name, "svc.test.r1.v1.0.log");
		oldest |= !strcmp(de->d_name, "old.e.r.v0.0.log");
	}
	closedir(d);
	cr_assert_eq(n, 64);
	cr_assert(mine && !oldest);
}

Test(runtime, unreadable_state_files_are_skipped)
{
	static const char *bad[] = {
		"not json at all",
		"{\"service\":\"svc\",\"env\":\"test\",\"region\":\"r1\",\"release\":\"v1\",\"index\":-4}",
		"{\"service\":\"../x\",\"env\":\"test\",\"region\":\"r1\",\"release\":\"v1\",\"index\":0,"
		"\"pid\":0,\"start_time\":0,\"port\":1,\"desired\":\"running\",\"state\":\"healthy\"}",
		"[1,2,3]",
	};
	runtime_close(rt);
	rt = NULL;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char p[512];
		snprintf(p, sizeof p, "%s/svc.test.r1.v1.%zu", dir, i);
		cr_assert_eq(mkdir(p, 0755), 0);
		snprintf(p, sizeof p, "%s/svc.test.r1.v1.%zu/state.json", dir, i);
		FILE *f = fopen(p, "w");
		fputs(bad[i], f);
		fclose(f);
	}
	struct err e;
	cr_assert_eq(open_local(&rt, NULL, &e), 0, "%s", e.msg);
	struct li a[8];
	cr_assert_eq(list_of(NULL, a, 8), 0);
	/* The files stay for a person to look at. */
	char p[512];
	struct stat st;
	snprintf(p, sizeof p, "%s/svc.test.r1.v1.0/state.json", dir);
	cr_assert_eq(stat(p, &st), 0);
	/* And the runtime still works. */
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 1);
	struct want w = {"v1", INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
}

static bool port_bindable(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

Test(runtime, port_range_is_respected_and_exhaustion_reported)
{
	struct err e;
	runtime *other = NULL;
	cr_assert_eq(open_local(&other, "{\"ports\": [80, 90]}", &e), -1);
	cr_assert(strstr(e.msg, "1024-65535"), "%s", e.msg);
	cr_assert_eq(open_local(&other, "{\"ports\": [2000, 1999]}", &e), -1);
	cr_assert_eq(open_local(&other, "{\"port\": 2000}", &e), -1);
	cr_assert(strstr(e.msg, "unknown setting 'port'"), "%s", e.msg);
	/* Three ports nobody listens on now (other tests start instances in parallel). */
	int lo = 21000 + (int)(getpid() % 5000);
	while (!(port_bindable(lo) && port_bindable(lo + 1) && port_bindable(lo + 2)) && lo < 26000)
		lo += 3;
	char settings[64];
	snprintf(settings, sizeof settings, "{\"ports\": [%d, %d]}", lo, lo + 2);
	runtime_close(rt);
	rt = NULL;
	cr_assert_eq(open_local(&rt, settings, &e), 0, "%s", e.msg);
	struct instance_spec s = spec_of("v1", NULL);
	ensure(&s, 4);
	struct li a[8];
	cr_assert_eq(list_of("v1", a, 8), 4);
	for (int i = 0; i < 3; i++)
		cr_assert(a[i].port >= lo && a[i].port <= lo + 2 && a[i].pid > 0, "instance %d: port %d pid %d", i,
			  a[i].port, a[i].pid);
	cr_assert_eq(a[3].state, INSTANCE_BACKOFF);
	cr_assert_eq(a[3].pid, 0);
	char want[64];
	snprintf(want, sizeof want, "no free port in %d-%d", lo, lo + 2);
	cr_assert_str_eq(a[3].reason, want);
}

Test(runtime, the_longest_instance_id_that_fits_a_file_name_works_and_one_more_byte_is_refused)
{
	/* 63 + 63 + 63 + 45 bytes of names, 4 dots and index "0": 239 = RUNTIME_LOCAL_ID_MAX - 1 */
	char name[4][64];
	for (int i = 0; i < 4; i++) {
		memset(name[i], 'a' + i, 63);
		name[i][i == 3 ? 45 : 63] = 0;
	}
	struct instance_spec s = spec_of("v1", NULL);
	s.service = name[0], s.env = name[1], s.region = name[2], s.version = name[3];
	ensure(&s, 1);
	struct want w = {name[3], INSTANCE_HEALTHY, 1};
	cr_assert(tick_until(have_state, &w, START_MS));
	struct instance_info *v;
	size_t n;
	cr_assert_eq(runtime_list(rt, name[0], name[1], name[2], name[3], &v, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(strlen(v[0].id), RUNTIME_LOCAL_ID_MAX - 1);
	cr_assert(!strncmp(v[0].id, name[0], 63) && !strcmp(v[0].id + strlen(v[0].id) - 2, ".0"), "%s", v[0].id);
	free(v);
	/* Before a deployment, the check leaves room for two digits of index. */
	struct err e;
	cr_assert_eq(runtime_check_names(rt, name[0], name[1], name[2], name[3], &e), -1);
	cr_assert(strstr(e.msg, "would be 240 bytes, at most 239 (they name files)"), "%s", e.msg);
	name[3][44] = 0;
	cr_assert_eq(runtime_check_names(rt, name[0], name[1], name[2], name[3], &e), 0, "%s", e.msg);
	name[3][44] = 'd';
	name[3][45] = 'd';
	name[3][46] = 0;
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	cr_assert(strstr(e.msg, "is longer than 239 characters"), "%s", e.msg);
}

Test(runtime, a_missing_artifact_is_refused_before_an_instance_exists)
{
	struct instance_spec s = spec_of("v1", NULL);
	char gone[256];
	snprintf(gone, sizeof gone, "%s/no-such-artifact", dir);
	s.artifact = gone;
	struct err e;
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	char want[512];
	snprintf(want, sizeof want, "artifact '%s' is missing: No such file or directory", gone);
	cr_assert_str_eq(e.msg, want);
	struct li a[2];
	cr_assert_eq(list_of("v1", a, 2), 0);
	/* A command that does not name the artifact does not need it. */
	s.command = getenv("RT_TESTSRV");
	ensure(&s, 1);
	cr_assert_eq(list_of("v1", a, 2), 1);
}
