/* The per-workspace event log: append (with trim and publish), page through, fetch by id.
 *
 * Keys and channels (see docs/keyspace.md and docs/events.md):
 *
 *   eg:{w:<ws_id>}:events   stream   one entry per event: type, createdAt, entity (JSON text)
 *   eg:events:<ws_id>       channel  every new event of the workspace, serialized
 *
 * The stream entry id is the event's cursor and, prefixed ("evt_<ms>_<seq>"), its public id:
 * no second index is needed to fetch an event, list pages are XRANGE/XREVRANGE with an exclusive
 * start, and the workspace id in the key makes another workspace's event unreachable.
 *
 * Emitting is one script (XADD with MINID trim, then PUBLISH), so the event is durable before
 * the caller's callback runs and watchers in every process hear of it in the same round trip.
 * The serialized form is built in two places — in the script for the PUBLISH and here for reads
 * — from the same stored fields in the same field order, so a watcher and a reader see the same
 * bytes (tests/unit/test_events.c checks this). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "events_int.h"

/* Entries one read script call looks at at most: a type filter matching nothing in a long log
 * must not keep Redis busy; the page then comes back short with has_more and a cursor. */
#define EV_SCAN_CAP 4000

/* ---- scripts ----------------------------------------------------------------------------- */

/* KEYS[1] stream; ARGV minid, type, createdAt, entity JSON, workspace id, channel.
 * Returns the stream id. */
static eg_script_t s_emit = {
    .name = "events_emit",
    .source =
        "local sid = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*',\n"
        "  'type', ARGV[2], 'createdAt', ARGV[3], 'entity', ARGV[4])\n"
        "local id = 'evt_' .. (string.gsub(sid, '-', '_'))\n"
        "redis.call('PUBLISH', ARGV[6], '{\"id\":\"' .. id .. '\",\"type\":\"' .. ARGV[2] ..\n"
        "  '\",\"createdAt\":\"' .. ARGV[3] .. '\",\"workspaceId\":\"' .. ARGV[5] ..\n"
        "  '\",\"entity\":' .. ARGV[4] .. '}')\n"
        "return sid\n",
};

/* KEYS[1] stream; ARGV order ('asc'|'desc'), exclusive start ('' = from the end), limit, scan
 * cap, entity id ('' = any), type patterns... Returns {next cursor or '', has_more, then id, type,
 * createdAt, entity per event}. Looks for limit + 1 matches to know whether there is more. */
static eg_script_t s_read = {
    .name = "events_read",
    .source =
        "local desc = ARGV[1] == 'desc'\n"
        "local cursor = ARGV[2]\n"
        "local limit = tonumber(ARGV[3])\n"
        "local cap = tonumber(ARGV[4])\n"
        "local want = ARGV[5]\n"
        "local pats = {}\n"
        "for i = 6, #ARGV do pats[#pats + 1] = ARGV[i] end\n"
        "local function match(t)\n"
        "  if #pats == 0 then return true end\n"
        "  for _, p in ipairs(pats) do\n"
        "    if p == '*' or p == t then return true end\n"
        "    if string.sub(p, -2) == '.*' and #t > #p - 1 and\n"
        "       string.sub(t, 1, #p - 1) == string.sub(p, 1, -2) then return true end\n"
        "  end\n"
        "  return false\n"
        "end\n"
        "local function entity_ok(s)\n"
        "  if want == '' then return true end\n"
        "  local ok, v = pcall(cjson.decode, s or '')\n"
        "  return ok and type(v) == 'table' and v.id == want\n"
        "end\n"
        "local out = {'', 0}\n"
        "local n, scanned, last = 0, 0, ''\n"
        "local batch = limit + 1\n"
        "if #pats > 0 and batch < 256 then batch = 256 end\n"
        "while true do\n"
        "  local es\n"
        "  if desc then\n"
        "    es = redis.call('XREVRANGE', KEYS[1], cursor == '' and '+' or '(' .. cursor, '-',\n"
        "                    'COUNT', batch)\n"
        "  else\n"
        "    es = redis.call('XRANGE', KEYS[1], cursor == '' and '-' or '(' .. cursor, '+',\n"
        "                    'COUNT', batch)\n"
        "  end\n"
        "  for _, e in ipairs(es) do\n"
        "    local f = {}\n"
        "    for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end\n"
        "    if match(f.type or '') and entity_ok(f.entity) then\n"
        "      if n == limit then out[1] = last; out[2] = 1; return out end\n"
        "      n = n + 1\n"
        "      last = e[1]\n"
        "      out[#out + 1] = e[1]\n"
        "      out[#out + 1] = f.type or ''\n"
        "      out[#out + 1] = f.createdAt or ''\n"
        "      out[#out + 1] = f.entity or '{}'\n"
        "    end\n"
        "    cursor = e[1]\n"
        "    scanned = scanned + 1\n"
        "  end\n"
        "  if #es < batch then return out end\n"
        "  if scanned >= cap then out[1] = cursor; out[2] = 1; return out end\n"
        "end\n",
};

