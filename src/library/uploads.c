/* Upload grants and accepted uploads: the signing secret shared through Redis, the grant state
 * of a memory (eg:{w:<ws>}:fy:up:<memory id>, a hash with the current grant's token, file name,
 * type and size, plus "c" while a posted file is being handed over) and the hand-over to the
 * library. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/error.h"
#include "engram/library.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/uploads.h"
#include "engram/util.h"

/* The grant state outlives the policy a little, so an upload posted at the last second still
 * finds it. */
#define STATE_TTL_MS (EG_UPLOAD_TTL_MS + 60 * 1000)

static char *state_key(eg_arena_t *a, const char *ws, const char *mem)
{
    return eg_key(a, "w", ws, "fy:up:%s", mem);
}

/* ---- The signing secret --------------------------------------------------------------------- */

/* Created once for the whole deployment; every process reads the same one and keeps it. */
static eg_script_t secret_script = {
    .name = "upload_secret",
    .source = "redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
              "return redis.call('GET', KEYS[1])\n",
};
static char s_secret[65];

typedef void (*secret_fn)(void *udata, int err);

typedef struct {
    secret_fn cb;
    void *udata;
} secret_req_t;

static void on_secret(void *udata, int err, redisReply *r)
{
    secret_req_t *q = udata;
    if (!err && (r->type != REDIS_REPLY_STRING || r->len < 32 || r->len >= sizeof s_secret))
        err = EG_EREDIS;
    if (!err && !s_secret[0])
        memcpy(s_secret, r->str, r->len + 1);
    q->cb(q->udata, err);
    free(q);
}

/* Make sure s_secret is loaded; cb runs (possibly right away) with 0 or a store error. 0, or a
 * store error when the command could not be queued (cb not called). */
static int with_secret(secret_fn cb, void *udata)
{
    if (s_secret[0]) {
        cb(udata, 0);
        return 0;
    }
    eg_arena_t a;
    unsigned char raw[32];
    char fresh[65];
    eg_arena_init(&a);
    eg_random_bytes(raw, sizeof raw);
    eg_hex_encode(raw, sizeof raw, fresh);
    fresh[64] = '\0';
    const char *argv[] = {eg_key(&a, "fy", NULL, "upload_secret"), fresh};
    secret_req_t *q = eg_xcalloc(1, sizeof *q);
    q->cb = cb;
    q->udata = udata;
    int rc = eg_store_eval(&secret_script, on_secret, q, 1, 2, argv, NULL);
    if (rc)
        free(q);
    eg_arena_destroy(&a);
    memset(raw, 0, sizeof raw);
    memset(fresh, 0, sizeof fresh);
    return rc;
}

/* ---- Grants --------------------------------------------------------------------------------- */

/* Replace the memory's grant state (a newer grant makes older ones useless). */
static eg_script_t grant_script = {
    .name = "upload_grant",
    .source = "redis.call('DEL', KEYS[1])\n"
              "redis.call('HSET', KEYS[1], 'token', ARGV[1], 'name', ARGV[2], 'mime', ARGV[3],\n"
              "           'size', ARGV[4])\n"
              "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
              "return 1\n",
};

typedef struct {
    eg_arena_t a;
    eg_upload_spec_t spec;
    char token[33];
    eg_upload_grant_fn cb;
    void *udata;
} create_t;

static void create_end(create_t *c, int err, const char *why, const eg_upload_grant_t *g)
{
    c->cb(c->udata, err, why, g);
    eg_arena_destroy(&c->a);
    free(c);
}

