#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct handler {
	loop_io_fn *fn;
	void *arg;
	unsigned events;
	unsigned gen; /* bumped on loop_del so stale events of one epoll_wait batch are skipped */
};

struct timer {
	uint64_t when;
	uint64_t id;
	loop_timer_fn *fn;
	void *arg;
};

struct loop {
	int epfd;
	int wakefd;
	int stop;
	uint64_t now;
	struct handler *fds;
	int nfds;
	struct timer *heap;
	size_t nheap, capheap;
	uint64_t next_id;
};

uint64_t loop_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void wake_drain(loop *l, int fd, unsigned ev, void *arg)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) > 0)
		;
}

loop *loop_new(void)
{
	loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->now = loop_clock_ms();
	l->next_id = 1;
	if (l->epfd < 0 || l->wakefd < 0 || loop_add(l, l->wakefd, LOOP_READ, wake_drain, NULL)) {
		loop_free(l);
		return NULL;
	}
	return l;
}

void loop_free(loop *l)
{
	if (!l)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	free(l->fds);
	free(l->heap);
	free(l);
}

static uint32_t to_epoll(unsigned events)
{
	uint32_t e = 0;
	if (events & LOOP_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & LOOP_WRITE)
		e |= EPOLLOUT;
	if (events & LOOP_EDGE)
		e |= EPOLLET;
	return e;
}

int loop_add(loop *l, int fd, unsigned events, loop_io_fn *fn, void *arg)
{
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fd >= l->nfds) {
		int n = l->nfds ? l->nfds : 64;
		while (n <= fd)
			n *= 2;
		struct handler *h = realloc(l->fds, (size_t)n * sizeof(*h));
		if (!h)
			return -1;
		memset(h + l->nfds, 0, (size_t)(n - l->nfds) * sizeof(*h));
		l->fds = h;
		l->nfds = n;
	}
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -1;
	l->fds[fd].fn = fn;
	l->fds[fd].arg = arg;
	l->fds[fd].events = events;
	return 0;
}

int loop_mod(loop *l, int fd, unsigned events)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].fn) {
		errno = EBADF;
		return -1;
	}
	if (l->fds[fd].events == events)
		return 0;
	struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev))
		return -1;
	l->fds[fd].events = events;
	return 0;
}

void loop_del(loop *l, int fd)
{
	if (fd < 0 || fd >= l->nfds || !l->fds[fd].fn)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->fds[fd].fn = NULL;
	l->fds[fd].arg = NULL;
	l->fds[fd].gen++;
}

void loop_close(loop *l, int fd)
{
	if (fd < 0)
		return;
	if (fd < l->nfds && l->fds[fd].fn) {
		l->fds[fd].fn = NULL;
		l->fds[fd].arg = NULL;
		l->fds[fd].gen++;
	}
	close(fd);
}

static int timer_before(const struct timer *a, const struct timer *b)
{
	return a->when < b->when || (a->when == b->when && a->id < b->id);
}

static void heap_up(struct timer *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!timer_before(&h[i], &h[p]))
			break;
		struct timer t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static void heap_down(struct timer *h, size_t n, size_t i)
{
	for (;;) {
		size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
		if (a < n && timer_before(&h[a], &h[m]))
			m = a;
		if (b < n && timer_before(&h[b], &h[m]))
			m = b;
		if (m == i)
			return;
		struct timer t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void heap_remove(loop *l, size_t i)
{
	l->nheap--;
	if (i == l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	heap_down(l->heap, l->nheap, i);
	heap_up(l->heap, i);
}

uint64_t loop_timer(loop *l, uint64_t ms, loop_timer_fn *fn, void *arg)
{
	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? l->capheap * 2 : 16;
		struct timer *h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return 0;
		l->heap = h;
		l->capheap = cap;
	}
	uint64_t id = l->next_id++;
	struct timer *t = &l->heap[l->nheap];
	t->when = loop_clock_ms() + ms;
	t->id = id;
	t->fn = fn;
	t->arg = arg;
	l->nheap++;
	/* not t->id after this: heap_up may move another timer into *t */
	heap_up(l->heap, l->nheap - 1);
	return id;
}

void loop_timer_cancel(loop *l, uint64_t id)
{
	/* Linear: cancellations are rare next to expirations, and heaps stay small. */
	for (size_t i = 0; i < l->nheap; i++)
		if (l->heap[i].id == id) {
			heap_remove(l, i);
			return;
		}
}

uint64_t loop_now(const loop *l)
{
	return l->now;
}

void loop_stop(loop *l)
{
	l->stop = 1;
	loop_wake(l);
}

void loop_wake(loop *l)
{
	uint64_t one = 1;
	ssize_t n = write(l->wakefd, &one, sizeof(one));
	(void)n;
}

static void run_timers(loop *l)
{
	while (l->nheap && l->heap[0].when <= l->now && !l->stop) {
		struct timer t = l->heap[0];
		heap_remove(l, 0);
		t.fn(l, t.arg);
	}
}

int loop_run(loop *l)
{
	struct epoll_event evs[256];
	l->stop = 0;
	while (!l->stop) {
		l->now = loop_clock_ms();
		run_timers(l);
		if (l->stop)
			break;
		int timeout = -1;
		if (l->nheap) {
			uint64_t when = l->heap[0].when;
			timeout = when <= l->now ? 0 : (int)(when - l->now > 60000 ? 60000 : when - l->now);
		}
		int n = epoll_wait(l->epfd, evs, 256, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		l->now = loop_clock_ms();
		unsigned gens[256];
		for (int i = 0; i < n; i++)
			gens[i] = l->fds[evs[i].data.fd].gen;
		for (int i = 0; i < n && !l->stop; i++) {
			int fd = evs[i].data.fd;
			struct handler *h = &l->fds[fd];
			if (!h->fn || h->gen != gens[i])
				continue;
			unsigned ready = 0;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				ready |= LOOP_READ;
			if (evs[i].events & EPOLLOUT)
				ready |= LOOP_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				ready |= LOOP_READ | LOOP_WRITE;
			if ((h->events & LOOP_RDHUP) && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				ready |= LOOP_RDHUP;
			h->fn(l, fd, ready, h->arg);
			/* fds may have been reallocated by the callback: refetch through l->fds */
		}
	}
	return 0;
}
