/*
 * UDP sender for the associations benchmark: COUNT datagrams to DST:DPORT, each from its own client
 * address and port (source address SRC plus i / 50000, source port 10000 + i % 50000), written with a
 * raw socket so any source can be chosen (raw(7): IP_HDRINCL; for IPv6, IPPROTO_RAW sockets carry
 * the header too, raw(7)/ipv6(7)). ROUNDS > 1 sends the same COUNT keys again (refreshing them).
 * RATE (datagrams per second, 0 or absent: as fast as possible) paces the sender, so the benchmark can
 * find the highest rate at which the balancer loses nothing.
 * usage: udpflood 4|6 SRC DST DPORT COUNT ROUNDS [RATE]
 * Prints: sent=N seconds=S rate=R (datagrams per second of the whole run).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 8
#define PER_ADDRESS 50000

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The Internet checksum over bytes in network order (read byte by byte: no aliasing of other types). */
static uint32_t csum_add(uint32_t sum, const void *data, size_t len) {
  const uint8_t *p = data;
  for (; len > 1; len -= 2, p += 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (len) sum += (uint32_t)(p[0] << 8);
  return sum;
}

/* The folded complement, in network order. */
static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: %s 4|6 SRC DST DPORT COUNT ROUNDS [RATE]\n", argv[0]);
    return 2;
  }
  int v6 = strcmp(argv[1], "6") == 0;
  long count = atol(argv[5]), rounds = atol(argv[6]);
  double pace = argc == 8 ? atof(argv[7]) : 0;
  uint16_t dport = (uint16_t)atoi(argv[4]);
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct in_addr s4, d4;
  struct in6_addr s6, d6;
  if (v6 ? inet_pton(AF_INET6, argv[2], &s6) != 1 || inet_pton(AF_INET6, argv[3], &d6) != 1
         : inet_pton(AF_INET, argv[2], &s4) != 1 || inet_pton(AF_INET, argv[3], &d4) != 1) {
    fprintf(stderr, "bad address\n");
    return 2;
  }
  size_t hl = v6 ? sizeof(struct ip6_hdr) : sizeof(struct ip);
  size_t len = hl + sizeof(struct udphdr) + PAYLOAD;
  static uint8_t pkts[BATCH][128];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_addr = d4};
  struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_addr = d6};
  uint32_t pseudo6[2] = {0, 0};
  long sent = 0;
  double t0 = now();
  for (long r = 0; r < rounds; r++) {
    for (long i = 0; i < count;) {
      int n = 0;
      for (; n < BATCH && i < count; n++, i++) {
        uint8_t *p = pkts[n];
        memset(p, 0, len);
        struct udphdr *u = (struct udphdr *)(p + hl);
        u->source = htons((uint16_t)(10000 + i % PER_ADDRESS));
        u->dest = htons(dport);
        u->len = htons((uint16_t)(sizeof(struct udphdr) + PAYLOAD));
        memcpy(p + hl + sizeof(struct udphdr), "lbcbench", PAYLOAD);
        uint32_t sum = 0;
        if (v6) {
          struct ip6_hdr *h = (struct ip6_hdr *)p;
          h->ip6_flow = htonl(6u << 28);
          h->ip6_plen = u->len;
          h->ip6_nxt = IPPROTO_UDP;
          h->ip6_hlim = 64;
          h->ip6_src = s6;
          uint32_t low = ntohl(h->ip6_src.s6_addr32[3]) + (uint32_t)(i / PER_ADDRESS);
          h->ip6_src.s6_addr32[3] = htonl(low);
          h->ip6_dst = d6;
          sum = csum_add(sum, &h->ip6_src, 32);
          pseudo6[0] = htonl(sizeof(struct udphdr) + PAYLOAD);
          pseudo6[1] = htonl(IPPROTO_UDP);
          sum = csum_add(sum, pseudo6, sizeof pseudo6);
        } else {
          struct ip *h = (struct ip *)p;
          h->ip_v = 4;
          h->ip_hl = 5;
          h->ip_len = htons((uint16_t)len);
          h->ip_ttl = 64;
          h->ip_p = IPPROTO_UDP;
          h->ip_src.s_addr = htonl(ntohl(s4.s_addr) + (uint32_t)(i / PER_ADDRESS));
          h->ip_dst = d4;
          /* raw(7): the kernel fills in the IP checksum (and the id when 0). */
          uint32_t ph[3] = {h->ip_src.s_addr, h->ip_dst.s_addr, htonl((IPPROTO_UDP << 16) | (sizeof(struct udphdr) + PAYLOAD))};
          sum = csum_add(sum, ph, sizeof ph);
        }
        sum = csum_add(sum, u, sizeof(struct udphdr) + PAYLOAD);
        u->check = csum_fold(sum);
        if (u->check == 0) u->check = 0xffff;
        iov[n].iov_base = p;
        iov[n].iov_len = len;
        memset(&msgs[n], 0, sizeof msgs[n]);
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
        msgs[n].msg_hdr.msg_name = v6 ? (void *)&to6 : (void *)&to4;
        msgs[n].msg_hdr.msg_namelen = v6 ? sizeof to6 : sizeof to4;
      }
      int done = 0;
      while (done < n) {
        int k = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
        if (k < 0) {
          if (errno == ENOBUFS || errno == EAGAIN) {
            usleep(100);
            continue;
          }
          perror("sendmmsg");
          return 1;
        }
        done += k;
      }
      sent += n;
      if (pace > 0) {
        double due = t0 + sent / pace;
        for (double t = now(); t < due; t = now()) {
          struct timespec ts = {0, (long)((due - t) * 1e9)};
          nanosleep(&ts, NULL);
        }
      }
    }
  }
  double s = now() - t0;
  printf("sent=%ld seconds=%.3f rate=%.0f\n", sent, s, sent / s);
  return 0;
}
