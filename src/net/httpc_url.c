/* Outbound HTTP client: options (defaults and ENGRAM_OUTBOUND_* settings) and URL parsing. */
#include "httpc_int.h"

/* ---- options ---------------------------------------------------------------------------- */

void eg_httpc_opts_default(eg_httpc_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 10000;
    o->header_timeout_ms = 60000;
    o->total_timeout_ms = 300000;
    o->idle_timeout_ms = 30000;
    o->max_response_bytes = 10u << 20;
    o->max_header_bytes = 64u << 10;
    o->max_redirects = 5;
    o->max_idle_per_origin = 8;
    o->max_conns_per_origin = 16;
    o->system_ca_file = EG_HTTPC_SYSTEM_CA;
}

static const char *env_get(const char *(*get)(const char *), const char *name)
{
    const char *v = get ? get(name) : getenv(name);
    return v && *v ? v : NULL;
}

int eg_httpc_opts_from_env(eg_httpc_opts_t *o, const char *(*get)(const char *name), char *errbuf,
                           size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        char kind; /* d = duration, s = size, i = int */
        int64_t min, max;
    } vars[] = {
        {"ENGRAM_OUTBOUND_CONNECT_TIMEOUT", offsetof(eg_httpc_opts_t, connect_timeout_ms), 'd', 1,
         0},
        {"ENGRAM_OUTBOUND_HEADER_TIMEOUT", offsetof(eg_httpc_opts_t, header_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_TIMEOUT", offsetof(eg_httpc_opts_t, total_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_IDLE_TIMEOUT", offsetof(eg_httpc_opts_t, idle_timeout_ms), 'd', 1, 0},
        {"ENGRAM_OUTBOUND_MAX_RESPONSE_SIZE", offsetof(eg_httpc_opts_t, max_response_bytes), 's', 1,
         0},
        {"ENGRAM_OUTBOUND_MAX_REDIRECTS", offsetof(eg_httpc_opts_t, max_redirects), 'i', 0, 20},
        {"ENGRAM_OUTBOUND_POOL_IDLE", offsetof(eg_httpc_opts_t, max_idle_per_origin), 'i', 0, 1024},
        {"ENGRAM_OUTBOUND_POOL_MAX", offsetof(eg_httpc_opts_t, max_conns_per_origin), 'i', 1, 4096},
    };
    const char *v;

    for (size_t i = 0; i < EG_ARRAY_SIZE(vars); i++) {
        char *field = (char *)o + vars[i].off;
        uint64_t ms;
        size_t sz;
        int64_t n;

        if (!(v = env_get(get, vars[i].name)))
            continue;
        if (vars[i].kind == 'd' && eg_parse_duration_ms(v, &ms) == 0 && ms > 0) {
            memcpy(field, &ms, sizeof(ms));
        } else if (vars[i].kind == 's' && eg_parse_size(v, &sz) == 0) {
            memcpy(field, &sz, sizeof(sz));
        } else if (vars[i].kind == 'i' && eg_parse_int64(v, vars[i].min, vars[i].max, &n) == 0) {
            int iv = (int)n;
            memcpy(field, &iv, sizeof(iv));
        } else {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "%s: invalid value \"%s\"", vars[i].name, v);
            return EG_EINVAL;
        }
    }
    if ((v = env_get(get, "ENGRAM_OUTBOUND_CA_FILE")))
        o->extra_ca_file = v;
    if ((v = env_get(get, "ENGRAM_OUTBOUND_ALLOW")))
        o->allow = v;
    return 0;
}

/* ---- URLs ------------------------------------------------------------------------------- */

/* Length of "scheme:" at the start of s, or 0 (RFC 3986 §3.1). */
static size_t scheme_len(const char *s)
{
    size_t i = 0;

    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i + 1 : 0;
}

/* Parse an absolute http(s) URL into u (strings in a). Fragments are dropped. Anything but a
 * plain ASCII URL is refused: the request line must not carry bytes the server would read
 * differently from us. */
