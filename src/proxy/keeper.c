/*
 * keeper: see keeper.h. The keeper's own loop is poll(2) over three descriptors: the socketpair
 * to the serving process (its listener reports), a pidfd of that process (its death) and a
 * signalfd (a requested stop). Nothing here reads from the network.
 */
#include "proxy/keeper.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/strmap.h"

#define MAX_IDX 256 /* workers per proxy (proxy/main.c: --workers 1..256) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define QUICK_DEATH_MS 1000 /* a process that dies sooner than this is crash-looping */

enum { OP_KEEP = 'K', OP_DROP = 'D', OP_READY = 'R' };

struct kmsg {
	uint8_t op;
	uint16_t idx;
	char key[KEEPER_KEY_MAX + 1];
};

/* The listeners of one key: fds[idx] or -1. */
struct kentry {
	struct kentry *next, *prev;
	int fds[MAX_IDX];
	char key[KEEPER_KEY_MAX + 1];
};

/* The table: the keeper's duplicates, and in a serving process the copies it inherited. */
static struct {
	struct kentry *head;
	strmap *index;
	int sock; /* the serving process's end of the socketpair, -1 without a keeper */
} K = {.sock = -1};

static struct kentry *entry_get(const char *key, int create)
{
	if (!K.index && !(K.index = strmap_new()))
		return NULL;
	struct kentry *en = strmap_get(K.index, key);
	if (en || !create)
		return en;
	en = calloc(1, sizeof(*en));
	if (!en)
		return NULL;
	for (int i = 0; i < MAX_IDX; i++)
		en->fds[i] = -1;
	snprintf(en->key, sizeof(en->key), "%s", key);
	if (strmap_put(K.index, en->key, en)) {
		free(en);
		return NULL;
	}
	en->next = K.head;
	if (K.head)
		K.head->prev = en;
	K.head = en;
	return en;
}

/* Closes the entry's descriptors and forgets it. */
static void entry_drop(struct kentry *en)
{
	for (int i = 0; i < MAX_IDX; i++)
		if (en->fds[i] >= 0)
			close(en->fds[i]);
	strmap_del(K.index, en->key);
	if (en->prev)
		en->prev->next = en->next;
	else
		K.head = en->next;
	if (en->next)
		en->next->prev = en->prev;
	free(en);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the serving process's side ---- */

static void send_msg(int op, const char *key, unsigned idx, int fd)
{
	if (K.sock < 0)
		return;
	struct kmsg m = {.op = (uint8_t)op, .idx = (uint16_t)idx};
	if (key)
		snprintf(m.key, sizeof(m.key), "%s", key);
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(K.sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		/* the keeper is gone (it was killed: SIGKILL is on its way here) */
		log_error("proxy: the keeper does not answer (%s): listeners will not outlive a crash",
			  strerror(errno));
		close(K.sock);
		K.sock = -1;
	}
}

int keeper_take(const char *key, unsigned idx)
{
	struct kentry *en = K.index && idx < MAX_IDX ? strmap_get(K.index, key) : NULL;
	if (!en)
		return -1;
	int fd = en->fds[idx];
	en->fds[idx] = -1;
	return fd;
}

void keeper_keep(const char *key, unsigned idx, int fd)
{
	if (K.sock >= 0 && idx < MAX_IDX && strlen(key) <= KEEPER_KEY_MAX)
		send_msg(OP_KEEP, key, idx, fd);
}

void keeper_drop(const char *key)
{
	if (K.sock >= 0 && strlen(key) <= KEEPER_KEY_MAX)
		send_msg(OP_DROP, key, 0, -1);
}

void keeper_ready(void)
{
	/* what the previous process listened on and this one's routes do not: close it here and
	 * in the keeper (a listener nobody accepts from would hold connections for ever) */
	while (K.head) {
		struct kentry *en = K.head;
		int left = 0;
		for (int i = 0; i < MAX_IDX; i++)
			left |= en->fds[i] >= 0;
		if (left) /* the workers are as many as before, so a key is taken whole or not at all */
			send_msg(OP_DROP, en->key, 0, -1);
		entry_drop(en);
	}
	strmap_free(K.index);
	K.index = NULL;
	send_msg(OP_READY, NULL, 0, -1);
}

/* ---- the keeper's side ---- */

/* Applies the messages waiting on sock; returns -1 at its end (the process closed it). */
static int receive(int sock, int *ready)
{
	for (;;) {
		struct kmsg m;
		struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf)};
		ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		if (n == 0)
			return -1;
		int fd = -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
			    c->cmsg_len >= CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(c), sizeof(int));
		m.key[KEEPER_KEY_MAX] = 0;
		if ((size_t)n != sizeof(m) || m.idx >= MAX_IDX) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (m.op == OP_READY) {
			*ready = 1;
		} else if (m.op == OP_DROP) {
			struct kentry *en = entry_get(m.key, 0);
			if (en)
				entry_drop(en);
		} else if (m.op == OP_KEEP && fd >= 0) {
			struct kentry *en = entry_get(m.key, 1);
			if (!en) {
				close(fd);
				continue;
			}
			if (en->fds[m.idx] >= 0)
				close(en->fds[m.idx]);
			en->fds[m.idx] = fd;
			fd = -1;
		}
		if (fd >= 0)
			close(fd);
	}
}

