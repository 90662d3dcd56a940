/* Client tokens (engram/ctokens.h).
 *
 * One hash per token, in its own slot: eg:{ct:<token>}:t {ws, p, payload, sid, created}, with a
 * PEXPIRE of the token's lifetime. Every check and the consumption happen in one script, so a
 * token is used at most once however many processes race for it: the first script to run deletes
 * the hash and every later one finds nothing. A token shown by the wrong workspace or for the
 * wrong purpose is answered without being deleted, so a mistake elsewhere cannot burn the
 * legitimate holder's token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/ctokens.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"

static const char *const s_purpose[EG_CTOKEN__COUNT] = {
    [EG_CTOKEN_CREATE_STREAM] = "CREATE_STREAM",
    [EG_CTOKEN_CREATE_AGENT_TASK] = "CREATE_AGENT_TASK",
    [EG_CTOKEN_CREATE_AGENT_TASK_FILE_DOWNLOAD] = "CREATE_AGENT_TASK_FILE_DOWNLOAD",
    [EG_CTOKEN_GET_AGENT_TASK_RESPONSE] = "GET_AGENT_TASK_RESPONSE",
    [EG_CTOKEN_DOWNLOAD] = "DOWNLOAD",
};

/* KEYS[1] token hash; ARGV ws, purpose, payload, sid, created (µs), ttl ms. */
static eg_script_t s_issue = {
    .name = "ctoken_issue",
    .source = "redis.call('HSET', KEYS[1], 'ws', ARGV[1], 'p', ARGV[2], 'payload', ARGV[3],\n"
              "  'sid', ARGV[4], 'created', ARGV[5])\n"
              "redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
              "return 1\n",
};

/* KEYS[1] token hash; ARGV ws ('' = any), purpose, consume ('1' | '0'). Returns {'gone'} | {'ws'} |
 * {'purpose'} | {'ok', payload}. */
static eg_script_t s_use = {
    .name = "ctoken_use",
    .source = "local v = redis.call('HMGET', KEYS[1], 'ws', 'p', 'payload')\n"
              "if not v[1] then return {'gone'} end\n"
              "if ARGV[1] ~= '' and v[1] ~= ARGV[1] then return {'ws'} end\n"
              "if v[2] ~= ARGV[2] then return {'purpose'} end\n"
              "if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end\n"
              "return {'ok', v[3] or '{}'}\n",
};

const char *eg_ctoken_purpose_name(eg_ctoken_purpose_t p)
{
    return (unsigned)p < EG_CTOKEN__COUNT ? s_purpose[p] : NULL;
}

uint64_t eg_ctoken_ttl_ms(void)
{
    static uint64_t ttl;

    if (ttl == 0) {
        const char *v = getenv("ENGRAM_FENCY_CLIENT_TOKEN_TTL");
        uint64_t ms = EG_CTOKEN_TTL_MS;

        if (v != NULL && v[0] != '\0' && (eg_parse_duration_ms(v, &ms) != 0 || ms == 0)) {
            eg_log_error("ENGRAM_FENCY_CLIENT_TOKEN_TTL must be a duration above 0, not \"%s\": "
                         "using 10m",
                         v);
            ms = EG_CTOKEN_TTL_MS;
        }
        ttl = ms;
    }
    return ttl;
}

bool eg_ctoken_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == EG_CTOKEN_LEN;
}

static void token_key(const char *token, char out[64])
{
    eg_arena_t a;

    eg_arena_init(&a);
    snprintf(out, 64, "%s", eg_key(&a, "ct", token, "t"));
    eg_arena_destroy(&a);
}

/* ---- issue ----------------------------------------------------------------------------------- */

typedef struct issue_s {
    void (*cb)(void *, int, const char *);
    void *udata;
    char token[EG_CTOKEN_LEN + 1];
} issue_t;

static void on_issued(void *udata, int err, redisReply *reply)
{
    issue_t *is = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR) {
        eg_log_warn("client token: %s", reply->str);
        err = EG_EREDIS;
    }
    is->cb(is->udata, err, err ? NULL : is->token);
    free(is);
}

