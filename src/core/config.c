/* engramd configuration. One table describes every setting (flag, environment variable, default,
 * range, help), so the defaults, both parsers, the error messages and --help cannot disagree. */
#include "engram/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"

const char *const eg_config_face_names[EG_FACE_COUNT] = {"hindsight", "fency", "faosx", "fiberwise",
                                                         "cadenya"};

typedef enum {
    EG_OPT_LISTEN,
    EG_OPT_REDIS_URL,
    EG_OPT_INT,
    EG_OPT_SIZE,
    EG_OPT_DURATION,
    EG_OPT_LEVEL,
    EG_OPT_BOOL,
    EG_OPT_CORS,
    EG_OPT_MOUNT,
    EG_OPT_NAME, /* "" or a name without control characters */
} eg_opt_kind_t;

typedef struct {
    const char *flag; /* without the leading "--" */
    const char *env;
    eg_opt_kind_t kind;
    size_t off;  /* field offset in eg_config_t */
    size_t cap;  /* buffer size, for string fields */
    int64_t min; /* inclusive range: count, bytes or milliseconds */
    int64_t max;
    const char *def; /* default in the same syntax a user would type; shown by --help */
    const char *metavar;
    const char *help;
} eg_opt_t;

#define EG_KIB        ((int64_t)1 << 10)
#define EG_MIB        ((int64_t)1 << 20)
#define EG_GIB        ((int64_t)1 << 30)
#define EG_DAY_MS     ((int64_t)24 * 3600 * 1000)
#define EG_OFF(field) offsetof(eg_config_t, field), sizeof(((eg_config_t *)0)->field)
#define EG_MOUNT_OFF(i)                                                                            \
    offsetof(eg_config_t, mount) + (i) * sizeof(((eg_config_t *)0)->mount[0]),                     \
        sizeof(((eg_config_t *)0)->mount[0])

