/*
 * footprint-stub: the smallest service the footprint benchmark deploys by the thousand. One
 * thread, one epoll, no allocation after start: every request (GET or HEAD, no body; anything
 * up to the blank line) is answered 200 with the body "VERSION\n" and the header X-Version,
 * keep-alive. Its resident memory is a few hundred KB, so the machine holds thousands.
 *   footprint-stub --port N [--version V]      (SIGTERM or SIGINT: exit 0 at once)
 * A benchmark tool, not a service to copy: it reads at most 4 KiB of headers per connection
 * and closes a connection that sends more.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define STUB_CONNS 256 /* connections at once; more are closed at accept */
#define STUB_HEAD 4096 /* request head limit */

struct conn {
	int fd;
	size_t len;
	char in[STUB_HEAD];
};

static struct conn conns[STUB_CONNS];
static char answer[256], head_answer[256];
static int answer_len, head_answer_len;

static void drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

/* Answers every complete request in c->in; returns -1 when the connection must close. */
static int serve(struct conn *c)
{
	for (;;) {
		char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
		if (!end)
			return c->len == sizeof c->in ? -1 : 0;
		size_t used = (size_t)(end + 4 - c->in);
		int head = c->len >= 5 && !memcmp(c->in, "HEAD ", 5);
		const char *a = head ? head_answer : answer;
		int n = head ? head_answer_len : answer_len;
		if (send(c->fd, a, (size_t)n, MSG_NOSIGNAL) != n)
			return -1; /* a client that does not read its answers is not served */
		memmove(c->in, c->in + used, c->len - used);
		c->len -= used;
	}
}

int main(int argc, char **argv)
{
	int port = -1;
	const char *version = "v1";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--version"))
			version = argv[i + 1];
	}
	if (port < 0 || port > 65535 || strlen(version) > 64) {
		fprintf(stderr, "usage: footprint-stub --port N [--version V]\n");
		return 2;
	}
	answer_len = snprintf(answer, sizeof answer,
			      "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Version: %s\r\n\r\n%s\n",
			      strlen(version) + 1, version, version);
	head_answer_len = snprintf(head_answer, sizeof head_answer,
				   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Version: %s\r\n\r\n",
				   strlen(version) + 1, version);
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 128)) {
		perror("footprint-stub: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
		perror("footprint-stub: epoll");
		return 1;
	}
	for (int i = 0; i < STUB_CONNS; i++)
		conns[i].fd = -1;
	printf("footprint-stub %s listening on 127.0.0.1:%d\n", version, port);
	fflush(stdout);
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct conn *free_c = NULL;
					for (int k = 0; k < STUB_CONNS && !free_c; k++)
						if (conns[k].fd < 0)
							free_c = &conns[k];
					struct epoll_event ce = {.events = EPOLLIN, .data.ptr = free_c};
					if (!free_c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce)) {
						close(fd);
						continue;
					}
					free_c->fd = fd;
					free_c->len = 0;
				}
				continue;
			}
			ssize_t r = recv(c->fd, c->in + c->len, sizeof c->in - c->len, 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				drop(ep, c);
				continue;
			}
			c->len += (size_t)r;
			if (serve(c))
				drop(ep, c);
		}
	}
}
