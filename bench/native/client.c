/*
 * Sequential TCP connection opener for the data-path benchmark.
 * usage: client ADDR PORT COUNT MAX_SECONDS
 * Opens COUNT connections one after another (each waits for the handshake), closing each with an
 * RST (SO_LINGER with a zero timeout, socket(7)) so neither side keeps TIME_WAIT state and the
 * figure measures connection setup through the balancer's rules, not teardown. Stops early after
 * MAX_SECONDS. Prints one line: ok=N fail=N seconds=S stalled=S rate=R, where stalled is the time
 * spent in connects that failed (a lost SYN waits out the 1 s timeout) and rate is successful
 * connections per second of the remaining time (first_error names the first failure's errno): one lost packet would otherwise cost a 0.25 s run
 * a second and hide the rule-evaluation cost the figure is about. Failures are reported beside it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s ADDR PORT COUNT MAX_SECONDS\n", argv[0]);
    return 2;
  }
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  long count = atol(argv[3]);
  double limit = atof(argv[4]);
  struct linger lg = {1, 0};
  /* A lost SYN would otherwise block for the kernel's whole retry schedule. */
  struct timeval tv = {1, 0};
  long ok = 0, fail = 0;
  double t0 = now(), t = t0, stalled = 0;
  int first_errno = 0;
  for (long i = 0; i < count; i++) {
    if ((t = now()) - t0 > limit) break;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      perror("socket");
      return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    double c0 = now();
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
      ok++;
    } else {
      fail++;
      if (!first_errno) first_errno = errno;
      stalled += now() - c0;
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
  }
  t = now() - t0;
  double busy = t - stalled;
  printf("ok=%ld fail=%ld seconds=%.6f stalled=%.6f rate=%.1f first_error=%s\n", ok, fail, t, stalled, busy > 0 ? ok / busy : 0.0,
         first_errno ? strerror(first_errno) : "none");
  return 0;
}