static const eg_opt_t eg_opts[] = {
    {"listen", "ENGRAM_LISTEN", EG_OPT_LISTEN, EG_OFF(listen_host), 0, 65535, "127.0.0.1:8080",
     "ADDR", "Address to accept HTTP on: host:port, :port (all interfaces) or port."},
    {"redis-url", "ENGRAM_REDIS_URL", EG_OPT_REDIS_URL, EG_OFF(redis_url), 0, 0,
     "redis://127.0.0.1:6379/0", "URL",
     "Redis to use: redis://[user:password@]host[:port][/db] or unix:///path?db=N."},
    {"redis-pool", "ENGRAM_REDIS_POOL", EG_OPT_INT, EG_OFF(redis_pool), 1, 64, "4", "N",
     "Shared Redis command connections per process."},
    {"redis-timeout", "ENGRAM_REDIS_TIMEOUT", EG_OPT_DURATION, EG_OFF(redis_timeout_ms), 1,
     EG_DAY_MS, "5s", "DURATION", "Time limit for one Redis command."},
    {"redis-connect-timeout", "ENGRAM_REDIS_CONNECT_TIMEOUT", EG_OPT_DURATION,
     EG_OFF(redis_connect_timeout_ms), 1, EG_DAY_MS, "2s", "DURATION",
     "Time limit for connecting to Redis."},
    {"max-header-size", "ENGRAM_MAX_HEADER_SIZE", EG_OPT_SIZE, EG_OFF(max_header_bytes), 1,
     64 * EG_MIB, "16k", "SIZE", "Largest request header block (larger gets 431)."},
    {"max-body-size", "ENGRAM_MAX_BODY_SIZE", EG_OPT_SIZE, EG_OFF(max_body_bytes), 1, 1024 * EG_GIB,
     "10m", "SIZE", "Largest request body (larger gets 413)."},
    {"max-url-size", "ENGRAM_MAX_URL_SIZE", EG_OPT_SIZE, EG_OFF(max_url_bytes), 1, 64 * EG_MIB,
     "8k", "SIZE", "Longest request URL (longer gets 414)."},
    {"idle-timeout", "ENGRAM_IDLE_TIMEOUT", EG_OPT_DURATION, EG_OFF(idle_timeout_ms), 1, EG_DAY_MS,
     "60s", "DURATION", "Close keep-alive connections idle this long."},
    {"read-timeout", "ENGRAM_READ_TIMEOUT", EG_OPT_DURATION, EG_OFF(read_timeout_ms), 1, EG_DAY_MS,
     "30s", "DURATION", "Time limit for receiving a request's headers and body."},
    {"drain-timeout", "ENGRAM_DRAIN_TIMEOUT", EG_OPT_DURATION, EG_OFF(drain_timeout_ms), 0,
     EG_DAY_MS, "10s", "DURATION", "On shutdown, wait this long for in-flight requests."},
    {"max-connections", "ENGRAM_MAX_CONNECTIONS", EG_OPT_INT, EG_OFF(max_connections), 1, 1000000,
     "10000", "N", "Open client connections per process; more are refused."},
    {"max-pipeline", "ENGRAM_MAX_PIPELINE", EG_OPT_INT, EG_OFF(max_pipeline), 1, 4096, "64", "N",
     "In-flight pipelined requests per connection before reading pauses."},
    {"max-output-buffer", "ENGRAM_MAX_OUTPUT_BUFFER", EG_OPT_SIZE, EG_OFF(max_output_bytes), 1,
     1024 * EG_GIB, "1m", "SIZE", "Unsent response bytes per connection before reading pauses."},
    {"ws-ping-interval", "ENGRAM_WS_PING_INTERVAL", EG_OPT_DURATION, EG_OFF(ws_ping_ms), 100,
     EG_DAY_MS, "30s", "DURATION",
     "WebSocket server ping interval; a peer silent for 2.5 intervals is disconnected."},
    {"auth-cache-ttl", "ENGRAM_AUTH_CACHE_TTL", EG_OPT_DURATION, EG_OFF(auth_cache_ttl_ms), 0,
     EG_DAY_MS, "30s", "DURATION", "How long a verified API key is cached (0 disables)."},
    {"index-memory", "ENGRAM_INDEX_MEMORY", EG_OPT_SIZE, EG_OFF(index_memory_bytes), 0,
     1024 * EG_GIB, "1g", "SIZE",
     "Memory for the in-process indexes of memory banks; the least recently used banks are "
     "evicted past it (0 = no limit)."},
    {"log-level", "ENGRAM_LOG_LEVEL", EG_OPT_LEVEL, EG_OFF(log_level), 0, 0, "info", "LEVEL",
     "Least severe log level written: debug, info, warn, error or off."},
    {"access-log", "ENGRAM_ACCESS_LOG", EG_OPT_BOOL, EG_OFF(access_log), 0, 0, "on", "BOOL",
     "Log one line per request: on/off, true/false or 1/0."},
    {"cors-origins", "ENGRAM_CORS_ORIGINS", EG_OPT_CORS, EG_OFF(cors_origins), 0, 0, "*", "LIST",
     "Origins allowed by CORS: \"*\" or a comma-separated list."},
    {"mount-hindsight", "ENGRAM_MOUNT_HINDSIGHT", EG_OPT_MOUNT, EG_MOUNT_OFF(0), 0, 0, "/hindsight",
     "PREFIX", "Path prefix of the Hindsight API (\"/\" = root)."},
    {"mount-fency", "ENGRAM_MOUNT_FENCY", EG_OPT_MOUNT, EG_MOUNT_OFF(1), 0, 0, "/fency", "PREFIX",
     "Path prefix of the Fency API (\"/\" = root)."},
    {"mount-faosx", "ENGRAM_MOUNT_FAOSX", EG_OPT_MOUNT, EG_MOUNT_OFF(2), 0, 0, "/faosx", "PREFIX",
     "Path prefix of the FAOSX API (\"/\" = root)."},
    {"mount-fiberwise", "ENGRAM_MOUNT_FIBERWISE", EG_OPT_MOUNT, EG_MOUNT_OFF(3), 0, 0, "/fiberwise",
     "PREFIX", "Path prefix of the Fiberwise API (\"/\" = root)."},
    {"mount-cadenya", "ENGRAM_MOUNT_CADENYA", EG_OPT_MOUNT, EG_MOUNT_OFF(4), 0, 0, "/cadenya",
     "PREFIX", "Path prefix of the Cadenya API (\"/\" = root)."},
    {"anonymous-workspace", "ENGRAM_ANONYMOUS_WORKSPACE", EG_OPT_NAME, EG_OFF(anonymous_workspace),
     0, 0, "", "NAME",
     "Let requests without an API key to faces that allow it (Hindsight) act on this workspace "
     "(created if missing). Off when empty."},
};

