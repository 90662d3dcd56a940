/* Progress streams (engram/pstream.h): create, check, append.
 *
 * Keys, each stream in its own slot (docs/keyspace.md):
 *
 *   eg:{fs:<id>}:m   hash     ws, token, created, expires (µs), seq (last message number)
 *   eg:{fs:<id>}:b   stream   entry "<seq>-1" {m: message JSON}, one per appended message
 *   eg:fs:<id>       channel  "<seq> <message JSON>" for every appended message
 *
 * Both keys expire with the stream. Appending is one script — number the message, buffer it,
 * publish it — so the buffer and the live channel agree on every sequence number, and an SSE
 * connection that replays the buffer and then listens (pstream_sse.c) sees each message exactly
 * once whatever process appended it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/pstream.h"
#include "engram/store.h"
#include "engram/util.h"
#include "pstream_int.h"

/* KEYS[1] meta; ARGV ws, token, created µs, expires µs, ttl ms. */
static eg_script_t s_create = {
    .name = "pstream_create",
    .source = "redis.call('HSET', KEYS[1], 'ws', ARGV[1], 'token', ARGV[2], 'created', ARGV[3],\n"
              "  'expires', ARGV[4], 'seq', 0)\n"
              "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
              "return 1\n",
};

/* KEYS[1] meta, KEYS[2] buffer; ARGV message JSON, channel, buffer cap. Returns the message's
 * sequence number, or -1 when the stream is gone. */
static eg_script_t s_append = {
    .name = "pstream_append",
    .source = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
              "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
              "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 'm', ARGV[1])\n"
              "local ttl = redis.call('PTTL', KEYS[1])\n"
              "if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
              "redis.call('PUBLISH', ARGV[2], seq .. ' ' .. ARGV[1])\n"
              "return seq\n",
};

uint64_t eg_pstream_ttl_ms(void)
{
    static uint64_t ttl;

    if (ttl == 0) {
        const char *v = getenv("ENGRAM_FENCY_STREAM_TTL");
        uint64_t ms = EG_PSTREAM_TTL_MS;

        if (v != NULL && v[0] != '\0' && (eg_parse_duration_ms(v, &ms) != 0 || ms == 0)) {
            eg_log_error("ENGRAM_FENCY_STREAM_TTL must be a duration above 0, not \"%s\": "
                         "using 10m",
                         v);
            ms = EG_PSTREAM_TTL_MS;
        }
        ttl = ms;
    }
    return ttl;
}

bool eg_pstream_id_valid(const char *id)
{
    return eg_hexid_valid(id, "str");
}

void eg__ps_key(const char *id, char kind, char out[EG__PS_KEY_MAX])
{
    eg_arena_t a;

    eg_arena_init(&a);
    snprintf(out, EG__PS_KEY_MAX, "%s", eg_key(&a, "fs", id, "%c", kind));
    eg_arena_destroy(&a);
}

void eg__ps_channel(const char *id, char out[EG__PS_KEY_MAX])
{
    snprintf(out, EG__PS_KEY_MAX, "eg:fs:%.40s", id);
}

/* ---- create and check ------------------------------------------------------------------------ */

typedef struct ps_op_s {
    void (*cb)(void *, int, const eg_pstream_t *);
    void (*done)(void *, int);
    void *udata;
    eg_pstream_t s;
    char id[EG_PSTREAM_ID_MAX];
    char token[EG_PSTREAM_TOKEN_MAX];
    char ws[64];
} ps_op_t;

static void on_created(void *udata, int err, redisReply *reply)
{
    ps_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
        eg_log_warn("progress stream: %s", reply->str);
        err = EG_EREDIS;
    }
    op->cb(op->udata, err, err ? NULL : &op->s);
    free(op);
}

int eg_pstream_create(const char *ws_id, void (*cb)(void *, int, const eg_pstream_t *), void *udata)
{
    unsigned char raw[16];
    char key[EG__PS_KEY_MAX], created[24], expires[24], ttl[24];
    uint64_t ttl_ms = eg_pstream_ttl_ms();
    ps_op_t *op;
    int rc;

    if (ws_id == NULL || ws_id[0] == '\0' || strlen(ws_id) >= sizeof(op->ws) || cb == NULL)
        return EG_EINVAL;
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    memcpy(op->id, "str_", 4);
    eg_random_bytes(raw, sizeof(raw));
    eg_hex_encode(raw, sizeof(raw), op->id + 4);
    memcpy(op->token, op->id + 4, 32);
    op->token[32] = '.';
    eg_random_base62(op->token + 33, 43); /* 256 bits */
    snprintf(op->ws, sizeof(op->ws), "%s", ws_id);
    op->s.id = op->id;
    op->s.token = op->token;
    op->s.ws_id = op->ws;
    op->s.created_us = eg_now_ms() * 1000;
    op->s.expires_us = op->s.created_us + (int64_t)ttl_ms * 1000;
    eg__ps_key(op->id, 'm', key);
    snprintf(created, sizeof(created), "%" PRId64, op->s.created_us);
    snprintf(expires, sizeof(expires), "%" PRId64, op->s.expires_us);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, ttl_ms);
    const char *argv[] = {key, ws_id, op->token, created, expires, ttl};
    rc = eg_store_eval(&s_create, on_created, op, 1, (int)EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        free(op);
    return rc;
}

