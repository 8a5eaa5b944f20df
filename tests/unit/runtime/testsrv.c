/*
 * testsrv: a tiny HTTP server the runtime tests start as instances.
 *
 * Listens on 127.0.0.1:$PORT. GET /healthz answers 200 (503 after GET /sick), anything else
 * 200 "hello"; GET /well makes it healthy again, GET /hang makes /healthz never answer. Options: --crash-at-start (exit 3 at once), --ignore-term (SIGTERM ignored, so
 * only SIGKILL stops it), --spawn-child (forks a helper that sleeps, to check that the whole
 * process group is stopped), --spam N (prints N lines of 100 bytes at start). It prints its
 * argv and every request to stdout; on SIGTERM it prints "terminating on SIGTERM" and exits 0
 * (the conformance suite's proof of a graceful stop); it exits by itself after 60 s so that
 * nothing a failed test leaves behind lives long.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void on_term(int sig)
{
	static const char msg[] = "terminating on SIGTERM\n";
	(void)sig;
	if (write(1, msg, sizeof msg - 1) < 0)
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	int ignore_term = 0, spawn_child = 0, spam = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(60);
	printf("argv:");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--crash-at-start")) {
			fprintf(stderr, "crashing at start as asked\n");
			return 3;
		} else if (!strcmp(argv[i], "--ignore-term"))
			ignore_term = 1;
		else if (!strcmp(argv[i], "--spawn-child"))
			spawn_child = 1;
		else if (!strcmp(argv[i], "--spam") && i + 1 < argc)
			spam = atoi(argv[++i]);
	}
	signal(SIGTERM, ignore_term ? SIG_IGN : on_term);
	for (int i = 0; i < spam && i < 100000; i++)
		printf("line %06d %s\n", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	if (spawn_child) {
		pid_t c = fork();
		if (c == 0) {
			for (int i = 0; i < 600; i++)
				usleep(100000);
			_exit(0);
		}
		printf("child pid %d\n", (int)c);
	}
	const char *p = getenv("PORT");
	int port = p ? atoi(p) : 0;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "testsrv: PORT not set\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
		perror("testsrv: bind");
		return 2;
	}
	printf("listening on %d pid %d instance %s\n", port, (int)getpid(), getenv("SLUICE_INSTANCE"));
	int sick = 0, hang = 0, hung = 0;
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = {.tv_sec = 1};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		char req[4096];
		size_t len = 0;
		while (len < sizeof req - 1) {
			ssize_t n = read(c, req + len, sizeof req - 1 - len);
			if (n <= 0)
				break;
			len += (size_t)n;
			req[len] = 0;
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[len] = 0;
		char method[16] = "", path[256] = "";
		sscanf(req, "%15s %255s", method, path);
		printf("request %s %s\n", method, path);
		int code = 200;
		if (!strcmp(path, "/sick"))
			sick = 1;
		else if (!strcmp(path, "/well"))
			sick = 0;
		else if (!strcmp(path, "/hang"))
			hang = 1;
		else if (!strcmp(path, "/healthz") && hang && hung < 200) {
			hung++; /* keep the connection open without an answer (bounded) */
			continue;
		}
		else if (!strcmp(path, "/healthz") && sick)
			code = 503;
		char resp[256];
		int n = snprintf(resp, sizeof resp,
				 "HTTP/1.1 %d %s\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n", code,
				 code == 200 ? "OK" : "Service Unavailable");
		if (write(c, resp, (size_t)n) < 0)
			perror("testsrv: write");
		close(c);
	}
}
