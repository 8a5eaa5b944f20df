/*
 * spawn: fork + exec with a clean start (see spawn.h). The child reports a failure before exec
 * through a close-on-exec pipe: it writes {stage, errno}; a successful exec closes the pipe,
 * which the parent reads as EOF.
 */
#include "util/spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { STAGE_SETUP = 1, STAGE_CWD, STAGE_EXEC, STAGE_FORK };

struct report {
	int stage, err;
};

/* Closes every descriptor >= lo by walking /proc/self/fd with getdents64 (no malloc: this runs
 * between fork and exec). Returns -1 when /proc cannot be read. */
static int close_from_proc(int lo)
{
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	char b[4096] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, b, sizeof b);
		if (n < 0) {
			close(dfd);
			return -1;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			/* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
			unsigned short reclen;
			memcpy(&reclen, b + off + 16, sizeof reclen);
			const char *name = b + off + 19;
			int fd = 0, digits = 0;
			for (; *name >= '0' && *name <= '9' && fd < 1 << 28; name++, digits++)
				fd = fd * 10 + (*name - '0');
			if (digits && !*name && fd >= lo && fd != dfd)
				close(fd);
			off += reclen;
		}
	}
	close(dfd);
	return 0;
}

static void close_from(int lo, int no_close_range)
{
	if (!no_close_range && syscall(SYS_close_range, (unsigned)lo, ~0u, 0u) == 0)
		return;
	if (close_from_proc(lo) == 0)
		return;
	struct rlimit rl;
	rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 65536;
	if (max > (1u << 20))
		max = 1u << 20;
	for (rlim_t fd = (rlim_t)lo; fd < max; fd++)
		close((int)fd);
}

static void __attribute__((noreturn)) fail(int pfd, int stage)
{
	struct report r = {stage, errno};
	if (write(pfd, &r, sizeof r) < 0) {
		/* the parent then reads EOF as a success; exit 127 is seen like any early exit */
	}
	_exit(127);
}

/* Only async-signal-safe calls from here to exec. */
static void __attribute__((noreturn)) child(const struct spawn_opts *o, int out, int pfd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP and unused numbers */
	setsid();
	/* Move the two descriptors we keep above 2 first, so that setting 0-2 cannot close them. */
	int p = fcntl(pfd, F_DUPFD_CLOEXEC, 3);
	if (p < 0)
		_exit(127);
	pfd = p;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		fail(pfd, STAGE_SETUP);
	if (out >= 0 && (out = fcntl(out, F_DUPFD_CLOEXEC, 3)) < 0)
		fail(pfd, STAGE_SETUP);
	if (out < 0)
		out = nul;
	if (dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		fail(pfd, STAGE_SETUP);
	if (pfd != 3) {
		if (dup2(pfd, 3) < 0)
			fail(pfd, STAGE_SETUP);
		pfd = 3;
		fcntl(3, F_SETFD, FD_CLOEXEC);
	}
	close_from(4, o->no_close_range);
	if (o->cwd && chdir(o->cwd) != 0)
		fail(pfd, STAGE_CWD);
	if (o->pid_file) {
		/* the program's own pid, which a detached starter cannot know */
		char line[24], *d = line + sizeof line; /* digits by hand: only async-signal-safe calls here */
		*--d = '\n';
		for (unsigned v = (unsigned)getpid(); d == line + sizeof line - 1 || v; v /= 10)
			*--d = (char)('0' + v % 10);
		ssize_t n = line + sizeof line - d;
		int fd = open(o->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, d, (size_t)n) != n)
			fail(pfd, STAGE_SETUP);
		close(fd);
	}
	execvpe(o->argv[0], o->argv, o->envp ? o->envp : environ);
	fail(pfd, STAGE_EXEC);
}

int spawn_start(const struct spawn_opts *o, pid_t *pid, struct err *e)
{
	if (pid)
		*pid = 0;
	if (!o->argv || !o->argv[0] || !o->argv[0][0])
		return err_set(e, "nothing to run: empty command");
	int out = o->out_fd, own_out = -1, pfd[2];
	if (out < 0 && o->out_path) {
		own_out = out = open(o->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (out < 0)
			return err_set(e, "could not open '%s': %s", o->out_path, strerror(errno));
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		err_set(e, "pipe: %s", strerror(errno));
		if (own_out >= 0)
			close(own_out);
		return -1;
	}
	pid_t c = fork();
	if (c == 0) {
		close(pfd[0]);
		if (o->detach) {
			pid_t g = fork();
			if (g < 0)
				fail(pfd[1], STAGE_FORK);
			if (g > 0)
				_exit(0);
		}
		child(o, out, pfd[1]);
	}
	int saved = errno;
	close(pfd[1]);
	if (own_out >= 0)
		close(own_out);
	if (c < 0) {
		close(pfd[0]);
		return err_set(e, "fork: %s", strerror(saved));
	}
	if (o->detach)
		while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
			;
	struct report r = {0, 0};
	ssize_t n;
	do
		n = read(pfd[0], &r, sizeof r); /* EOF at exec */
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof r) {
		if (!o->detach)
			while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
				;
		if (r.stage == STAGE_CWD)
			return err_set(e, "could not run '%s': working directory '%s': %s", o->argv[0], o->cwd,
				       strerror(r.err));
		if (r.stage == STAGE_FORK)
			return err_set(e, "fork: %s", strerror(r.err));
		if (r.stage == STAGE_SETUP)
			return err_set(e, "could not run '%s': setting up its descriptors: %s", o->argv[0],
				       strerror(r.err));
		return err_set(e, "could not run '%s': %s", o->argv[0], strerror(r.err));
	}
	if (pid && !o->detach)
		*pid = c;
	return 0;
}