static void on_granted(void *udata, int err, redisReply *r)
{
    create_t *c = udata;
    eg_upload_grant_t g;
    if (!err && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    if (err) {
        create_end(c, err, NULL, NULL);
        return;
    }
    eg_upload_sign(&c->a, s_secret, &c->spec, c->token, eg_now_ms(), &g);
    create_end(c, 0, NULL, &g);
}

static void create_with_secret(void *udata, int err)
{
    create_t *c = udata;
    if (!err) {
        char size[24], ttl[24];
        snprintf(size, sizeof size, "%lld", (long long)c->spec.size);
        snprintf(ttl, sizeof ttl, "%d", STATE_TTL_MS);
        const char *argv[] = {state_key(&c->a, c->spec.ws_id, c->spec.memory_id),
                              c->token,
                              c->spec.file_name,
                              c->spec.mime,
                              size,
                              ttl};
        err = eg_store_eval(&grant_script, on_granted, c, 1, 6, argv, NULL);
    }
    if (err)
        create_end(c, err, NULL, NULL);
}

static void on_memory(void *udata, int err, const cJSON *mem)
{
    create_t *c = udata;
    if (err) {
        create_end(c, err, err == EG_ENOTFOUND ? "memory not found" : NULL, NULL);
        return;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(mem, "sourceType");
    if (!cJSON_IsString(src) || strcmp(src->valuestring, "FILE") != 0) {
        create_end(c, EG_EINVAL,
                   eg_arena_printf(&c->a, "memory %s is a %s memory; uploads are for FILE memories",
                                   c->spec.memory_id,
                                   cJSON_IsString(src) ? src->valuestring : "non-file"),
                   NULL);
        return;
    }
    int rc = with_secret(create_with_secret, c);
    if (rc)
        create_end(c, rc, NULL, NULL);
}

int eg_upload_create(const eg_upload_spec_t *spec, eg_upload_grant_fn cb, void *udata)
{
    unsigned char raw[16];
    create_t *c = eg_xcalloc(1, sizeof *c);
    eg_arena_init(&c->a);
    c->spec.ws_id = eg_arena_strdup(&c->a, spec->ws_id);
    c->spec.memory_id = eg_arena_strdup(&c->a, spec->memory_id);
    c->spec.file_name = eg_arena_strdup(&c->a, spec->file_name);
    c->spec.mime = eg_arena_strdup(&c->a, spec->mime);
    c->spec.size = spec->size;
    eg_random_bytes(raw, sizeof raw);
    eg_hex_encode(raw, sizeof raw, c->token);
    c->token[32] = '\0';
    c->cb = cb;
    c->udata = udata;
    int rc = eg_lib_memory_get(spec->ws_id, spec->memory_id, on_memory, c);
    if (rc == EG_ENOTFOUND) {
        /* Not even a well-formed id: answer like any unknown memory. */
        create_end(c, rc, "memory not found", NULL);
        return 0;
    }
    if (rc) {
        eg_arena_destroy(&c->a);
        free(c);
    }
    return rc;
}

/* ---- Accepting a posted file ---------------------------------------------------------------- */

/* Claim the grant for one hand-over: it must still be the memory's current grant, unused and not
 * being handed over right now. */
static eg_script_t claim_script = {
    .name = "upload_claim",
    .source = "local v = redis.call('HMGET', KEYS[1], 'token', 'name', 'c')\n"
              "if not v[1] then return {'gone'} end\n"
              "if v[1] ~= ARGV[1] then return {'replaced'} end\n"
              "if v[3] then return {'busy'} end\n"
              "redis.call('HSET', KEYS[1], 'c', '1')\n"
              "return {'ok', v[2]}\n",
};

/* After the hand-over: ARGV[2] '1' retires the grant, '0' releases the claim for a retry. */
static eg_script_t finish_script = {
    .name = "upload_finish",
    .source = "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end\n"
              "if ARGV[2] == '1' then redis.call('DEL', KEYS[1])\n"
              "else redis.call('HDEL', KEYS[1], 'c') end\n"
              "return 1\n",
};

typedef struct {
    eg_arena_t a;
    const eg_upload_form_t *form;
    eg_upload_spec_t spec;
    const char *token;
    eg_upload_accept_fn cb;
    void *udata;
    eg_upload_refusal_t result;
    const char *why;
} accept_t;

static void accept_end(accept_t *x, eg_upload_refusal_t r, const char *why)
{
    x->cb(x->udata, r, why);
    eg_arena_destroy(&x->a);
    free(x);
}

static eg_upload_refusal_t store_refusal(int err, const char **why)
{
    *why = eg_store_error_text(err);
    return EG_UPLOAD_UNAVAILABLE;
}

static void on_finished(void *udata, int err, redisReply *r)
{
    accept_t *x = udata;
    (void)r;
    if (err || (r && r->type == REDIS_REPLY_ERROR))
        eg_log_warn("uploads: could not update the grant state of %s: %s", x->spec.memory_id,
                    err ? eg_store_error_text(err) : r->str);
    accept_end(x, x->result, x->why);
}

/* Retire the grant (ok) or release the claim, then answer. */
static void finish(accept_t *x, bool retire)
{
    const char *argv[] = {state_key(&x->a, x->spec.ws_id, x->spec.memory_id), x->token,
                          retire ? "1" : "0"};
    if (eg_store_eval(&finish_script, on_finished, x, 1, 3, argv, NULL) != 0)
        accept_end(x, x->result, x->why);
}

static void on_set_file(void *udata, int err)
{
    accept_t *x = udata;
    bool retire = true;
    switch (err) {
    case 0:
        x->result = EG_UPLOAD_OK;
        break;
    case EG_ENOTFOUND:
        x->result = EG_UPLOAD_NO_MEMORY;
        x->why = "The memory of this upload no longer exists";
        break;
    case EG_EINVAL:
        x->result = EG_UPLOAD_MALFORMED;
        x->why = "The memory of this upload is not a FILE memory";
        break;
    default: /* storage: the same form may be posted again */
        x->result = store_refusal(err, &x->why);
        retire = false;
        break;
    }
    finish(x, retire);
}

static void on_claim(void *udata, int err, redisReply *r)
{
    accept_t *x = udata;
    const char *why;
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                 r->element[0]->type != REDIS_REPLY_STRING))
        err = EG_EREDIS;
    if (err) {
        eg_upload_refusal_t rr = store_refusal(err, &why);
        accept_end(x, rr, why);
        return;
    }
    const char *st = r->element[0]->str;
    if (strcmp(st, "ok") != 0) {
        accept_end(x, EG_UPLOAD_DENIED,
                   strcmp(st, "replaced") == 0
                       ? "A newer upload was requested for this memory; this one is void"
                   : strcmp(st, "busy") == 0 ? "This upload is being received already"
                                             : "This upload was already used");
        return;
    }
    const char *name = r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING
                           ? eg_arena_strdup(&x->a, r->element[1]->str)
                           : "";
    int rc = eg_lib_memory_set_file(x->spec.ws_id, x->spec.memory_id, name, x->spec.mime,
                                    x->form->data, x->form->len, on_set_file, x);
    if (rc)
        on_set_file(x, rc);
}