int eg__hc_url_parse(const char *s, eg_url_t *u, eg_arena_t *a)
{
    const char *auth, *end, *host, *hend, *p;
    size_t slen = strcspn(s, "#");
    int64_t port;

    memset(u, 0, sizeof(*u));
    for (p = s; p < s + slen; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return EG_EINVAL;
    }
    if (strncasecmp(s, "http://", 7) == 0) {
        auth = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        auth = s + 8;
    } else {
        return scheme_len(s) ? EG_ESSRF : EG_EINVAL;
    }
    end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return EG_ESSRF; /* credentials in URLs leak into logs and redirects; use headers */
    host = auth;
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (!hend)
            return EG_EINVAL;
        for (p = host + 1; p < hend; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return EG_EINVAL;
        }
        u->host = eg_arena_strndup(a, host + 1, (size_t)(hend - host - 1));
        p = hend + 1;
    } else {
        hend = host;
        while (hend < end && *hend != ':')
            hend++;
        for (p = host; p < hend; p++) {
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
                return EG_EINVAL;
        }
        u->host = eg_arena_strndup(a, host, (size_t)(hend - host));
        p = hend;
    }
    if (u->host[0] == '\0')
        return EG_EINVAL;
    for (char *h = u->host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    u->port = u->tls ? 443 : 80;
    if (p < end) {
        char num[8];
        if (*p != ':' || end - p - 1 < 1 || end - p - 1 > 5)
            return EG_EINVAL;
        memcpy(num, p + 1, (size_t)(end - p - 1));
        num[end - p - 1] = '\0';
        if (eg_parse_int64(num, 1, 65535, &port) != 0)
            return EG_EINVAL;
        u->port = (int)port;
    }
    {
        bool v6 = strchr(u->host, ':') != NULL;
        bool dflt = u->port == (u->tls ? 443 : 80);
        u->hostport = dflt ? eg_arena_printf(a, v6 ? "[%s]" : "%s", u->host)
                           : eg_arena_printf(a, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    }
    if (*end == '/')
        u->target = eg_arena_strndup(a, end, (size_t)(s + slen - end));
    else
        u->target = eg_arena_printf(a, "/%.*s", (int)(s + slen - end), end);
    u->href = eg_arena_printf(a, "%s://%s%s", u->tls ? "https" : "http", u->hostport, u->target);
    return 0;
}

int eg_httpc_url_check(const char *url)
{
    eg_arena_t a;
    eg_url_t u;
    int rc;

    eg_arena_init(&a);
    rc = eg__hc_url_parse(url, &u, &a);
    eg_arena_destroy(&a);
    return rc;
}

/* Resolve a Location value against the URL it came from (RFC 3986 §5.2, without dot-segment
 * removal, which the server that sent the reference can handle itself). */
char *eg__hc_url_resolve(const eg_url_t *base, const char *loc, eg_arena_t *a)
{
    const char *scheme = base->tls ? "https" : "http";

    if (scheme_len(loc))
        return eg_arena_strdup(a, loc);
    if (loc[0] == '/' && loc[1] == '/')
        return eg_arena_printf(a, "%s:%s", scheme, loc);
    if (loc[0] == '/')
        return eg_arena_printf(a, "%s://%s%s", scheme, base->hostport, loc);
    if (loc[0] == '?') {
        size_t plen = strcspn(base->target, "?");
        return eg_arena_printf(a, "%s://%s%.*s%s", scheme, base->hostport, (int)plen, base->target,
                               loc);
    }
    {
        size_t plen = strcspn(base->target, "?");
        const char *slash = base->target;
        for (size_t i = 0; i < plen; i++) {
            if (base->target[i] == '/')
                slash = base->target + i;
        }
        return eg_arena_printf(a, "%s://%s%.*s%s", scheme, base->hostport,
                               (int)(slash - base->target + 1), base->target, loc);
    }
}

/* RFC 6761 §6.4: ".invalid" names never resolve, and resolvers should say so without asking
 * anyone; answering here keeps such lookups (tests use them) off the network. */
bool eg__hc_host_is_invalid_tld(const char *host)
{
    size_t n = strlen(host);

    if (n && host[n - 1] == '.')
        n--;
    if (n == 7 && strncmp(host, "invalid", 7) == 0)
        return true;
    return n > 8 && strncmp(host + n - 8, ".invalid", 8) == 0;
}