int eg_ctoken_issue(const char *ws, eg_ctoken_purpose_t p, const cJSON *payload, const char *sid,
                    uint64_t ttl_ms, void (*cb)(void *, int, const char *token), void *udata)
{
    unsigned char raw[EG_CTOKEN_LEN / 2];
    char key[64], created[24], ttl[24], *json = NULL;
    issue_t *is;
    int rc;

    if (ws == NULL || ws[0] == '\0' || eg_ctoken_purpose_name(p) == NULL || cb == NULL ||
        (payload != NULL && !cJSON_IsObject(payload)))
        return EG_EINVAL;
    json = payload != NULL ? cJSON_PrintUnformatted(payload) : eg_xstrdup("{}");
    if (json == NULL || strlen(json) > EG_CTOKEN_PAYLOAD_MAX) {
        free(json);
        return EG_EINVAL;
    }
    is = eg_xcalloc(1, sizeof(*is));
    is->cb = cb;
    is->udata = udata;
    eg_random_bytes(raw, sizeof(raw));
    eg_hex_encode(raw, sizeof(raw), is->token);
    token_key(is->token, key);
    snprintf(created, sizeof(created), "%lld", (long long)eg_now_ms() * 1000);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : eg_ctoken_ttl_ms()));
    const char *argv[] = {key, ws, s_purpose[p], json, sid ? sid : "", created, ttl};
    rc = eg_store_eval(&s_issue, on_issued, is, 1, (int)EG_ARRAY_SIZE(argv), argv, NULL);
    free(json);
    if (rc != 0)
        free(is);
    return rc;
}

/* ---- peek and consume ------------------------------------------------------------------------ */

typedef struct use_s {
    eg_ctoken_fn cb;
    void *udata;
} use_t;

static void on_used(void *udata, int err, redisReply *reply)
{
    use_t *u = udata;
    cJSON *payload = NULL;
    const char *what;

    if (err != 0)
        goto done;
    if (reply->type == REDIS_REPLY_ERROR) {
        eg_log_warn("client token: %s", reply->str);
        err = EG_EREDIS;
        goto done;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        err = EG_EREDIS;
        goto done;
    }
    what = reply->element[0]->str;
    if (strcmp(what, "gone") == 0) {
        err = EG_EAUTH;
    } else if (strcmp(what, "ws") == 0 || strcmp(what, "purpose") == 0) {
        err = EG_EFORBIDDEN;
    } else if (reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING) {
        payload = cJSON_ParseWithLength(reply->element[1]->str, reply->element[1]->len);
        if (!cJSON_IsObject(payload))
            err = EG_EINTERNAL;
    } else {
        err = EG_EREDIS;
    }
done:
    u->cb(u->udata, err, err ? NULL : payload);
    cJSON_Delete(payload);
    free(u);
}

static int token_use(const char *token, const char *ws, eg_ctoken_purpose_t p, bool consume,
                     eg_ctoken_fn cb, void *udata)
{
    char key[64];
    use_t *u;
    int rc;

    if ((ws == NULL && !(p == EG_CTOKEN_DOWNLOAD && !consume)) || (ws != NULL && ws[0] == '\0') ||
        eg_ctoken_purpose_name(p) == NULL || cb == NULL)
        return EG_EINVAL;
    if (!eg_ctoken_valid(token))
        return EG_EAUTH;
    token_key(token, key);
    u = eg_xcalloc(1, sizeof(*u));
    u->cb = cb;
    u->udata = udata;
    const char *argv[] = {key, ws ? ws : "", s_purpose[p], consume ? "1" : "0"};
    rc = eg_store_eval(&s_use, on_used, u, 1, (int)EG_ARRAY_SIZE(argv), argv, NULL);
    if (rc != 0)
        free(u);
    return rc;
}

int eg_ctoken_peek(const char *token, const char *ws, eg_ctoken_purpose_t p, eg_ctoken_fn cb,
                   void *udata)
{
    return token_use(token, ws, p, false, cb, udata);
}

int eg_ctoken_consume(const char *token, const char *ws, eg_ctoken_purpose_t p, eg_ctoken_fn cb,
                      void *udata)
{
    return token_use(token, ws, p, true, cb, udata);
}