static void accept_with_secret(void *udata, int err)
{
    accept_t *x = udata;
    const char *why = NULL;
    if (err) {
        eg_upload_refusal_t rr = store_refusal(err, &why);
        accept_end(x, rr, why);
        return;
    }
    eg_upload_refusal_t r =
        eg_upload_verify(&x->a, s_secret, x->form, eg_now_ms(), &x->spec, &x->token, &why);
    if (r) {
        accept_end(x, r, why);
        return;
    }
    const char *argv[] = {state_key(&x->a, x->spec.ws_id, x->spec.memory_id), x->token};
    int rc = eg_store_eval(&claim_script, on_claim, x, 1, 2, argv, NULL);
    if (rc) {
        eg_upload_refusal_t rr = store_refusal(rc, &why);
        accept_end(x, rr, why);
    }
}

void eg_upload_accept(const eg_upload_form_t *form, eg_upload_accept_fn cb, void *udata)
{
    accept_t *x = eg_xcalloc(1, sizeof *x);
    eg_arena_init(&x->a);
    x->form = form;
    x->cb = cb;
    x->udata = udata;
    int rc = with_secret(accept_with_secret, x);
    if (rc) {
        const char *why;
        eg_upload_refusal_t rr = store_refusal(rc, &why);
        accept_end(x, rr, why);
    }
}
