/*
 * The conformance suite (conformance.h) run for the local driver: a fresh data directory per
 * test; the fixture kills whatever a failed test left running there (only processes whose
 * environment carries that directory).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "runtime/runtime_local.h"

static char root[128], missing[192];

static int open_local(runtime **out, struct err *e)
{
	struct runtime_host host = {.data_dir = root};
	return runtime_open(out, "local", NULL, &host, e);
}

static const char *no_args[] = {NULL};

static struct instance_spec spec(const char *service, const char *region, const char *version)
{
	const char *srv = getenv("RT_TESTSRV");
	cr_assert_not_null(srv, "RT_TESTSRV must name the test server binary");
	return (struct instance_spec){.service = service, .env = "test", .region = region, .version = version,
				      .artifact = srv, .command = "{artifact}", .args = no_args,
				      .env_vars = no_args, .health_path = "/healthz", .health_interval_ms = 100,
				      .health_timeout_ms = 500, .drain_timeout_ms = 5000};
}

static struct instance_spec unrunnable(const char *service, const char *region, const char *version)
{
	struct instance_spec s = spec(service, region, version);
	s.artifact = missing;
	return s;
}

static const struct conformance_driver local = {.open = open_local, .spec = spec, .unrunnable = unrunnable};

/* Only our own instances: session leaders whose environment names our directory. */
static int ours(int pid, const char *real)
{
	if (pid <= 1 || pid == getpid() || getsid(pid) != pid)
		return 0;
	char p[64], want[PATH_MAX + 32];
	static char b[65536];
	snprintf(want, sizeof want, "SLUICE_RUNTIME_DIR=%s", real);
	snprintf(p, sizeof p, "/proc/%d/environ", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return 0;
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = 0;
	for (size_t i = 0; i < n; i += strlen(b + i) + 1)
		if (!strcmp(b + i, want))
			return 1;
	return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	remove(p);
	return 0;
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/sluice-rtc-test-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(missing, sizeof missing, "%s/no-such-artifact", root);
}

static void teardown(void)
{
	char dir[256], real[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/instances", root);
	if (realpath(dir, real)) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			int pid = atoi(de->d_name);
			if (pid > 1 && ours(pid, real))
				kill(-pid, SIGKILL);
		}
		if (d)
			closedir(d);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(conformance_local, .timeout = 120);

CONFORMANCE_TESTS(conformance_local, &local, setup, teardown)