/* ------------------------------------------------------------------------------------------------
 * Value parsers
 */

static bool eg_listen_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
}

int eg_config_parse_listen(eg_config_t *cfg, const char *s)
{
    char host[sizeof(cfg->listen_host)];
    const char *colon, *port_s, *h;
    size_t hlen;
    int64_t port;

    if (s == NULL || *s == '\0')
        return EG_EINVAL;
    if (*s == '[') {
        /* Bracketed IPv6 literal: [::1]:8080. */
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return EG_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        port_s = close + 2;
        if (hlen == 0)
            return EG_EINVAL;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            /* A bare port keeps whatever host is already configured. */
            h = cfg->listen_host;
            hlen = strlen(cfg->listen_host);
            port_s = s;
        } else if (colon == s) {
            /* ":port" listens on every interface, as Go and many proxies read it. */
            h = "0.0.0.0";
            hlen = strlen(h);
            port_s = colon + 1;
        } else {
            h = s;
            hlen = (size_t)(colon - s);
            port_s = colon + 1;
            if (memchr(h, ':', hlen) != NULL)
                return EG_EINVAL; /* unbracketed IPv6 is ambiguous */
        }
    }
    if (hlen >= sizeof(host))
        return EG_EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        if (!eg_listen_host_char(h[i]))
            return EG_EINVAL;
    }
    if (eg_parse_int64(port_s, 0, 65535, &port) != 0 || *port_s == '-')
        return EG_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(cfg->listen_host, host, hlen + 1);
    cfg->listen_port = (int)port;
    return 0;
}

static bool eg_prefix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '/' || c == '-';
}

int eg_config_normalize_prefix(const char *in, char *out, size_t outlen)
{
    size_t len, start, i, seg;

    if (in == NULL || out == NULL || outlen == 0)
        return EG_EINVAL;
    len = strlen(in);
    /* Trailing slashes carry no meaning for a prefix; "", "/" and "//" all mean root. */
    while (len > 0 && in[len - 1] == '/')
        len--;
    start = 0;
    if (len > 0 && in[0] == '/')
        start = 1;
    /* Only unreserved URL characters: anything else would need percent-encoding to match, and
     * '{' would be read as a route parameter once the prefix is joined to a template. */
    for (i = start; i < len; i++) {
        if (!eg_prefix_char(in[i]))
            return EG_EINVAL;
    }
    /* Empty, "." and ".." segments never survive client-side URL normalisation, so a prefix
     * containing one could never match a request. */
    seg = start;
    for (i = start; i <= len; i++) {
        if (i < len && in[i] != '/')
            continue;
        if (len > start) {
            size_t n = i - seg;

            if (n == 0 || (n == 1 && in[seg] == '.') ||
                (n == 2 && in[seg] == '.' && in[seg + 1] == '.'))
                return EG_EINVAL;
        }
        seg = i + 1;
    }
    if (len == 0) {
        out[0] = '\0';
        return 0;
    }
    if (len - start + 2 > outlen)
        return EG_EINVAL;
    out[0] = '/';
    memcpy(out + 1, in + start, len - start);
    out[len - start + 1] = '\0';
    return 0;
}

