/* Conversations: a title and metadata that agent tasks may name (createAgentTask's
 * conversationId), listed per conversation by GET /v1/agent-tasks?conversationId=.
 *
 * Keys, in the workspace's slot: eg:{w:<ws>}:fy:cnv (hash id -> {id, title, createdAt,
 * metadata}) and eg:{w:<ws>}:fy:cnv:z (zset of "<created µs>:<id>", engram/zpage.h). Search walks
 * the zset in one script from the cursor and keeps the conversations whose metadata has every
 * pair of the filter (values compared as JSON), reading at most SEARCH_SCAN members per page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/store.h"
#include "engram/util.h"
#include "runs/tasks_int.h"

#define SEARCH_SCAN 5000 /* members one search page reads at most */

/* KEYS hash, zset; ARGV id, JSON, member. */
static eg_script_t s_cnv_create = {
    .name = "cnv_create",
    .source = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
              "redis.call('ZADD', KEYS[2], 0, ARGV[3])\n"
              "return 1\n",
};

/* KEYS zset, hash; ARGV cursor ('' = none), forward ('1' = oldest first), limit, scan, match
 * JSON object. Returns {more, member, value, ...}: the matching records after the cursor. */
static eg_script_t s_cnv_search = {
    .name = "cnv_search",
    .source = "local cur, fwd, limit, scan = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), "
              "tonumber(ARGV[4])\n"
              "local match = cjson.decode(ARGV[5])\n"
              "local ms\n"
              "if fwd then\n"
              "  ms = redis.call('ZRANGE', KEYS[1], cur == '' and '-' or '(' .. cur, '+', 'BYLEX', "
              "'LIMIT', 0, scan)\n"
              "else\n"
              "  ms = redis.call('ZRANGE', KEYS[1], cur == '' and '+' or '(' .. cur, '-', 'BYLEX', "
              "'REV', 'LIMIT', 0, scan)\n"
              "end\n"
              "local out, n = {0}, 0\n"
              "for i = 1, #ms do\n"
              "  local v = redis.call('HGET', KEYS[2], string.sub(ms[i], 18))\n"
              "  if v then\n"
              "    local ok, rec = pcall(cjson.decode, v)\n"
              "    local meta = ok and type(rec) == 'table' and rec.metadata or nil\n"
              "    local good = type(meta) == 'table'\n"
              "    if good then\n"
              "      for k, want in pairs(match) do\n"
              "        if meta[k] == nil or cjson.encode(meta[k]) ~= cjson.encode(want) then\n"
              "          good = false\n"
              "          break\n"
              "        end\n"
              "      end\n"
              "    end\n"
              "    if good then\n"
              "      if n == limit then out[1] = 1 return out end\n"
              "      n = n + 1\n"
              "      out[#out + 1] = ms[i]\n"
              "      out[#out + 1] = v\n"
              "    end\n"
              "  end\n"
              "end\n"
              "if #ms == scan then out[1] = 1 end\n"
              "return out\n",
};

typedef struct cnv_op_s {
    eg_arena_t arena;
    cJSON *cnv;
    void (*cb)(void *, int, const cJSON *);
    eg_zpage_fn page_cb;
    bool had_cursor, backwards;
    void *udata;
} cnv_op_t;

static void op_free(cnv_op_t *op)
{
    cJSON_Delete(op->cnv);
    eg_arena_destroy(&op->arena);
    free(op);
}

