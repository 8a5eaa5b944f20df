/*
 * Tests of util/spawn: the child starts with descriptors 0, 1 and 2 only (an inherited one
 * above 1024 included), in its own session, with its output where asked; failures are told.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/spawn.h"

/* Puts a descriptor at 1500 (raising the soft limit when needed): the kind of number the old
 * spawners (closing below 1024) left open. */
static int high_fd(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2048) {
		cr_assert(rl.rlim_max >= 2048, "the hard descriptor limit (%llu) is too low for this test",
			  (unsigned long long)rl.rlim_max);
		rl.rlim_cur = 2048;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: it would be inherited */
	cr_assert_geq(fd, 0);
	cr_assert_eq(dup2(fd, 1500), 1500);
	close(fd);
	return 1500;
}

/* The descriptors of a running process, as a sorted list "0 1 2". */
static void fds_of(pid_t pid, char *out, size_t n)
{
	char p[64];
	int seen[4096] = {0}, max = -1;
	snprintf(p, sizeof p, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	cr_assert_not_null(d, "%s: %s", p, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			int fd = atoi(de->d_name);
			cr_assert(fd >= 0 && fd < 4096);
			seen[fd] = 1;
			max = fd > max ? fd : max;
		}
	closedir(d);
	out[0] = 0;
	for (int fd = 0; fd <= max; fd++)
		if (seen[fd])
			snprintf(out + strlen(out), n - strlen(out), "%s%d", out[0] ? " " : "", fd);
}

static void only_std_fds(int no_close_range)
{
	int hi = high_fd();
	char *argv[] = {"sleep", "5", NULL};
	struct spawn_opts o = {.argv = argv, .out_fd = -1, .no_close_range = no_close_range};
	pid_t pid;
	struct err e;
	cr_assert_eq(spawn_start(&o, &pid, &e), 0, "%s", e.msg);
	cr_assert_gt(pid, 0);
	char fds[256];
	/* spawn_start returns at the exec; the program's dynamic loader may still hold a library
	 * open for a moment (fd 3), so look until that is over. An inherited descriptor never goes
	 * away by itself, so the check still catches one. */
	for (int i = 0; i < 500; i++) {
		fds_of(pid, fds, sizeof fds);
		if (!strcmp(fds, "0 1 2"))
			break;
		usleep(10000);
	}
	cr_assert_str_eq(fds, "0 1 2", "the child holds descriptors %s (the parent's %d among them?)", fds, hi);
	cr_assert_eq(getsid(pid), pid, "the child is not in its own session");
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	close(hi);
}

Test(spawn, an_inherited_descriptor_above_1024_is_closed)
{
	only_std_fds(0);
}

Test(spawn, descriptors_are_closed_without_close_range_too)
{
	only_std_fds(1);
}

Test(spawn, output_goes_to_the_file_in_the_working_dir_with_the_environment)
{
	char dir[] = "/tmp/sluice-spawn-XXXXXX", out[128];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof out, "%s/out", dir);
	char *argv[] = {"sh", "-c", "echo \"$GREETING from $(pwd)\"; echo err >&2; read x || echo eof", NULL};
	char *envp[] = {"GREETING=hello", "PATH=/usr/bin:/bin", NULL};
	struct spawn_opts o = {.argv = argv, .envp = envp, .cwd = dir, .out_fd = -1, .out_path = out};
	pid_t pid;
	struct err e;
	cr_assert_eq(spawn_start(&o, &pid, &e), 0, "%s", e.msg);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char got[512] = "", want[512];
	FILE *f = fopen(out, "r");
	cr_assert_not_null(f);
	size_t n = fread(got, 1, sizeof got - 1, f);
	got[n] = 0;
	fclose(f);
	snprintf(want, sizeof want, "hello from %s\nerr\neof\n", dir);
	cr_assert_str_eq(got, want);
	unlink(out);
	rmdir(dir);
}

Test(spawn, failures_are_reported_with_the_program_and_the_cause)
{
	char *argv[] = {"/nonexistent/program", NULL};
	struct spawn_opts o = {.argv = argv, .out_fd = -1};
	pid_t pid = 42;
	struct err e;
	cr_assert_eq(spawn_start(&o, &pid, &e), -1);
	cr_assert_eq(pid, 0);
	cr_assert_str_eq(e.msg, "could not run '/nonexistent/program': No such file or directory");
	char *sh[] = {"true", NULL};
	o = (struct spawn_opts){.argv = sh, .out_fd = -1, .cwd = "/nonexistent"};
	cr_assert_eq(spawn_start(&o, &pid, &e), -1);
	cr_assert(strstr(e.msg, "working directory '/nonexistent'"), "%s", e.msg);
	o.cwd = NULL;
	o.detach = 1;
	o.argv = argv;
	cr_assert_eq(spawn_start(&o, &pid, &e), -1, "a detached child's failed exec is reported too");
	cr_assert(strstr(e.msg, "No such file"), "%s", e.msg);
	/* A detached child is not ours: nothing is left to reap. */
	o.argv = sh;
	cr_assert_eq(spawn_start(&o, &pid, &e), 0, "%s", e.msg);
	cr_assert_eq(pid, 0);
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
}

Test(spawn, a_detached_program_writes_its_own_pid)
{
	char dir[] = "/tmp/sluice-spawn-XXXXXX", pidf[128], out[128];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(pidf, sizeof pidf, "%s/pid", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	/* the program prints its own pid ($$ of the shell that exec'd nothing else) */
	char *argv[] = {"sh", "-c", "echo $$", NULL};
	struct spawn_opts o = {.argv = argv, .out_fd = -1, .out_path = out, .detach = 1, .pid_file = pidf};
	struct err e;
	cr_assert_eq(spawn_start(&o, NULL, &e), 0, "%s", e.msg);
	char said[32] = "", wrote[32] = "";
	for (int i = 0; i < 500 && !said[0]; i++) {
		FILE *f = fopen(out, "r");
		if (f) {
			if (!fgets(said, sizeof said, f))
				said[0] = 0;
			fclose(f);
		}
		if (!said[0])
			usleep(10000);
	}
	FILE *f = fopen(pidf, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(wrote, sizeof wrote, f));
	fclose(f);
	cr_assert_gt(atoi(wrote), 1);
	cr_assert_str_eq(wrote, said, "pid file '%s', program '%s'", wrote, said);
	unlink(pidf);
	unlink(out);
	rmdir(dir);
}
