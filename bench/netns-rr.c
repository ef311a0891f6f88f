/* Socket load for bench/netns.ts, in C so the figures measure the datapath, not a runtime.
 *   netns-rr server PORT                 echo every read back (one connection at a time, forever)
 *   netns-rr rr HOST PORT SECONDS        1-byte request/response; prints transactions per second
 *   netns-rr stream HOST PORT SECONDS    64 KiB writes; prints bytes per second (server discards) */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static int dial(const char *host, const char *port) {
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo(host, port, &hints, &ai)) { perror("getaddrinfo"); exit(1); }
	int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; connect(fd, ai->ai_addr, ai->ai_addrlen); i++) { if (i > 50) { perror("connect"); exit(1); } usleep(100000); }
	return fd;
}

int main(int argc, char **argv) {
	static char buf[65536];
	if (argc >= 3 && !strcmp(argv[1], "server")) {
		int ls = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])) };
		if (bind(ls, (void *)&a, sizeof(a)) || listen(ls, 8)) { perror("listen"); return 1; }
		printf("listening\n"); fflush(stdout);
		for (;;) {
			int c = accept(ls, NULL, NULL);
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			ssize_t n;
			char mode = 0;
			while ((n = read(c, buf, sizeof(buf))) > 0) {
				if (!mode) mode = buf[0];
				if (mode == 'r' && write(c, buf, n) != n) break;
			}
			close(c);
		}
	}
	if (argc < 5) { fprintf(stderr, "usage: netns-rr server PORT | rr|stream HOST PORT SECONDS\n"); return 2; }
	int fd = dial(argv[2], argv[3]);
	double secs = atof(argv[4]), t0 = now(), end = t0 + secs;
	unsigned long long n = 0;
	if (!strcmp(argv[1], "rr")) {
		char b = 'r';
		while ((n & 255) || now() < end) {
			if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) { perror("rr"); return 1; }
			n++;
		}
	} else {
		memset(buf, 's', sizeof(buf));
		while ((n & 15) || now() < end) {
			ssize_t w = write(fd, buf, sizeof(buf));
			if (w <= 0) { perror("stream"); return 1; }
			n += w;
			if (n < (unsigned long long)w) break;
		}
	}
	printf("%.1f\n", n / (now() - t0));
	return 0;
}
