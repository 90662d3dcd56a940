/* Process metrics in the Prometheus text exposition format. Everything is touched only from the
 * loop thread, so there are no locks or atomics. Labelled series live in small open-addressing
 * tables keyed by their rendered label string; routes are templates, never raw paths, so the
 * number of series stays bounded by the route table. */
#include "engram/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/log.h"
#include "engram/util.h"

/* Upper bounds (seconds) shared by the HTTP and Redis latency histograms. */
static const double eg_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define EG_NBUCKETS (sizeof(eg_buckets) / sizeof(eg_buckets[0]))

typedef struct {
    uint64_t buckets[EG_NBUCKETS]; /* per-bucket counts; made cumulative when rendered */
    uint64_t count;
    double sum;
} eg_hist_t;

typedef struct {
    char *key;  /* rendered labels (route="..",method="..") or, for named gauges, the name */
    char *help; /* named gauges only */
    uint64_t hash;
    uint64_t count;
    double value;
    eg_hist_t hist;
} eg_series_t;

/* Series are kept in insertion order (so output is stable) with a slot index over them. */
typedef struct {
    eg_series_t *items;
    size_t n, cap;
    uint32_t *slots; /* 0 = empty, else item index + 1 */
    size_t nslots;   /* power of two */
} eg_family_t;

static eg_family_t eg_http_requests;  /* {route,method,status} -> count */
static eg_family_t eg_http_durations; /* {route,method} -> hist */
static eg_family_t eg_gauges;         /* name -> value, help */
static eg_hist_t eg_redis_hist;
static uint64_t eg_redis_commands;
static uint64_t eg_redis_errors;
static int64_t eg_conns_open;
static uint64_t eg_conns_rejected;

static uint64_t eg_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void eg_family_rehash(eg_family_t *f, size_t nslots)
{
    free(f->slots);
    f->slots = eg_xcalloc(nslots, sizeof(*f->slots));
    f->nslots = nslots;
    for (size_t i = 0; i < f->n; i++) {
        size_t s = (size_t)f->items[i].hash & (nslots - 1);

        while (f->slots[s] != 0)
            s = (s + 1) & (nslots - 1);
        f->slots[s] = (uint32_t)(i + 1);
    }
}

/* Find the series for key, creating a zeroed one on first use. */
static eg_series_t *eg_family_get(eg_family_t *f, const char *key, size_t klen)
{
    uint64_t h = eg_hash(key, klen);
    eg_series_t *it;
    size_t s;

    if (f->nslots == 0)
        eg_family_rehash(f, 16);
    for (s = (size_t)h & (f->nslots - 1); f->slots[s] != 0; s = (s + 1) & (f->nslots - 1)) {
        it = &f->items[f->slots[s] - 1];
        if (it->hash == h && strncmp(it->key, key, klen) == 0 && it->key[klen] == '\0')
            return it;
    }
    if (f->n == f->cap) {
        f->cap = f->cap != 0 ? f->cap * 2 : 16;
        f->items = eg_xrealloc(f->items, f->cap * sizeof(*f->items));
    }
    it = &f->items[f->n++];
    memset(it, 0, sizeof(*it));
    it->key = eg_xstrndup(key, klen);
    it->hash = h;
    f->slots[s] = (uint32_t)f->n;
    /* Keep the load factor under 1/2 so probe sequences stay short. */
    if (f->n * 2 > f->nslots)
        eg_family_rehash(f, f->nslots * 2);
    return it;
}

static void eg_family_free(eg_family_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].key);
        free(f->items[i].help);
    }
    free(f->items);
    free(f->slots);
    memset(f, 0, sizeof(*f));
}