/* Why a process ended, for the log. */
static void describe(const siginfo_t *si, char *out, size_t n)
{
	if (si->si_code == CLD_EXITED)
		snprintf(out, n, "exited with status %d", si->si_status);
	else
		snprintf(out, n, "was killed by signal %d (%s)", si->si_status, strsignal(si->si_status));
}

/* Runs one serving process to its end. Returns its siginfo in *si; *stopping says a stop was
 * asked for meanwhile. */
static void supervise(pid_t pid, int sock, int sfd, siginfo_t *si, int *ready, int *stopping)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		struct pollfd pf[3] = {{.fd = sock, .events = POLLIN},
				       {.fd = pfd, .events = POLLIN},
				       {.fd = sfd, .events = POLLIN}};
		/* without a pidfd (old kernels) the death is polled for every 50 ms */
		int n = poll(pf, 3, pfd >= 0 ? -1 : 50);
		if (n < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			if (receive(sock, ready) < 0)
				sock = -1; /* poll ignores a negative fd */
		if (pf[2].revents & POLLIN) {
			struct signalfd_siginfo ss;
			while (read(sfd, &ss, sizeof(ss)) == (ssize_t)sizeof(ss)) {
				*stopping = 1;
				kill(pid, (int)ss.ssi_signo);
			}
		}
		memset(si, 0, sizeof(*si));
		if (waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG) == 0 && si->si_pid == pid)
			break;
	}
	if (sock >= 0)
		(void)receive(sock, ready); /* what it said before it died */
	if (pfd >= 0)
		close(pfd);
	if (si->si_pid != pid) /* poll failed: wait for it plainly */
		waitid(P_PID, (id_t)pid, si, WEXITED);
}

int keeper_start(int *status, struct err *e)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		return err_set(e, "keeper: signalfd: %s", strerror(errno));
	pid_t self = getpid();
	int backoff = BACKOFF_MIN_MS, starts = 0;
	for (;;) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
			int en = errno;
			close(sfd);
			if (starts == 0)
				return err_set(e, "keeper: socketpair: %s", strerror(en));
			log_error("proxy keeper: socketpair: %s; stopping", strerror(en));
			*status = 1;
			return 1;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(sv[0]);
			close(sfd);
			K.sock = sv[1];
			/* the keeper killed: the whole proxy is, so that a new one can take the
			 * addresses at once (a draining process would hold them) */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != self)
				_exit(1);
			return 0;
		}
		close(sv[1]);
		if (pid < 0) {
			int en = errno;
			close(sv[0]);
			close(sfd);
			if (starts == 0)
				return err_set(e, "keeper: fork: %s", strerror(en));
			log_error("proxy keeper: fork: %s; stopping", strerror(en));
			*status = 1;
			return 1;
		}
		starts++;
		int64_t t0 = now_ms();
		siginfo_t si;
		int ready = 0, stopping = 0;
		supervise(pid, sv[0], sfd, &si, &ready, &stopping);
		close(sv[0]);
		char why[96];
		describe(&si, why, sizeof(why));
		/* a first start that fails is a configuration to fix, not a crash to restart */
		if (stopping || (si.si_code == CLD_EXITED && si.si_status == 0) || (!ready && starts == 1)) {
			*status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
			break;
		}
		int64_t lived = now_ms() - t0;
		if (lived < QUICK_DEATH_MS) {
			log_error("proxy keeper: the serving process %d %s after %lld ms; starting another "
				  "in %d ms", (int)pid, why, (long long)lived, backoff);
			struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		} else {
			log_error("proxy keeper: the serving process %d %s; starting another on the same "
				  "listeners", (int)pid, why);
			backoff = BACKOFF_MIN_MS;
		}
		/* a stop asked for during the back-off */
		struct signalfd_siginfo ss;
		if (read(sfd, &ss, sizeof(ss)) == (ssize_t)sizeof(ss)) {
			*status = 0;
			break;
		}
	}
	close(sfd);
	while (K.head)
		entry_drop(K.head);
	strmap_free(K.index);
	K.index = NULL;
	return 1;
}
