/* SSRF guard: forbidden ranges, IPv4-mapped forms, allow-list by CIDR and by host name. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "engram/error.h"
#include "engram/ssrf.h"

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1, "%s", ip);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1, "%s", ip);
    }
    return ss;
}

static bool forbidden(const char *ip)
{
    struct sockaddr_storage ss = addr(ip);
    return eg_ssrf_addr_forbidden((struct sockaddr *)&ss);
}

Test(ssrf, forbidden_ranges)
{
    static const char *const bad[] = {
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd00:ec2::254",
        "fdff::1",
        "fe80::1",
        "febf::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "2001:db8::1",
        "192.0.2.1",
        "198.18.0.1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(forbidden(bad[i]), "%s must be forbidden", bad[i]);
}

Test(ssrf, public_addresses_allowed)
{
    static const char *const good[] = {
        "1.1.1.1",      "8.8.8.8",        "172.15.255.255",   "172.32.0.0",      "100.63.255.255",
        "100.128.0.0",  "169.253.0.1",    "11.0.0.1",         "223.255.255.255", "2606:4700::1111",
        "2a00:1450::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert_not(forbidden(good[i]), "%s must be allowed", good[i]);
}

Test(ssrf, allow_list_cidr_and_host)
{
    eg_ssrf_t *s = NULL;
    char err[128];
    struct sockaddr_storage lo = addr("127.0.0.1"), lo2 = addr("127.9.9.9"), ten = addr("10.1.2.3"),
                            mapped = addr("::ffff:127.0.0.1"), v6lo = addr("::1"),
                            ula = addr("fd12::5"), pub = addr("8.8.8.8");

    cr_assert_eq(eg_ssrf_new(" 127.0.0.0/8 , Internal.Example ,fd12::/16", &s, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&lo), 0);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&lo2), 0);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&mapped), 0, "mapped form of allowed");
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&v6lo), EG_ESSRF);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&ten), EG_ESSRF);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&ula), 0);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&pub), 0);
    /* Host names match exactly, case-insensitively, and then any address is fine. */
    cr_assert_eq(eg_ssrf_check(s, "internal.example", (struct sockaddr *)&ten), 0);
    cr_assert_eq(eg_ssrf_check(s, "INTERNAL.EXAMPLE", (struct sockaddr *)&ten), 0);
    cr_assert_eq(eg_ssrf_check(s, "a.internal.example", (struct sockaddr *)&ten), EG_ESSRF);
    cr_assert(eg_ssrf_host_allowed(s, "Internal.example"));
    cr_assert_not(eg_ssrf_host_allowed(s, "example"));
    eg_ssrf_free(s);

    /* A single address means /32. */
    cr_assert_eq(eg_ssrf_new("127.0.0.1", &s, err, sizeof(err)), 0);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&lo), 0);
    cr_assert_eq(eg_ssrf_check(s, "x", (struct sockaddr *)&lo2), EG_ESSRF);
    eg_ssrf_free(s);

    /* No allow-list at all. */
    cr_assert_eq(eg_ssrf_check(NULL, "x", (struct sockaddr *)&lo), EG_ESSRF);
    cr_assert_eq(eg_ssrf_check(NULL, "x", (struct sockaddr *)&pub), 0);
}

Test(ssrf, allow_list_errors)
{
    eg_ssrf_t *s = (eg_ssrf_t *)1;
    char err[128] = "";

    cr_assert_eq(eg_ssrf_new("10.0.0.0/33", &s, err, sizeof(err)), EG_EINVAL);
    cr_assert_null(s);
    cr_assert(strstr(err, "10.0.0.0/33"), "%s", err);
    cr_assert_eq(eg_ssrf_new("bad host!", &s, err, sizeof(err)), EG_EINVAL);
    cr_assert_eq(eg_ssrf_new("fe80::/129", &s, err, sizeof(err)), EG_EINVAL);
    cr_assert_eq(eg_ssrf_new("", &s, err, sizeof(err)), 0);
    eg_ssrf_free(s);
    cr_assert_eq(eg_ssrf_new(NULL, &s, err, sizeof(err)), 0);
    eg_ssrf_free(s);
    cr_assert_eq(eg_ssrf_new(" , ,", &s, err, sizeof(err)), 0);
    eg_ssrf_free(s);
}
