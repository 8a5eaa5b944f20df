#include "loopback.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int loopback_bind(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

int loopback_listen(int backlog, char *addr, size_t addrlen, int *port)
{
	int p;
	int fd = loopback_bind(&p);
	cr_assert_eq(listen(fd, backlog), 0);
	if (addr)
		snprintf(addr, addrlen, "127.0.0.1:%d", p);
	if (port)
		*port = p;
	return fd;
}

ssize_t loopback_read_head(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t have = 0;
	buf[0] = '\0';
	while (!memmem(buf, have, "\r\n\r\n", 4)) {
		struct pollfd p = {fd, POLLIN, 0};
		if (have + 1 >= cap || poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t n = read(fd, buf + have, cap - 1 - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
	}
	return (ssize_t)have;
}

int loopback_send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