static void on_cnv_created(void *udata, int err, redisReply *reply)
{
    cnv_op_t *op = udata;

    if (err == 0 && reply->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    op->cb(op->udata, err, err == 0 ? op->cnv : NULL);
    op_free(op);
}

int eg_conversation_create(const char *ws, const char *title, const cJSON *metadata,
                           void (*cb)(void *, int, const cJSON *cnv), void *udata)
{
    char id[EG_TASK_ID_MAX], t[EG_TASK_TIME_MAX], member[EG_ZPAGE_MEMBER_MAX];
    int64_t now = eg_now_us();
    cnv_op_t *op;
    char *json;
    int rc;

    if (ws == NULL || ws[0] == '\0' || cb == NULL ||
        (metadata != NULL && !cJSON_IsObject(metadata)))
        return EG_EINVAL;
    op = eg_xcalloc(1, sizeof(*op));
    eg_arena_init(&op->arena);
    op->cb = cb;
    op->udata = udata;
    eg_hexid_new("cnv", id, EG_TASK_ID_MAX);
    eg_time_iso_us(now, t);
    op->cnv = cJSON_CreateObject();
    cJSON_AddStringToObject(op->cnv, "id", id);
    if (title != NULL)
        cJSON_AddStringToObject(op->cnv, "title", title);
    else
        cJSON_AddNullToObject(op->cnv, "title");
    cJSON_AddStringToObject(op->cnv, "createdAt", t);
    cJSON_AddItemToObject(op->cnv, "metadata",
                          metadata ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject());
    json = cJSON_PrintUnformatted(op->cnv);
    eg_zpage_member(now, id, member, sizeof(member));
    const char *argv[] = {eg__task_key(&op->arena, ws, "cnv"),
                          eg__task_key(&op->arena, ws, "cnv:z"), id, json, member};
    rc = eg_store_eval(&s_cnv_create, on_cnv_created, op, 2, 5, argv, NULL);
    free(json);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_cnv_got(void *udata, int err, redisReply *reply)
{
    cnv_op_t *op = udata;
    cJSON *c = NULL;

    if (err == 0 && reply->type == REDIS_REPLY_NIL)
        err = EG_ENOTFOUND;
    else if (err == 0 && reply->type != REDIS_REPLY_STRING)
        err = EG_EREDIS;
    if (err == 0 && (c = cJSON_Parse(reply->str)) == NULL)
        err = EG_EINTERNAL;
    op->cb(op->udata, err, c);
    cJSON_Delete(c);
    op_free(op);
}

int eg_conversation_get(const char *ws, const char *id, void (*cb)(void *, int, const cJSON *cnv),
                        void *udata)
{
    cnv_op_t *op;
    int rc;

    if (ws == NULL || ws[0] == '\0' || cb == NULL)
        return EG_EINVAL;
    if (!eg_hexid_valid(id, "cnv"))
        return EG_ENOTFOUND;
    op = eg_xcalloc(1, sizeof(*op));
    eg_arena_init(&op->arena);
    op->cb = cb;
    op->udata = udata;
    rc = eg_store_command(on_cnv_got, op, "HGET %s %s", eg__task_key(&op->arena, ws, "cnv"), id);
    if (rc != 0)
        op_free(op);
    return rc;
}

static void on_searched(void *udata, int err, redisReply *reply)
{
    cnv_op_t *op = udata;
    const char **ids = NULL, **values = NULL;
    eg_zpage_t page = {0};
    size_t n = 0;

    if (err == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1))
        err = EG_EREDIS;
    if (err != 0) {
        op->page_cb(op->udata, err, NULL);
        op_free(op);
        return;
    }
    n = (reply->elements - 1) / 2;
    ids = eg_arena_calloc(&op->arena, (n + 1) * sizeof(*ids));
    values = eg_arena_calloc(&op->arena, (n + 1) * sizeof(*values));
    for (size_t i = 0; i < n; i++) {
        const char *m = reply->element[1 + 2 * i]->str;

        ids[i] = strlen(m) > 17 ? m + 17 : m;
        values[i] = reply->element[2 + 2 * i]->str;
    }
    page.ids = ids;
    page.values = values;
    page.n = n;
    bool more = reply->element[0]->integer == 1 && n > 0;
    const char *first = n > 0 ? reply->element[1]->str : NULL;
    const char *last = n > 0 ? reply->element[n * 2 - 1]->str : NULL;
    if (!op->backwards) {
        /* The next page starts after the last member read; a previous page exists whenever this
         * one was reached through a cursor (it may turn out empty). */
        page.next = more ? last : NULL;
        page.prev = op->had_cursor ? first : NULL;
    } else {
        /* Read walking back from the cursor: flip into display order. */
        for (size_t i = 0; i < n / 2; i++) {
            const char *t = ids[i];
            ids[i] = ids[n - 1 - i];
            ids[n - 1 - i] = t;
            t = values[i];
            values[i] = values[n - 1 - i];
            values[n - 1 - i] = t;
        }
        page.prev = more ? last : NULL;
        page.next = first;
    }
    op->page_cb(op->udata, 0, &page);
    op_free(op);
}

int eg_conversation_search(const char *ws, const cJSON *match, eg_zpage_req_t *q, eg_zpage_fn cb,
                           void *udata)
{
    char limit[16], scan[16];
    cnv_op_t *op;
    char *mj;
    int rc;

    if (ws == NULL || ws[0] == '\0' || q == NULL || cb == NULL || q->limit < 1 ||
        q->limit > EG_ZPAGE_LIMIT_MAX || (match != NULL && !cJSON_IsObject(match)) ||
        (q->cursor != NULL && !eg_zpage_member_valid(q->cursor)))
        return EG_EINVAL;
    op = eg_xcalloc(1, sizeof(*op));
    eg_arena_init(&op->arena);
    op->page_cb = cb;
    op->udata = udata;
    op->had_cursor = q->cursor != NULL;
    op->backwards = q->backwards;
    /* A previous-page cursor walks the other way from it. */
    bool fwd = q->asc != q->backwards;
    snprintf(limit, sizeof(limit), "%zu", q->limit);
    snprintf(scan, sizeof(scan), "%d", SEARCH_SCAN);
    mj = match && match->child ? cJSON_PrintUnformatted(match) : eg_xstrdup("{}");
    /* cjson decodes {} as an empty table either way, which is what "no filter" means. */
    const char *argv[] = {eg__task_key(&op->arena, ws, "cnv:z"),
                          eg__task_key(&op->arena, ws, "cnv"),
                          q->cursor ? q->cursor : "",
                          fwd ? "1" : "0",
                          limit,
                          scan,
                          mj};
    rc = eg_store_eval(&s_cnv_search, on_searched, op, 2, 7, argv, NULL);
    free(mj);
    if (rc != 0)
        op_free(op);
    return rc;
}
