/* Request authentication with an in-process cache, so an authenticated request costs no Redis
 * round trip. Entries live for the configured TTL (negative ones for at most 5 s); revoking or
 * creating a key publishes its hash on EG_AUTH_CHANNEL and every process drops the entry at
 * once. When the pub/sub connection comes back after an outage, messages may have been missed, so
 * the whole cache is flushed. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "tenancy_int.h"

#define AUTH_BUCKETS         4096
#define AUTH_MAX_ENTRIES     65536
#define AUTH_NEGATIVE_TTL_MS 5000

typedef struct auth_entry_s {
    struct auth_entry_s *next;
    char hash[65];
    bool valid;
    eg_auth_t auth;
    uint64_t expires_ms; /* loop time */
} auth_entry_t;

static struct {
    uv_loop_t *loop;
    uint64_t ttl_ms;
    auth_entry_t *buckets[AUTH_BUCKETS];
    size_t count;
    bool subscribed;
} cache;

static size_t bucket_of(const char *hash)
{
    /* The hash is already uniformly random hex: its first 8 digits index the table. */
    unsigned long v = strtoul(
        (char[9]){hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7], 0}, NULL,
        16);
    return v % AUTH_BUCKETS;
}

void eg_auth_cache_flush(void)
{
    for (size_t i = 0; i < AUTH_BUCKETS; i++) {
        auth_entry_t *e = cache.buckets[i];
        while (e) {
            auth_entry_t *next = e->next;
            free(e);
            e = next;
        }
        cache.buckets[i] = NULL;
    }
    cache.count = 0;
}

void eg__auth_forget(const char *hash)
{
    auth_entry_t **pp = &cache.buckets[bucket_of(hash)];

    while (*pp) {
        if (strcmp((*pp)->hash, hash) == 0) {
            auth_entry_t *e = *pp;
            *pp = e->next;
            free(e);
            cache.count--;
            return;
        }
        pp = &(*pp)->next;
    }
}

static auth_entry_t *cache_get(const char *hash)
{
    auth_entry_t *e = cache.buckets[bucket_of(hash)];
    uint64_t now = cache.loop ? uv_now(cache.loop) : 0;

    for (; e; e = e->next) {
        if (strcmp(e->hash, hash) != 0)
            continue;
        if (e->expires_ms <= now) {
            eg__auth_forget(hash);
            return NULL;
        }
        return e;
    }
    return NULL;
}

static void cache_put(const char *hash, const eg_auth_t *auth)
{
    uint64_t now = cache.loop ? uv_now(cache.loop) : 0;
    auth_entry_t *e;

    if (cache.ttl_ms == 0 || cache.loop == NULL)
        return;
    /* Bounded: a flood of distinct invalid keys cannot grow the cache without limit. */
    if (cache.count >= AUTH_MAX_ENTRIES)
        eg_auth_cache_flush();
    eg__auth_forget(hash);
    e = eg_xcalloc(1, sizeof(*e));
    memcpy(e->hash, hash, sizeof(e->hash));
    e->valid = auth != NULL;
    if (auth)
        e->auth = *auth;
    e->expires_ms = now + (auth ? cache.ttl_ms : EG_MIN(cache.ttl_ms, AUTH_NEGATIVE_TTL_MS));
    size_t b = bucket_of(hash);
    e->next = cache.buckets[b];
    cache.buckets[b] = e;
    cache.count++;
}

static void on_invalidate(void *udata, const char *channel, const char *payload, size_t len)
{
    char hash[65];

    if (len == 1 && payload[0] == '*') {
        eg_auth_cache_flush();
        return;
    }
    if (len != 64)
        return;
    memcpy(hash, payload, 64);
    hash[64] = '\0';
    eg__auth_forget(hash);
}

static void on_resync(void *udata)
{
    eg_log_info("auth cache flushed after the pub/sub connection came back");
    eg_auth_cache_flush();
}

int eg__auth_publish_invalidation(const char *hash, eg_reply_fn fn, void *udata)
{
    int rc = eg_store_command(fn, udata, "PUBLISH %s %s", EG_AUTH_CHANNEL, hash);
    if (rc != 0)
        eg_log_warn("could not publish an auth cache invalidation: other processes keep their "
                    "entry until its TTL ends");
    return rc;
}

int eg_tenancy_init(uv_loop_t *loop, uint64_t cache_ttl_ms)
{
    int rc;

    cache.loop = loop;
    cache.ttl_ms = cache_ttl_ms;
    rc = eg_store_subscribe(EG_AUTH_CHANNEL, on_invalidate, on_resync, NULL);
    cache.subscribed = rc == 0;
    return rc;
}

void eg_tenancy_shutdown(void)
{
    eg_auth_cache_flush();
    cache.loop = NULL;
}

typedef struct auth_op_s {
    eg_auth_fn cb;
    void *udata;
    char hash[65];
} auth_op_t;

static void on_lookup(void *udata, int err, const eg_auth_t *auth)
{
    auth_op_t *op = udata;

    if (err == 0)
        cache_put(op->hash, auth);
    else if (err == EG_EAUTH)
        cache_put(op->hash, NULL);
    op->cb(op->udata, err, auth);
    free(op);
}

int eg_auth_check(const char *token, eg_auth_fn cb, void *udata)
{
    char hash[65];
    auth_entry_t *e;
    auth_op_t *op;
    int rc;

    if (token == NULL || !eg__apikey_plausible(token)) {
        cb(udata, EG_EAUTH, NULL);
        return 1;
    }
    eg_sha256_hex(token, strlen(token), hash);
    e = cache_get(hash);
    if (e) {
        cb(udata, e->valid ? 0 : EG_EAUTH, e->valid ? &e->auth : NULL);
        return 1;
    }
    op = eg_xmalloc(sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    memcpy(op->hash, hash, sizeof(hash));
    rc = eg__auth_lookup(hash, on_lookup, op);
    if (rc != 0) {
        free(op);
        cb(udata, rc, NULL);
        return 1;
    }
    return 0;
}
