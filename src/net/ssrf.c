/* Outbound destination guard. Outbound requests (webhooks, URL fetches, tool calls) go to URLs
 * that tenants choose, so without a guard any tenant could make engram reach services that only
 * trust the local network: Redis, cloud metadata endpoints, admin consoles. The HTTP client checks
 * every resolved address (and every redirect hop) here, after DNS, and connects to exactly the
 * address it checked, so a name that re-resolves differently cannot slip through. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/ssrf.h"
#include "engram/util.h"

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} eg_cidr_t;

struct eg_ssrf_s {
    eg_cidr_t *cidrs;
    size_t ncidrs;
    char **hosts; /* lowercase */
    size_t nhosts;
};

typedef struct {
    uint8_t net[4];
    unsigned prefix;
} eg_v4range_t;

/* IPv4 ranges never reached unless allow-listed (RFC 6890 special-purpose registry, trimmed to
 * what is not routable on the public internet or is known to front internal services). */
static const eg_v4range_t forbidden_v4[] = {
    {{0, 0, 0, 0}, 8},       /* "this network", includes the unspecified address */
    {{10, 0, 0, 0}, 8},      /* private */
    {{100, 64, 0, 0}, 10},   /* carrier-grade NAT (also some clouds' metadata) */
    {{127, 0, 0, 0}, 8},     /* loopback */
    {{169, 254, 0, 0}, 16},  /* link-local, includes the 169.254.169.254 metadata service */
    {{172, 16, 0, 0}, 12},   /* private */
    {{192, 0, 0, 0}, 24},    /* IETF protocol assignments */
    {{192, 0, 2, 0}, 24},    /* documentation */
    {{192, 88, 99, 0}, 24},  /* 6to4 relay anycast */
    {{192, 168, 0, 0}, 16},  /* private */
    {{198, 18, 0, 0}, 15},   /* benchmarking */
    {{198, 51, 100, 0}, 24}, /* documentation */
    {{203, 0, 113, 0}, 24},  /* documentation */
    {{224, 0, 0, 0}, 4},     /* multicast */
    {{240, 0, 0, 0}, 4},     /* reserved, includes broadcast 255.255.255.255 */
};

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static bool v4_forbidden(const uint8_t *a)
{
    for (size_t i = 0; i < EG_ARRAY_SIZE(forbidden_v4); i++) {
        if (prefix_match(a, forbidden_v4[i].net, forbidden_v4[i].prefix))
            return true;
    }
    return false;
}

/* The IPv4 address an IPv6 address stands for, if it embeds one that a stack or a gateway would
 * reach: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated but still routed
 * by some stacks), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::). */
static bool v6_embedded_v4(const uint8_t *a, uint8_t out[4])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t compat[12] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(a, mapped, 12) == 0 || memcmp(a, compat, 12) == 0 || memcmp(a, nat64, 12) == 0) {
        memcpy(out, a + 12, 4);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(out, a + 2, 4);
        return true;
    }
    return false;
}

static bool v6_forbidden(const uint8_t *a)
{
    static const struct {
        uint8_t net[16];
        unsigned prefix;
    } ranges[] = {
        {{0, 0x64, 0xff, 0x9b, 0, 1}, 48}, /* local-use NAT64 */
        {{0x01, 0x00}, 64},                /* discard-only */
        {{0x20, 0x01, 0, 0}, 32},          /* Teredo: tunnels to an address we cannot vet */
        {{0x20, 0x01, 0x0d, 0xb8}, 32},    /* documentation */
        {{0xfc}, 7},                       /* unique local, includes fd00:ec2::254 metadata */
        {{0xfe, 0x80}, 10},                /* link-local */
        {{0xfe, 0xc0}, 10},                /* site-local (deprecated) */
        {{0xff}, 8},                       /* multicast */
    };
    uint8_t v4[4];

    /* ::, ::1 and every form embedding an IPv4 address are judged by that address: :: embeds
     * 0.0.0.0 and ::1 embeds 0.0.0.1, both in 0.0.0.0/8. */
    if (v6_embedded_v4(a, v4))
        return v4_forbidden(v4);
    for (size_t i = 0; i < EG_ARRAY_SIZE(ranges); i++) {
        if (prefix_match(a, ranges[i].net, ranges[i].prefix))
            return true;
    }
    return false;
}