static int eg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"on", "true", "1", "yes"};
    static const char *const no[] = {"off", "false", "0", "no"};

    for (size_t i = 0; i < EG_ARRAY_SIZE(yes); i++) {
        if (eg_strcaseeq(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (eg_strcaseeq(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return EG_EINVAL;
}

static bool eg_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Apply one textual value to its field; EG_EINVAL if it does not parse or is out of range. */
static int eg_opt_apply(eg_config_t *cfg, const eg_opt_t *o, const char *val)
{
    char *field = (char *)cfg + o->off;
    int64_t i64;
    uint64_t u64;
    size_t sz;
    size_t len = strlen(val);

    switch (o->kind) {
    case EG_OPT_LISTEN:
        return eg_config_parse_listen(cfg, val);
    case EG_OPT_REDIS_URL:
        if (len >= o->cap || !(eg_has_prefix(val, "redis://") || eg_has_prefix(val, "unix://")))
            return EG_EINVAL;
        memcpy(field, val, len + 1);
        return 0;
    case EG_OPT_INT:
        if (eg_parse_int64(val, o->min, o->max, &i64) != 0)
            return EG_EINVAL;
        *(int *)field = (int)i64;
        return 0;
    case EG_OPT_SIZE:
        if (eg_parse_size(val, &sz) != 0 || sz < (uint64_t)o->min || sz > (uint64_t)o->max)
            return EG_EINVAL;
        *(size_t *)field = sz;
        return 0;
    case EG_OPT_DURATION:
        if (eg_parse_duration_ms(val, &u64) != 0 || u64 < (uint64_t)o->min ||
            u64 > (uint64_t)o->max)
            return EG_EINVAL;
        *(uint64_t *)field = u64;
        return 0;
    case EG_OPT_LEVEL:
        return eg_log_parse_level(val, (eg_log_level_t *)field);
    case EG_OPT_BOOL:
        return eg_parse_bool(val, (bool *)field);
    case EG_OPT_CORS:
        /* The value ends up in a response header: control characters would allow injection. */
        if (len == 0 || len >= o->cap)
            return EG_EINVAL;
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
                return EG_EINVAL;
        }
        memcpy(field, val, len + 1);
        return 0;
    case EG_OPT_MOUNT:
        return eg_config_normalize_prefix(val, field, o->cap);
    case EG_OPT_NAME:
        if (len >= o->cap)
            return EG_EINVAL;
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
                return EG_EINVAL;
        }
        memcpy(field, val, len + 1);
        return 0;
    }
    return EG_EINVAL;
}

/* ------------------------------------------------------------------------------------------------
 * Error messages
 */

/* Render a byte count in the largest unit that divides it exactly (what a user would type). */
static void eg_fmt_size(int64_t v, char *out, size_t outlen)
{
    static const char units[] = "kmgt";
    int u = -1;

    while (u < 3 && v != 0 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, outlen, "%lld", (long long)v);
    else
        snprintf(out, outlen, "%lld%c", (long long)v, units[u]);
}

static void eg_fmt_duration(int64_t ms, char *out, size_t outlen)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, outlen, "%lldh", (long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%lldm", (long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, outlen, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, outlen, "%lldms", (long long)ms);
}

static void eg_opt_expect(const eg_opt_t *o, char *out, size_t outlen)
{
    char lo[32], hi[32];

    switch (o->kind) {
    case EG_OPT_LISTEN:
        snprintf(out, outlen, "host:port, :port or port, with port 0..65535");
        break;
    case EG_OPT_REDIS_URL:
        snprintf(out, outlen, "a redis:// or unix:// URL shorter than %zu bytes", o->cap);
        break;
    case EG_OPT_INT:
        snprintf(out, outlen, "an integer from %lld to %lld", (long long)o->min, (long long)o->max);
        break;
    case EG_OPT_SIZE:
        eg_fmt_size(o->min, lo, sizeof(lo));
        eg_fmt_size(o->max, hi, sizeof(hi));
        snprintf(out, outlen, "a size such as 16k or 10m (k/m/g are binary), from %s to %s", lo,
                 hi);
        break;
    case EG_OPT_DURATION:
        eg_fmt_duration(o->min, lo, sizeof(lo));
        eg_fmt_duration(o->max, hi, sizeof(hi));
        snprintf(out, outlen,
                 "a duration such as 500ms, 30s, 5m or 1h (bare numbers are seconds), from %s to "
                 "%s",
                 lo, hi);
        break;
    case EG_OPT_LEVEL:
        snprintf(out, outlen, "one of debug, info, warn, error, off");
        break;
    case EG_OPT_BOOL:
        snprintf(out, outlen, "one of on, off, true, false, 1, 0");
        break;
    case EG_OPT_CORS:
        snprintf(out, outlen,
                 "\"*\" or a comma-separated list of origins, no control characters, "
                 "shorter than %zu bytes",
                 o->cap);
        break;
    case EG_OPT_MOUNT:
        snprintf(out, outlen,
                 "a path prefix of A-Z a-z 0-9 . _ ~ - / without empty, \".\" or \"..\" segments, "
                 "shorter than %zu bytes",
                 o->cap - 1);
        break;
    case EG_OPT_NAME:
        snprintf(out, outlen, "a name without control characters, shorter than %zu bytes", o->cap);
        break;
    }
}

/* Quote a user value for an error message: bounded, non-printables shown as '?', and a Redis
 * URL's credentials masked so a typo does not print the password to the logs. */
static void eg_quote_value(const eg_opt_t *o, const char *val, char *out, size_t outlen)
{
    const char *scheme = o->kind == EG_OPT_REDIS_URL ? strstr(val, "://") : NULL;
    const char *at = scheme != NULL ? strrchr(val, '@') : NULL;
    const char *p = val;
    size_t w = 0;

    while (*p != '\0') {
        if (w + 4 >= outlen) {
            memcpy(out + w, "...", 3);
            w += 3;
            break;
        }
        if (at != NULL && at > scheme && p == scheme + 3) {
            memcpy(out + w, "***", 3);
            w += 3;
            p = at;
            at = NULL;
            continue;
        }
        out[w++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
        p++;
    }
    out[w] = '\0';
}

static void eg_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void eg_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static int eg_opt_set(eg_config_t *cfg, const eg_opt_t *o, const char *source, const char *val,
                      char *errbuf, size_t errlen)
{
    char expect[256];
    char quoted[160];

    if (eg_opt_apply(cfg, o, val) == 0)
        return 0;
    eg_opt_expect(o, expect, sizeof(expect));
    eg_quote_value(o, val, quoted, sizeof(quoted));
    eg_errf(errbuf, errlen, "%s: invalid value \"%s\": expected %s", source, quoted, expect);
    return EG_EINVAL;
}

/* Two faces on one prefix would make the router's choice arbitrary. */
static int eg_config_check_mounts(const eg_config_t *cfg, const char *how, char *errbuf,
                                  size_t errlen)
{
    for (int i = 0; i < EG_FACE_COUNT; i++) {
        for (int j = i + 1; j < EG_FACE_COUNT; j++) {
            if (strcmp(cfg->mount[i], cfg->mount[j]) != 0)
                continue;
            eg_errf(errbuf, errlen,
                    "%s: faces %s and %s are both mounted at \"%s\"; give each its own prefix", how,
                    eg_config_face_names[i], eg_config_face_names[j],
                    cfg->mount[i][0] != '\0' ? cfg->mount[i] : "/");
            return EG_EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Sources
 */

void eg_config_defaults(eg_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < EG_ARRAY_SIZE(eg_opts); i++) {
        /* The defaults are written in user syntax so --help shows exactly what applies; failing
         * to parse one is a bug in the table above. */
        if (eg_opt_apply(cfg, &eg_opts[i], eg_opts[i].def) != 0)
            abort();
    }
}

static const char *eg_config_getenv(const char *name)
{
    return getenv(name);
}

int eg_config_from_env(eg_config_t *cfg, const char *(*get)(const char *name), char *errbuf,
                       size_t errlen)
{
    int rc;

    if (get == NULL)
        get = eg_config_getenv;
    for (size_t i = 0; i < EG_ARRAY_SIZE(eg_opts); i++) {
        const eg_opt_t *o = &eg_opts[i];
        const char *val = get(o->env);

        /* An empty variable is treated as unset (env files often carry "NAME=" lines), except
         * for mounts, where "" is the documented way to say root. */
        if (val == NULL || (val[0] == '\0' && o->kind != EG_OPT_MOUNT))
            continue;
        rc = eg_opt_set(cfg, o, o->env, val, errbuf, errlen);
        if (rc != 0)
            goto fail;
    }
    rc = eg_config_check_mounts(cfg, "ENGRAM_MOUNT_*", errbuf, errlen);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    return rc;
}

static const eg_opt_t *eg_opt_by_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < EG_ARRAY_SIZE(eg_opts); i++) {
        if (strlen(eg_opts[i].flag) == len && memcmp(eg_opts[i].flag, name, len) == 0)
            return &eg_opts[i];
    }
    return NULL;
}

int eg_config_from_args(eg_config_t *cfg, int argc, char **argv, int first, char *errbuf,
                        size_t errlen)
{
    char source[64];

    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq, *val;
        const eg_opt_t *o;
        size_t nlen;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return 1;
        if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--") == 0) {
            eg_errf(errbuf, errlen, "unexpected argument \"%s\" (see --help)", arg);
            goto fail;
        }
        if (arg[1] != '-') {
            eg_errf(errbuf, errlen, "unknown flag \"%s\" (see --help)", arg);
            goto fail;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (nlen == 4 && memcmp(name, "help", 4) == 0) {
            eg_errf(errbuf, errlen, "--help takes no value");
            goto fail;
        }
        o = eg_opt_by_flag(name, nlen);
        if (o == NULL) {
            eg_errf(errbuf, errlen, "unknown flag \"--%.*s\" (see --help)", (int)EG_MIN(nlen, 64),
                    name);
            goto fail;
        }
        if (eq != NULL) {
            val = eq + 1;
        } else {
            /* A following flag is never a value: "--listen --redis-url x" is a missing value. */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                eg_errf(errbuf, errlen, "--%s requires a value (%s)", o->flag, o->metavar);
                goto fail;
            }
            val = argv[++i];
        }
        snprintf(source, sizeof(source), "--%s", o->flag);
        if (eg_opt_set(cfg, o, source, val, errbuf, errlen) != 0)
            goto fail;
    }
    if (eg_config_check_mounts(cfg, "--mount-*", errbuf, errlen) != 0)
        goto fail;
    return 0;

fail:
    return EG_EINVAL;
}

void eg_config_usage(FILE *out)
{
    fprintf(out, "Usage: engramd serve [flags]\n"
                 "\n"
                 "Every flag can also be set by the environment variable shown. Flags override\n"
                 "environment variables, which override the defaults. Flags take \"--flag value\"\n"
                 "or \"--flag=value\". Sizes accept k/m/g suffixes (binary units); durations\n"
                 "accept ms/s/m/h suffixes, and a bare number means seconds.\n"
                 "\n"
                 "Flags:\n");
    for (size_t i = 0; i < EG_ARRAY_SIZE(eg_opts); i++) {
        const eg_opt_t *o = &eg_opts[i];

        fprintf(out, "  --%s %s\n      %s\n      env %s, default %s\n", o->flag, o->metavar,
                o->help, o->env, o->def);
    }
    fprintf(out, "  -h, --help\n      Show this help and exit.\n");
}
