/* Redis URL parsing: redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N].
 *
 * The userinfo rule follows redis-cli: text before the first ':' is the user, the rest is the
 * password, and userinfo without ':' is a password alone. Both are percent-decoded so passwords
 * may contain '@', ':' or '/'. */
#include <ctype.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"

#define EG_REDIS_DEFAULT_PORT 6379
#define EG_REDIS_MAX_DB       15

/* The largest user, password or unix path buffer in eg_redis_url_t. */
#define EG_REDIS_URL_PART_MAX 256

_Static_assert(sizeof(((eg_redis_url_t *)0)->user) <= EG_REDIS_URL_PART_MAX, "user");
_Static_assert(sizeof(((eg_redis_url_t *)0)->password) <= EG_REDIS_URL_PART_MAX, "password");
_Static_assert(sizeof(((eg_redis_url_t *)0)->unix_path) <= EG_REDIS_URL_PART_MAX, "unix_path");

/* Percent-decode s[0..n) into out (size outsz, NUL-terminated) with eg_percent_decode, which
 * refuses a decoded NUL: the result is used as a C string. Each decoded byte takes one to three
 * input bytes, so an input over three times the room cannot fit and is refused unread. */
static int eg_url_decode(const char *s, size_t n, char *out, size_t outsz)
{
    char tmp[3 * EG_REDIS_URL_PART_MAX + 1];
    size_t len;
    int rc = EG_EINVAL;

    if (n > 3 * (outsz - 1))
        return EG_EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (eg_percent_decode(tmp, false, &len) != 0 || len >= outsz)
        goto done;
    memcpy(out, tmp, len + 1);
    rc = 0;
done:
    mbedtls_platform_zeroize(tmp, n + 1); /* it may hold a password */
    return rc;
}

/* Parse a decimal integer s[0..n) within [min, max]. */
static int eg_url_int(const char *s, size_t n, int min, int max, int *out)
{
    long v = 0;

    if (n == 0 || n > 6)
        return EG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return EG_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return EG_EINVAL;
    *out = (int)v;
    return 0;
}

/* Userinfo "[[user]:password]" in s[0..n). */
static int eg_url_userinfo(const char *s, size_t n, eg_redis_url_t *out)
{
    const char *colon = memchr(s, ':', n);

    if (colon != NULL) {
        size_t ulen = (size_t)(colon - s);

        if (eg_url_decode(s, ulen, out->user, sizeof(out->user)) != 0)
            return EG_EINVAL;
        s = colon + 1;
        n -= ulen + 1;
    }
    return eg_url_decode(s, n, out->password, sizeof(out->password));
}

/* unix:///path/to/sock[?db=N] (userinfo allowed: unix://:pass@/path). */
static int eg_url_parse_unix(const char *p, eg_redis_url_t *out)
{
    const char *at = strchr(p, '@');
    const char *q;
    size_t plen;

    if (at != NULL && at < p + strcspn(p, "/")) {
        if (eg_url_userinfo(p, (size_t)(at - p), out) != 0)
            return EG_EINVAL;
        p = at + 1;
    }
    if (p[0] != '/')
        return EG_EINVAL; /* the socket path must be absolute */
    q = strchr(p, '?');
    plen = q != NULL ? (size_t)(q - p) : strlen(p);
    if (plen < 2 || eg_url_decode(p, plen, out->unix_path, sizeof(out->unix_path)) != 0)
        return EG_EINVAL;
    if (q != NULL) {
        q++;
        if (strncmp(q, "db=", 3) != 0)
            return EG_EINVAL;
        if (eg_url_int(q + 3, strlen(q + 3), 0, EG_REDIS_MAX_DB, &out->db) != 0)
            return EG_EINVAL;
    }
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] */
static int eg_url_parse_tcp(const char *p, eg_redis_url_t *out)
{
    size_t auth_end = strcspn(p, "/?#");
    const char *at = NULL;
    const char *host, *hend, *rest;

    /* The last '@' before the path ends the userinfo, so an unencoded '@' in a password still
     * parses the way a human meant it. */
    for (const char *s = p; s < p + auth_end; s++)
        if (*s == '@')
            at = s;
    if (at != NULL) {
        if (eg_url_userinfo(p, (size_t)(at - p), out) != 0)
            return EG_EINVAL;
        p = at + 1;
    }

    if (p[0] == '[') {
        /* IPv6 literal: [::1]:6379 */
        host = p + 1;
        hend = strchr(host, ']');
        if (hend == NULL)
            return EG_EINVAL;
        rest = hend + 1;
    } else {
        host = p;
        hend = p + strcspn(p, ":/?#");
        rest = hend;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof(out->host))
        return EG_EINVAL;
    memcpy(out->host, host, (size_t)(hend - host));
    out->host[hend - host] = '\0';
    for (const char *s = out->host; *s; s++)
        if (*s == '@' || *s == '[' || *s == ']' || isspace((unsigned char)*s))
            return EG_EINVAL;

    out->port = EG_REDIS_DEFAULT_PORT;
    if (rest[0] == ':') {
        size_t n = strcspn(rest + 1, "/?#");

        if (eg_url_int(rest + 1, n, 1, 65535, &out->port) != 0)
            return EG_EINVAL;
        rest += 1 + n;
    }
    if (rest[0] == '/') {
        size_t n = strlen(rest + 1);

        /* "redis://host/" means db 0. */
        if (n > 0 && eg_url_int(rest + 1, n, 0, EG_REDIS_MAX_DB, &out->db) != 0)
            return EG_EINVAL;
        rest += 1 + n;
    }
    return rest[0] == '\0' ? 0 : EG_EINVAL;
}

int eg_redis_url_parse(const char *url, eg_redis_url_t *out)
{
    int rc = EG_EINVAL;

    if (out == NULL)
        return EG_EINVAL;
    memset(out, 0, sizeof(*out));
    if (url == NULL)
        goto fail;

    if (strncmp(url, "redis://", 8) == 0) {
        rc = eg_url_parse_tcp(url + 8, out);
    } else if (strncmp(url, "unix://", 7) == 0) {
        rc = eg_url_parse_unix(url + 7, out);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        /* Say why: a TLS URL silently treated as plain text would leak the password. */
        eg_log_error("redis url: rediss:// (TLS to Redis) is not supported yet; use redis:// "
                     "or unix://");
        rc = EG_EINVAL;
    } else {
        rc = EG_EINVAL;
    }
    if (rc != 0)
        goto fail;
    return 0;

fail:
    memset(out, 0, sizeof(*out));
    return EG_EINVAL;
}