bool eg_ssrf_addr_forbidden(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return v4_forbidden((const uint8_t *)&in->sin_addr);
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        return v6_forbidden(in6->sin6_addr.s6_addr);
    }
    return true; /* unix sockets and anything else are never outbound destinations */
}

/* ---- allow-list ------------------------------------------------------------------------- */

static int parse_cidr(const char *s, eg_cidr_t *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    int64_t prefix;

    if (alen == 0 || alen >= sizeof(addr))
        return EG_EINVAL;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        return EG_EINVAL;
    out->prefix = out->family == AF_INET ? 32 : 128;
    if (slash) {
        if (eg_parse_int64(slash + 1, 0, out->prefix, &prefix) != 0)
            return EG_EINVAL;
        out->prefix = (unsigned)prefix;
    }
    return 0;
}

static bool valid_hostname(const char *s)
{
    if (*s == '\0' || strlen(s) > 253)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return false;
    }
    return true;
}

int eg_ssrf_new(const char *allow, eg_ssrf_t **out, char *errbuf, size_t errlen)
{
    eg_ssrf_t *s = eg_xcalloc(1, sizeof(*s));
    char *copy = eg_xstrdup(allow ? allow : "");
    char *save = NULL, *tok;
    int rc = 0;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        eg_cidr_t cidr;

        while (isspace((unsigned char)*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (parse_cidr(tok, &cidr) == 0) {
            s->cidrs = eg_xrealloc(s->cidrs, (s->ncidrs + 1) * sizeof(*s->cidrs));
            s->cidrs[s->ncidrs++] = cidr;
        } else if (!strchr(tok, '/') && !strchr(tok, ':') && valid_hostname(tok)) {
            for (char *p = tok; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            s->hosts = eg_xrealloc(s->hosts, (s->nhosts + 1) * sizeof(*s->hosts));
            s->hosts[s->nhosts++] = eg_xstrdup(tok);
        } else {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "invalid allow-list entry \"%s\"", tok);
            rc = EG_EINVAL;
            goto fail;
        }
    }
    free(copy);
    *out = s;
    return 0;

fail:
    free(copy);
    eg_ssrf_free(s);
    *out = NULL;
    return rc;
}

void eg_ssrf_free(eg_ssrf_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nhosts; i++)
        free(s->hosts[i]);
    free(s->hosts);
    free(s->cidrs);
    free(s);
}

bool eg_ssrf_host_allowed(const eg_ssrf_t *s, const char *host)
{
    if (!s || !host)
        return false;
    for (size_t i = 0; i < s->nhosts; i++) {
        if (eg_strcaseeq(s->hosts[i], host))
            return true;
    }
    return false;
}

static bool cidr_allowed(const eg_ssrf_t *s, const struct sockaddr *addr)
{
    uint8_t a[16];
    int family;

    if (addr->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(a, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        /* An IPv4-mapped address is the IPv4 host itself, so IPv4 entries apply to it. */
        if (memcmp(b, mapped, 12) == 0) {
            family = AF_INET;
            memcpy(a, b + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(a, b, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < s->ncidrs; i++) {
        if (s->cidrs[i].family == family && prefix_match(a, s->cidrs[i].addr, s->cidrs[i].prefix))
            return true;
    }
    return false;
}

int eg_ssrf_check(const eg_ssrf_t *s, const char *host, const struct sockaddr *addr)
{
    if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
        return EG_ESSRF;
    if (s && (eg_ssrf_host_allowed(s, host) || cidr_allowed(s, addr)))
        return 0;
    return eg_ssrf_addr_forbidden(addr) ? EG_ESSRF : 0;
}