static int reply_i64(const redisReply *r, int64_t *out)
{
    char *end;

    if (r->type != REDIS_REPLY_STRING || r->len == 0)
        return EG_EREDIS;
    *out = strtoll(r->str, &end, 10);
    return *end == '\0' ? 0 : EG_EREDIS;
}

static void on_checked(void *udata, int err, redisReply *reply)
{
    ps_op_t *op = udata;
    const char *want = op->token;
    size_t tlen;

    if (err != 0)
        goto done;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        err = EG_EREDIS;
        goto done;
    }
    if (reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        err = EG_ENOTFOUND;
        goto done;
    }
    if (reply_i64(reply->element[2], &op->s.created_us) != 0 ||
        reply_i64(reply->element[3], &op->s.expires_us) != 0) {
        err = EG_EREDIS;
        goto done;
    }
    if (op->s.expires_us <= eg_now_ms() * 1000) {
        err = EG_ENOTFOUND; /* Redis drops the key a moment later */
        goto done;
    }
    tlen = strlen(want);
    if (strcmp(reply->element[0]->str, op->ws) != 0 || reply->element[1]->len != tlen ||
        !eg_consttime_eq(reply->element[1]->str, want, tlen)) {
        err = EG_EAUTH;
        goto done;
    }
    op->s.id = op->id;
    op->s.token = op->token;
    op->s.ws_id = op->ws;
done:
    op->cb(op->udata, err, err ? NULL : &op->s);
    free(op);
}

int eg_pstream_check(const char *ws_id, const char *id, const char *token,
                     void (*cb)(void *, int, const eg_pstream_t *), void *udata)
{
    char key[EG__PS_KEY_MAX];
    ps_op_t *op;
    int rc;

    char named[EG_PSTREAM_ID_MAX];

    if (ws_id == NULL || cb == NULL || strlen(ws_id) >= sizeof(op->ws))
        return EG_EINVAL;
    if (token == NULL || token[0] == '\0' || strlen(token) >= EG_PSTREAM_TOKEN_MAX ||
        strlen(token) < 34 || token[32] != '.')
        return EG_EAUTH;
    snprintf(named, sizeof(named), "str_%.32s", token);
    if (id == NULL) {
        if (!eg_pstream_id_valid(named))
            return EG_EAUTH;
        id = named;
    }
    if (!eg_pstream_id_valid(id))
        return EG_ENOTFOUND;
    op = eg_xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->udata = udata;
    snprintf(op->id, sizeof(op->id), "%s", id);
    snprintf(op->token, sizeof(op->token), "%s", token);
    snprintf(op->ws, sizeof(op->ws), "%s", ws_id);
    eg__ps_key(id, 'm', key);
    rc = eg_store_command(on_checked, op, "HMGET %s ws token created expires", key);
    if (rc != 0)
        free(op);
    return rc;
}

/* ---- append ---------------------------------------------------------------------------------- */

static void on_appended(void *udata, int err, redisReply *reply)
{
    ps_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
        eg_log_warn("progress stream %s: %s", op->id, reply->str);
        err = EG_EREDIS;
    } else if (err == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer < 0) {
        err = EG_ENOTFOUND;
    }
    if (op->done != NULL)
        op->done(op->udata, err);
    free(op);
}

int eg_pstream_append(const char *id, const cJSON *msg, void (*cb)(void *, int), void *udata)
{
    char meta[EG__PS_KEY_MAX], buf[EG__PS_KEY_MAX], channel[EG__PS_KEY_MAX], cap[16], now[32];
    cJSON *m = NULL;
    char *json = NULL;
    ps_op_t *op;
    int rc = EG_EINVAL;

    if (!eg_pstream_id_valid(id) || !cJSON_IsObject(msg))
        return EG_EINVAL;
    /* The message names its stream (the SDK checks streamId) and carries a time. */
    m = cJSON_Duplicate(msg, true);
    if (m == NULL)
        return EG_EINVAL;
    cJSON_DeleteItemFromObjectCaseSensitive(m, "streamId");
    cJSON_AddStringToObject(m, "streamId", id);
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "timestamp"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "timestamp");
        eg_time_iso_us(eg_now_ms() * 1000, now);
        cJSON_AddStringToObject(m, "timestamp", now);
    }
    json = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (json == NULL || strlen(json) > EG_PSTREAM_MSG_MAX)
        goto out;
    op = eg_xcalloc(1, sizeof(*op));
    op->done = cb;
    op->udata = udata;
    snprintf(op->id, sizeof(op->id), "%s", id);
    eg__ps_key(id, 'm', meta);
    eg__ps_key(id, 'b', buf);
    eg__ps_channel(id, channel);
    snprintf(cap, sizeof(cap), "%d", EG__PS_BUFFER_CAP);
    const char *argv[] = {meta, buf, json, channel, cap};
    rc = eg_store_eval(&s_append, on_appended, op, 2, (int)EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        free(op);
out:
    free(json);
    return rc;
}