/* ---- ids, types, workspaces -------------------------------------------------------------- */

bool eg__events_ws_valid(const char *ws_id)
{
    size_t n = 0;

    if (ws_id == NULL)
        return false;
    for (const char *s = ws_id; *s; s++, n++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0 && n <= EG__EVENTS_WS_MAX;
}

void eg__events_channel(const char *ws_id, char out[EG__EVENTS_WS_MAX + 16])
{
    snprintf(out, EG__EVENTS_WS_MAX + 16, "eg:events:%s", ws_id);
}

/* One segment of a type: [a-z0-9_]+ (the first segment must start with a letter). Returns the
 * length matched, 0 when the segment is empty or malformed. */
static size_t ev_type_segment(const char *s, bool first)
{
    size_t n = 0;

    if (first && !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

/* Length of the valid type at the front of s (stopping before ".*" or the end), or 0. */
static size_t ev_type_prefix(const char *s)
{
    size_t n = ev_type_segment(s, true);

    if (n == 0)
        return 0;
    while (s[n] == '.' && s[n + 1] != '*') {
        size_t seg = ev_type_segment(s + n + 1, false);

        if (seg == 0)
            return 0;
        n += 1 + seg;
    }
    return n <= EG_EVENT_TYPE_MAX ? n : 0;
}

bool eg_event_type_valid(const char *type)
{
    size_t n;

    if (type == NULL)
        return false;
    n = ev_type_prefix(type);
    return n > 0 && type[n] == '\0';
}

bool eg_event_type_pattern_valid(const char *pattern)
{
    size_t n;

    if (pattern == NULL)
        return false;
    if (strcmp(pattern, "*") == 0)
        return true;
    n = ev_type_prefix(pattern);
    return n > 0 && (pattern[n] == '\0' || strcmp(pattern + n, ".*") == 0);
}

bool eg_event_type_match(const char *pattern, const char *type)
{
    size_t plen;

    if (pattern == NULL || type == NULL)
        return false;
    if (strcmp(pattern, "*") == 0 || strcmp(pattern, type) == 0)
        return true;
    plen = strlen(pattern);
    /* "memory.*" matches "memory.created" and "memory.a.b", not "memory" or "memoryx". */
    return plen >= 2 && strcmp(pattern + plen - 2, ".*") == 0 && strlen(type) > plen - 1 &&
           strncmp(type, pattern, plen - 1) == 0;
}

/* Parse a decimal uint64 of 1..20 digits ending at stop; returns the end or NULL. */
static const char *ev_parse_u64(const char *s, char stop, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;

    for (; s[n] >= '0' && s[n] <= '9'; n++) {
        unsigned d = (unsigned)(s[n] - '0');

        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (n == 0 || n > 20 || s[n] != stop || (n > 1 && s[0] == '0'))
        return NULL;
    *out = v;
    return s + n;
}

int eg_event_id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    const char *p;
    uint64_t a, b;

    if (id == NULL || strncmp(id, "evt_", 4) != 0)
        return EG_EINVAL;
    p = ev_parse_u64(id + 4, '_', &a);
    if (p == NULL || ev_parse_u64(p + 1, '\0', &b) == NULL)
        return EG_EINVAL;
    if (ms != NULL)
        *ms = a;
    if (seq != NULL)
        *seq = b;
    return 0;
}

int eg_event_id_cmp(const char *a, const char *b)
{
    uint64_t am = 0, as = 0, bm = 0, bs = 0;
    int va = eg_event_id_parse(a, &am, &as) == 0, vb = eg_event_id_parse(b, &bm, &bs) == 0;

    if (va != vb)
        return va - vb;
    if (am != bm)
        return am < bm ? -1 : 1;
    if (as != bs)
        return as < bs ? -1 : 1;
    return 0;
}

void eg_events_minid(int64_t now_ms, char out[32])
{
    int64_t min = now_ms - EG_EVENTS_RETENTION_MS;

    /* Stream ids are unsigned: a clock before 1970 + 30 days keeps everything. */
    snprintf(out, 32, "%" PRId64 "-0", min > 0 ? min : 0);
}

/* "<ms>-<seq>" (a stream id as Redis returns it) → "evt_<ms>_<seq>"; false if malformed. */
static bool ev_id_from_stream(const char *sid, size_t len, char out[EG_EVENT_ID_MAX])
{
    char *dash;

    if (len == 0 || len >= EG_EVENT_ID_MAX - 4)
        return false;
    memcpy(out, "evt_", 4);
    memcpy(out + 4, sid, len);
    out[4 + len] = '\0';
    dash = strchr(out + 4, '-');
    if (dash == NULL)
        return false;
    *dash = '_';
    return eg_event_id_parse(out, NULL, NULL) == 0;
}

/* "evt_<ms>_<seq>" → "<ms>-<seq>". */
static int ev_id_to_stream(const char *id, char out[EG_EVENT_ID_MAX])
{
    uint64_t ms, seq;

    if (eg_event_id_parse(id, &ms, &seq) != 0)
        return EG_EINVAL;
    snprintf(out, EG_EVENT_ID_MAX, "%" PRIu64 "-%" PRIu64, ms, seq);
    return 0;
}

/* ---- operations -------------------------------------------------------------------------- */

typedef struct ev_op_s {
    eg_arena_t arena;
    union {
        eg_event_done_fn done;
        eg_event_emitted_fn emitted;
        eg_event_page_fn page;
        eg_event_get_fn get;
    } cb;
    void *udata;
    char ws[EG__EVENTS_WS_MAX + 1];
    /* emit: what the stored event is made of, to hand it back without a second round trip */
    const char *type, *created, *entity;
    bool want_event;
    eg_event_t ev; /* the stored event, built once the emit script answered */
} ev_op_t;

static ev_op_t *ev_op_new(const char *ws_id, void *udata)
{
    ev_op_t *op = eg_xcalloc(1, sizeof(*op));

    eg_arena_init(&op->arena);
    op->udata = udata;
    snprintf(op->ws, sizeof(op->ws), "%s", ws_id);
    return op;
}

static void ev_op_free(ev_op_t *op)
{
    eg_arena_destroy(&op->arena);
    free(op);
}

static char *ev_stream_key(ev_op_t *op)
{
    return eg_key(&op->arena, "w", op->ws, "events");
}

/* Serialize an event exactly as the emit script does (same fields, same order, no spaces). */
static void ev_build(eg_arena_t *a, eg_event_t *ev, const char *id, const char *type,
                     const char *created, const char *ws, const char *entity)
{
    char *json = eg_arena_printf(
        a,
        "{\"id\":\"%s\",\"type\":\"%s\",\"createdAt\":\"%s\",\"workspaceId\":\"%s\",\"entity\":%s}",
        id, type, created, ws, entity);

    ev->id = eg_arena_strdup(a, id);
    ev->type = eg_arena_strdup(a, type);
    ev->json = json;
    ev->len = strlen(json);
    ev->seq = 0;
}

/* createdAt as we write it: RFC 3339 characters only (it is embedded in JSON unescaped). */
static bool ev_created_valid(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == ':' || *s == '.' || *s == 'T' ||
              *s == 'Z'))
            return false;
    return true;
}

/* Redis error reply or transport error → our code (0 when the reply is usable). */
static int ev_reply_err(int err, const redisReply *r, const char *what)
{
    if (err != 0)
        return err;
    if (r == NULL)
        return EG_EUNAVAIL;
    if (r->type == REDIS_REPLY_ERROR) {
        eg_log_error("events: %s: %s", what, r->str);
        return EG_EREDIS;
    }
    return 0;
}

/* Turn one stored entry (stream id + fields) into an event in the arena; false when malformed
 * (never written by us: skipped rather than breaking the JSON a client receives). */
static bool ev_from_fields(eg_arena_t *a, eg_event_t *ev, const char *ws, const redisReply *sid,
                           const char *type, const char *created, const char *entity)
{
    char id[EG_EVENT_ID_MAX];

    if (sid->type != REDIS_REPLY_STRING || !ev_id_from_stream(sid->str, sid->len, id) ||
        !eg_event_type_valid(type) || !ev_created_valid(created) || entity[0] != '{') {
        eg_log_warn("events: skipping malformed entry %.*s in workspace %s",
                    sid->type == REDIS_REPLY_STRING ? (int)sid->len : 0,
                    sid->type == REDIS_REPLY_STRING ? sid->str : "", ws);
        return false;
    }
    ev_build(a, ev, id, type, created, ws, entity);
    return true;
}

static const char *ev_str(eg_arena_t *a, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return "";
    return eg_arena_strndup(a, r->str, r->len);
}

/* ---- emit -------------------------------------------------------------------------------- */

static eg_events_emit_hook_fn s_emit_hook;

void eg_events_set_emit_hook(eg_events_emit_hook_fn fn)
{
    s_emit_hook = fn;
}

/* Tell the emitter, once the event (and whatever the hook does with it) is durable. */
static void ev_emit_finish(ev_op_t *op, int err, const eg_event_t *ev)
{
    if (op->want_event)
        op->cb.emitted(op->udata, err, err ? NULL : ev);
    else
        op->cb.done(op->udata, err, err ? NULL : ev->id);
    ev_op_free(op);
}

static void on_hook_done(void *ctx, int err)
{
    ev_op_t *op = ctx;

    ev_emit_finish(op, err, &op->ev);
}

static void on_emitted(void *udata, int err, redisReply *r)
{
    ev_op_t *op = udata;
    char id[EG_EVENT_ID_MAX];

    err = ev_reply_err(err, r, "emit");
    if (err == 0 && (r->type != REDIS_REPLY_STRING || !ev_id_from_stream(r->str, r->len, id))) {
        eg_log_error("events: emit: unexpected reply type %d", r->type);
        err = EG_EREDIS;
    }
    if (err != 0) {
        ev_emit_finish(op, err, NULL);
        return;
    }
    ev_build(&op->arena, &op->ev, id, op->type, op->created, op->ws, op->entity);
    /* The hook runs before the emitter is told, so that an acknowledged event has had its
     * consequences (queued webhook deliveries) made durable too; op lives until it is done. */
    if (s_emit_hook != NULL)
        s_emit_hook(op->ws, &op->ev, on_hook_done, op);
    else
        ev_emit_finish(op, 0, &op->ev);
}

static int ev_emit(const char *ws_id, const char *type, const cJSON *entity, eg_event_done_fn done,
                   eg_event_emitted_fn emitted, void *udata)
{
    char minid[32], created[32], channel[EG__EVENTS_WS_MAX + 16];
    const char *argv[7];
    ev_op_t *op = NULL;
    char *json = NULL;
    int rc = EG_EINVAL;

    if (!eg__events_ws_valid(ws_id) || !eg_event_type_valid(type) || !cJSON_IsObject(entity) ||
        (done == NULL && emitted == NULL))
        goto fail;
    json = cJSON_PrintUnformatted(entity);
    if (json == NULL) {
        rc = EG_EINTERNAL;
        goto fail;
    }
    op = ev_op_new(ws_id, udata);
    op->want_event = emitted != NULL;
    if (emitted != NULL)
        op->cb.emitted = emitted;
    else
        op->cb.done = done;
    /* createdAt is this process's clock; the stream id uses Redis's. They differ by the clock
     * skew between the two, which is harmless: ordering and retention follow the stream id. */
    eg_time_iso8601(eg_now_ms(), created);
    eg_events_minid(eg_now_ms(), minid);
    eg__events_channel(ws_id, channel);
    op->type = eg_arena_strdup(&op->arena, type);
    op->created = eg_arena_strdup(&op->arena, created);
    op->entity = eg_arena_strdup(&op->arena, json);
    argv[0] = ev_stream_key(op);
    argv[1] = minid;
    argv[2] = type;
    argv[3] = created;
    argv[4] = json;
    argv[5] = ws_id;
    argv[6] = channel;
    rc = eg_store_eval(&s_emit, on_emitted, op, 1, 7, argv, NULL);
    if (rc != 0)
        goto fail;
    cJSON_free(json);
    return 0;

fail:
    if (op != NULL)
        ev_op_free(op);
    if (json != NULL)
        cJSON_free(json);
    return rc;
}

int eg_event_emit(const char *ws_id, const char *type, const cJSON *entity, eg_event_done_fn done,
                  void *udata)
{
    return done != NULL ? ev_emit(ws_id, type, entity, done, NULL, udata) : EG_EINVAL;
}

int eg_event_emit_ev(const char *ws_id, const char *type, const cJSON *entity,
                     eg_event_emitted_fn done, void *udata)
{
    return done != NULL ? ev_emit(ws_id, type, entity, NULL, done, udata) : EG_EINVAL;
}

/* ---- read a page ------------------------------------------------------------------------- */

static void on_read(void *udata, int err, redisReply *r)
{
    ev_op_t *op = udata;
    eg_event_page_t page = {0};
    eg_event_t *evs = NULL;
    char next[EG_EVENT_ID_MAX];
    size_t nev;

    err = ev_reply_err(err, r, "read");
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
                     (r->elements - 2) % 4 != 0 || r->element[1]->type != REDIS_REPLY_INTEGER)) {
        eg_log_error("events: read: unexpected reply type %d", r->type);
        err = EG_EREDIS;
    }
    if (err != 0) {
        op->cb.page(op->udata, err, NULL);
        goto done;
    }
    nev = (r->elements - 2) / 4;
    evs = eg_arena_calloc(&op->arena, (nev ? nev : 1) * sizeof(*evs));
    for (size_t i = 0; i < nev; i++) {
        redisReply **f = &r->element[2 + 4 * i];

        if (ev_from_fields(&op->arena, &evs[page.n], op->ws, f[0], ev_str(&op->arena, f[1]),
                           ev_str(&op->arena, f[2]), ev_str(&op->arena, f[3])))
            page.n++;
    }
    page.events = evs;
    page.has_more = r->element[1]->integer != 0;
    if (page.has_more) {
        if (!ev_id_from_stream(r->element[0]->str, r->element[0]->len, next)) {
            op->cb.page(op->udata, EG_EREDIS, NULL);
            goto done;
        }
        page.next_cursor = next;
    }
    op->cb.page(op->udata, 0, &page);
