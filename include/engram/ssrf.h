/* Outbound destination guard: which addresses and hosts outbound HTTP may reach (anti-SSRF). */
#ifndef ENGRAM_SSRF_H
#define ENGRAM_SSRF_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

typedef struct eg_ssrf_s eg_ssrf_t;

/* Parse an allow-list: comma-separated CIDRs ("127.0.0.0/8", "fd00::/8", a bare address means
 * one host) and host names (matched exactly, case-insensitively, against the URL host). NULL or
 * "" allows nothing extra. 0, or EG_EINVAL with errbuf naming the bad entry. */
int eg_ssrf_new(const char *allow, eg_ssrf_t **out, char *errbuf, size_t errlen);

/* Free an allow-list (NULL is fine). */
void eg_ssrf_free(eg_ssrf_t *s);

/* True if addr is in a range outbound requests must not reach by default: loopback, private,
 * link-local, CGNAT, cloud metadata, unspecified, multicast, broadcast, reserved, and the
 * IPv4-mapped/compatible/NAT64 IPv6 forms of the IPv4 ones. */
bool eg_ssrf_addr_forbidden(const struct sockaddr *addr);

/* True if the URL host (no brackets) is allow-listed by name. s may be NULL. */
bool eg_ssrf_host_allowed(const eg_ssrf_t *s, const char *host);

/* Decide one resolved address of host: 0 if it may be reached (allow-listed by host name or
 * CIDR, or not in a forbidden range), EG_ESSRF otherwise. s may be NULL (no allow-list). */
int eg_ssrf_check(const eg_ssrf_t *s, const char *host, const struct sockaddr *addr);

#endif
