/*
 * Accept loop for the data-path benchmark.
 * usage: server PORT MAX_SECONDS
 * Listens on 0.0.0.0:PORT (so every address the namespace owns, including a whole local-routed
 * prefix, is served), accepts and immediately closes with an RST. Exits by itself after
 * MAX_SECONDS (alarm(2)) so a forgotten server cannot outlive the benchmark.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORT MAX_SECONDS\n", argv[0]);
    return 2;
  }
  alarm((unsigned)atoi(argv[2]));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[1]));
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4096) != 0) {
    perror("bind/listen");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  struct linger lg = {1, 0};
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
  }
}