done:
    ev_op_free(op);
}

int eg_events_read(const char *ws_id, const eg_event_query_t *q, eg_event_page_fn cb, void *udata)
{
    const char *argv[6 + EG_EVENT_TYPES_MAX];
    char after[EG_EVENT_ID_MAX] = "", limit[16], cap[16];
    ev_op_t *op = NULL;
    int rc = EG_EINVAL;

    if (!eg__events_ws_valid(ws_id) || q == NULL || cb == NULL || q->limit < 1 ||
        q->limit > EG_EVENTS_LIMIT_MAX || q->ntypes > EG_EVENT_TYPES_MAX ||
        (q->ntypes > 0 && q->types == NULL))
        return EG_EINVAL;
    if (q->after != NULL && ev_id_to_stream(q->after, after) != 0)
        return EG_EINVAL;
    if (q->entity_id != NULL && (q->entity_id[0] == '\0' || strlen(q->entity_id) > 256))
        return EG_EINVAL;
    for (size_t i = 0; i < q->ntypes; i++)
        if (!eg_event_type_pattern_valid(q->types[i]))
            return EG_EINVAL;
    op = ev_op_new(ws_id, udata);
    op->cb.page = cb;
    snprintf(limit, sizeof(limit), "%d", q->limit);
    snprintf(cap, sizeof(cap), "%d", EV_SCAN_CAP);
    argv[0] = ev_stream_key(op);
    argv[1] = q->desc ? "desc" : "asc";
    argv[2] = after;
    argv[3] = limit;
    argv[4] = cap;
    argv[5] = q->entity_id != NULL ? q->entity_id : "";
    for (size_t i = 0; i < q->ntypes; i++)
        argv[6 + i] = q->types[i];
    rc = eg_store_eval(&s_read, on_read, op, 1, 6 + (int)q->ntypes, argv, NULL);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    ev_op_free(op);
    return rc;
}