static void eg_hist_observe(eg_hist_t *h, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0; /* negative or NaN from a clock hiccup */
    for (size_t i = 0; i < EG_NBUCKETS; i++) {
        if (seconds <= eg_buckets[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

/* Label values may hold anything a client sent (a method, say); the format requires escaping
 * backslash, double quote and newline. */
static void eg_label(eg_buf_t *b, const char *name, const char *value, bool first)
{
    const char *p = value != NULL ? value : "";

    eg_buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (; *p != '\0'; p++) {
        if (*p == '\\')
            eg_buf_append(b, "\\\\", 2);
        else if (*p == '"')
            eg_buf_append(b, "\\\"", 2);
        else if (*p == '\n')
            eg_buf_append(b, "\\n", 2);
        else
            eg_buf_append(b, p, 1);
    }
    eg_buf_append(b, "\"", 1);
}

/* Most requests repeat a (route, method, status) seen before: a small direct-mapped memo of
 * series indexes keeps label rendering and hashing off the per-request path. Entries are
 * verified by content, so callers may pass any string. */
typedef struct {
    char route[128];
    char method[16];
    int status;
    uint32_t dur, req; /* item index + 1 in each family; 0 = empty */
} eg_http_memo_t;

static eg_http_memo_t eg_memo[256];

static void eg_metrics_http_slow(const char *route, const char *method, int status,
                                 eg_http_memo_t *memo)
{
    eg_buf_t key = EG_BUF_INIT;
    eg_series_t *s;
    char st[16];
    size_t base;

    snprintf(st, sizeof(st), "%d", status);
    eg_label(&key, "route", route, true);
    eg_label(&key, "method", method, false);
    base = key.len;
    s = eg_family_get(&eg_http_durations, key.data, base);
    memo->dur = (uint32_t)(s - eg_http_durations.items) + 1;
    eg_label(&key, "status", st, false);
    s = eg_family_get(&eg_http_requests, key.data, key.len);
    memo->req = (uint32_t)(s - eg_http_requests.items) + 1;
    eg_buf_free(&key);
}

void eg_metrics_http(const char *route, const char *method, int status, double seconds)
{
    eg_http_memo_t *memo;
    uint64_t h;

    if (route == NULL)
        route = "unmatched";
    if (method == NULL)
        method = "";
    h = eg_hash(route, strlen(route)) ^ ((uint64_t)(unsigned char)method[0] << 8) ^
        (uint64_t)status * 2654435761u;
    memo = &eg_memo[h & (EG_ARRAY_SIZE(eg_memo) - 1)];
    if (memo->dur == 0 || memo->status != status || strcmp(memo->route, route) != 0 ||
        strcmp(memo->method, method) != 0) {
        if (strlen(route) < sizeof(memo->route) && strlen(method) < sizeof(memo->method)) {
            eg_metrics_http_slow(route, method, status, memo);
            strcpy(memo->route, route);
            strcpy(memo->method, method);
            memo->status = status;
        } else {
            /* Too long to memoise: still counted, just without the shortcut. */
            eg_http_memo_t tmp;

            eg_metrics_http_slow(route, method, status, &tmp);
            eg_hist_observe(&eg_http_durations.items[tmp.dur - 1].hist, seconds);
            eg_http_requests.items[tmp.req - 1].count++;
            return;
        }
    }
    eg_hist_observe(&eg_http_durations.items[memo->dur - 1].hist, seconds);
    eg_http_requests.items[memo->req - 1].count++;
}

void eg_metrics_redis(double seconds, bool error)
{
    eg_redis_commands++;
    if (error)
        eg_redis_errors++;
    eg_hist_observe(&eg_redis_hist, seconds);
}

void eg_metrics_conn_open(int delta)
{
    eg_conns_open += delta;
}

void eg_metrics_conn_rejected(void)
{
    eg_conns_rejected++;
}

static bool eg_metric_name_valid(const char *name)
{
    const char *p = name;

    if (name == NULL || *name == '\0' || (*name >= '0' && *name <= '9'))
        return false;
    for (; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == ':'))
            return false;
    }
    return true;
}

void eg_metrics_gauge_set(const char *name, const char *help, double value)
{
    eg_series_t *s;

    /* A bad name would make the whole exposition unparseable for the scraper. */
    if (!eg_metric_name_valid(name)) {
        eg_log_warn("metrics: ignoring gauge with invalid name");
        return;
    }
    s = eg_family_get(&eg_gauges, name, strlen(name));
    s->value = value;
    if (s->help == NULL && help != NULL)
        s->help = eg_xstrdup(help);
}

/* ------------------------------------------------------------------------------------------------
 * Rendering
 */

static void eg_header(eg_buf_t *b, const char *name, const char *help, const char *type)
{
    eg_buf_printf(b, "# HELP %s ", name);
    /* HELP text escapes only backslash and newline. */
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\')
            eg_buf_append(b, "\\\\", 2);
        else if (*p == '\n')
            eg_buf_append(b, "\\n", 2);
        else
            eg_buf_append(b, p, 1);
    }
    eg_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void eg_value(eg_buf_t *b, double v)
{
    if (v != v)
        eg_buf_puts(b, "NaN");
    else if (v > 1.7976931348623157e308)
        eg_buf_puts(b, "+Inf");
    else if (v < -1.7976931348623157e308)
        eg_buf_puts(b, "-Inf");
    else
        eg_buf_printf(b, "%.15g", v);
}

static void eg_render_hist(eg_buf_t *b, const char *name, const char *labels, const eg_hist_t *h)
{
    const char *sep = labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;

    for (size_t i = 0; i < EG_NBUCKETS; i++) {
        cum += h->buckets[i];
        eg_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, eg_buckets[i],
                      (unsigned long long)cum);
    }
    eg_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                  (unsigned long long)h->count);
    if (labels[0] != '\0')
        eg_buf_printf(b, "%s_sum{%s} ", name, labels);
    else
        eg_buf_printf(b, "%s_sum ", name);
    eg_value(b, h->sum);
    if (labels[0] != '\0')
        eg_buf_printf(b, "\n%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
    else
        eg_buf_printf(b, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

void eg_metrics_render(eg_buf_t *out)
{
    eg_header(out, "engram_http_requests_total", "HTTP requests handled.", "counter");
    for (size_t i = 0; i < eg_http_requests.n; i++) {
        const eg_series_t *s = &eg_http_requests.items[i];

        eg_buf_printf(out, "engram_http_requests_total{%s} %llu\n", s->key,
                      (unsigned long long)s->count);
    }

    eg_header(out, "engram_http_request_duration_seconds", "HTTP request latency in seconds.",
              "histogram");
    for (size_t i = 0; i < eg_http_durations.n; i++) {
        const eg_series_t *s = &eg_http_durations.items[i];

        eg_render_hist(out, "engram_http_request_duration_seconds", s->key, &s->hist);
    }

    eg_header(out, "engram_http_connections_open", "Open client connections.", "gauge");
    eg_buf_printf(out, "engram_http_connections_open %lld\n", (long long)eg_conns_open);

    eg_header(out, "engram_http_connections_rejected_total",
              "Connections refused because max_connections was reached.", "counter");
    eg_buf_printf(out, "engram_http_connections_rejected_total %llu\n",
                  (unsigned long long)eg_conns_rejected);

    eg_header(out, "engram_redis_commands_total", "Redis commands sent.", "counter");
    eg_buf_printf(out, "engram_redis_commands_total %llu\n", (unsigned long long)eg_redis_commands);

    eg_header(out, "engram_redis_errors_total", "Redis commands that failed or timed out.",
              "counter");
    eg_buf_printf(out, "engram_redis_errors_total %llu\n", (unsigned long long)eg_redis_errors);

    eg_header(out, "engram_redis_command_duration_seconds",
              "Redis command round-trip latency in seconds.", "histogram");
    eg_render_hist(out, "engram_redis_command_duration_seconds", "", &eg_redis_hist);

    for (size_t i = 0; i < eg_gauges.n; i++) {
        const eg_series_t *s = &eg_gauges.items[i];

        eg_header(out, s->key, s->help != NULL ? s->help : s->key, "gauge");
        eg_buf_printf(out, "%s ", s->key);
        eg_value(out, s->value);
        eg_buf_append(out, "\n", 1);
    }
}

void eg_metrics_reset(void)
{
    memset(eg_memo, 0, sizeof(eg_memo));
    eg_family_free(&eg_http_requests);
    eg_family_free(&eg_http_durations);
    eg_family_free(&eg_gauges);
    memset(&eg_redis_hist, 0, sizeof(eg_redis_hist));
    eg_redis_commands = 0;
    eg_redis_errors = 0;
    eg_conns_open = 0;
    eg_conns_rejected = 0;
}
