/*
 * The datapath benchmark's load generator (bench/datapath.ts compiles it with cc at bench time).
 * A tight loop of the socket calls that ip-per-task's cgroup programs sit on, so their per-call
 * cost is as visible as it can be: a Node or Python loop would add microseconds of interpreter
 * per call and dilute the ratio.
 *
 *   datapath tcp <4|6> <addr> <count>   socket + connect + accept + close, against a listener
 *                                       this process holds on <addr>
 *   datapath udp <4|6> <addr> <count>   unconnected sendto() of 64 bytes to a socket this
 *                                       process holds on <addr> (nobody reads: drops are fine,
 *                                       the sender's path is what is measured)
 *
 * Prints one JSON line: {"ops":N,"seconds":S,"rate":N/S}. Exit 1 with a message on any error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "datapath: %s: %s\n", what, strerror(errno));
  exit(1);
}

static socklen_t make_addr(int family, const char *text, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1) die("bad IPv6 address");
    return sizeof(*a);
  }
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  a->sin_family = AF_INET;
  if (inet_pton(AF_INET, text, &a->sin_addr) != 1) die("bad IPv4 address");
  return sizeof(*a);
}

/* A socket bound to addr:0; addr gets the port the kernel chose. */
static int bound(int family, int type, struct sockaddr_storage *addr, socklen_t len) {
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, type, 0);
  if (fd < 0) die("socket");
  if (bind(fd, (struct sockaddr *)addr, len) < 0) die("bind");
  if (getsockname(fd, (struct sockaddr *)addr, &len) < 0) die("getsockname");
  return fd;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tcp_once(int family, int listener, struct sockaddr_storage *dst, socklen_t len) {
  int c = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (c < 0) die("socket");
  /* RST on close: no TIME_WAIT, so a long run never runs out of ports. */
  struct linger lg = {1, 0};
  if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) die("SO_LINGER");
  if (connect(c, (struct sockaddr *)dst, len) < 0) die("connect");
  int s = accept(listener, NULL, NULL);
  if (s < 0) die("accept");
  close(c);
  close(s);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: datapath <tcp|udp> <4|6> <addr> <count>\n");
    return 2;
  }
  const char *mode = argv[1];
  int family = atoi(argv[2]);
  long count = atol(argv[4]);
  struct sockaddr_storage dst;
  socklen_t len = make_addr(family, argv[3], &dst);
  long warm = count / 20 + 1;
  double t0, t1;

  if (strcmp(mode, "tcp") == 0) {
    int l = bound(family, SOCK_STREAM, &dst, len);
    if (listen(l, 128) < 0) die("listen");
    for (long i = 0; i < warm; i++) tcp_once(family, l, &dst, len);
    t0 = now();
    for (long i = 0; i < count; i++) tcp_once(family, l, &dst, len);
    t1 = now();
  } else if (strcmp(mode, "udp") == 0) {
    int sink = bound(family, SOCK_DGRAM, &dst, len);
    (void)sink;
    int s = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    if (s < 0) die("socket");
    char buf[64] = {0};
    for (long i = 0; i < warm; i++)
      if (sendto(s, buf, sizeof(buf), 0, (struct sockaddr *)&dst, len) < 0 && errno != ENOBUFS && errno != EAGAIN) die("sendto");
    t0 = now();
    for (long i = 0; i < count; i++)
      if (sendto(s, buf, sizeof(buf), 0, (struct sockaddr *)&dst, len) < 0 && errno != ENOBUFS && errno != EAGAIN) die("sendto");
    t1 = now();
  } else {
    fprintf(stderr, "datapath: unknown mode %s\n", mode);
    return 2;
  }
  printf("{\"ops\":%ld,\"seconds\":%.6f,\"rate\":%.1f}\n", count, t1 - t0, count / (t1 - t0));
  return 0;
}