/* ---- get by id --------------------------------------------------------------------------- */

static void on_get(void *udata, int err, redisReply *r)
{
    ev_op_t *op = udata;
    const char *type = "", *created = "", *entity = "";
    const redisReply *e, *f;
    eg_event_t ev;

    err = ev_reply_err(err, r, "get");
    if (err == 0 && r->type != REDIS_REPLY_ARRAY) {
        eg_log_error("events: get: unexpected reply type %d", r->type);
        err = EG_EREDIS;
    }
    if (err == 0 && r->elements == 0)
        err = EG_ENOTFOUND;
    if (err != 0) {
        op->cb.get(op->udata, err, NULL);
        goto done;
    }
    /* XRANGE key id id: [[id, [field, value, ...]]] */
    e = r->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY) {
        op->cb.get(op->udata, EG_EREDIS, NULL);
        goto done;
    }
    f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i];

        if (k->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "type") == 0)
            type = ev_str(&op->arena, f->element[i + 1]);
        else if (strcmp(k->str, "createdAt") == 0)
            created = ev_str(&op->arena, f->element[i + 1]);
        else if (strcmp(k->str, "entity") == 0)
            entity = ev_str(&op->arena, f->element[i + 1]);
    }
    if (!ev_from_fields(&op->arena, &ev, op->ws, e->element[0], type, created, entity)) {
        op->cb.get(op->udata, EG_ENOTFOUND, NULL);
        goto done;
    }
    op->cb.get(op->udata, 0, &ev);
done:
    ev_op_free(op);
}

int eg_events_get(const char *ws_id, const char *id, eg_event_get_fn cb, void *udata)
{
    char sid[EG_EVENT_ID_MAX];
    const char *argv[6];
    ev_op_t *op;
    int rc;

    if (!eg__events_ws_valid(ws_id) || cb == NULL)
        return EG_EINVAL;
    if (ev_id_to_stream(id, sid) != 0)
        return EG_ENOTFOUND;
    op = ev_op_new(ws_id, udata);
    op->cb.get = cb;
    argv[0] = "XRANGE";
    argv[1] = ev_stream_key(op);
    argv[2] = sid;
    argv[3] = sid;
    argv[4] = "COUNT";
    argv[5] = "1";
    rc = eg_store_commandv(on_get, op, 6, argv, NULL);
    if (rc != 0)
        ev_op_free(op);
    return rc;
}
