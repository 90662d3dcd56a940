/* Keyset pages over a hash of JSON records ordered by a zset of "<created µs>:<id>" members, all
 * scored 0 so that ZRANGE BYLEX walks them in creation order (engram/zpage.h).
 *
 * One script reads a page: limit + 1 members past the cursor in the walking direction (the extra
 * one tells whether a next page exists), one member on the other side of the cursor (whether a
 * previous page exists), and the records. Walking backwards (a previous-page cursor) reads the
 * members before the cursor in reverse and the page is flipped back into display order. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/store.h"
#include "engram/zpage.h"

/* KEYS zset, hash; ARGV cursor ('' = none), forward (1 = increasing members), limit.
 * Returns {more_after, more_before, member, value, member, value, ...} in walking order, where
 * more_after says a member exists beyond the page and more_before one before the cursor. */
static eg_script_t s_page = {
    .name = "zpage",
    .source =
        "local cur, fwd, limit = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])\n"
        "local ms, before\n"
        "if fwd then\n"
        "  local lo = cur == '' and '-' or '(' .. cur\n"
        "  ms = redis.call('ZRANGE', KEYS[1], lo, '+', 'BYLEX', 'LIMIT', 0, limit + 1)\n"
        "  if cur ~= '' then\n"
        "    before = redis.call('ZRANGE', KEYS[1], '[' .. cur, '-', 'BYLEX', 'REV', 'LIMIT', 0, "
        "1)\n"
        "  end\n"
        "else\n"
        "  local hi = cur == '' and '+' or '(' .. cur\n"
        "  ms = redis.call('ZRANGE', KEYS[1], hi, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)\n"
        "  if cur ~= '' then\n"
        "    before = redis.call('ZRANGE', KEYS[1], '[' .. cur, '+', 'BYLEX', 'LIMIT', 0, 1)\n"
        "  end\n"
        "end\n"
        "local out = {#ms > limit and 1 or 0, (before and #before > 0) and 1 or 0}\n"
        "for i = 1, math.min(#ms, limit) do\n"
        "  local m = ms[i]\n"
        "  local id = string.sub(m, 18)\n"
        "  local v = redis.call('HGET', KEYS[2], id)\n"
        "  out[#out + 1] = m\n"
        "  out[#out + 1] = v or false\n"
        "end\n"
        "return out\n",
};

typedef struct zp_op_s {
    eg_zpage_fn cb;
    void *udata;
    bool asc, backwards, had_cursor;
} zp_op_t;

bool eg_zpage_member_valid(const char *s)
{
    size_t n;

    if (s == NULL)
        return false;
    for (n = 0; n < 16; n++)
        if (s[n] < '0' || s[n] > '9')
            return false;
    if (s[16] != ':')
        return false;
    for (n = 17; s[n]; n++)
        if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f || n >= 117)
            return false;
    return n > 17;
}

void eg_zpage_member(int64_t created_us, const char *id, char *out, size_t cap)
{
    if (created_us < 0)
        created_us = 0;
    snprintf(out, cap, "%016" PRId64 ":%s", created_us, id);
}

static void on_page(void *udata, int err, redisReply *r)
{
    zp_op_t *op = udata;
    const char **ids = NULL, **values = NULL, **members = NULL;
    eg_zpage_t page = {0};
    bool more_after, more_before;
    size_t n = 0;

    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 2)) {
        err = EG_EREDIS;
    }
    if (err != 0) {
        op->cb(op->udata, err, NULL);
        free(op);
        return;
    }
    more_after = r->element[0]->integer != 0;
    more_before = r->element[1]->integer != 0;
    n = (r->elements - 2) / 2;
    ids = calloc(n + 1, sizeof(*ids));
    values = calloc(n + 1, sizeof(*values));
    members = calloc(n + 1, sizeof(*members));
    if (ids == NULL || values == NULL || members == NULL) {
        free(ids);
        free(values);
        free(members);
        op->cb(op->udata, EG_EINTERNAL, NULL);
        free(op);
        return;
    }
    /* A backwards walk ran against the display order: flip the page back. */
    bool flip = op->backwards;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *m = r->element[2 + 2 * i], *v = r->element[3 + 2 * i];
        if (m->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue; /* a member whose record is gone */
        size_t at = k++;
        members[at] = m->str;
        ids[at] = m->str + 17;
        values[at] = v->str;
    }
    if (flip) {
        for (size_t i = 0; i < k / 2; i++) {
            const char *t;
            t = members[i], members[i] = members[k - 1 - i], members[k - 1 - i] = t;
            t = ids[i], ids[i] = ids[k - 1 - i], ids[k - 1 - i] = t;
            t = values[i], values[i] = values[k - 1 - i], values[k - 1 - i] = t;
        }
    }
    page.ids = ids;
    page.values = values;
    page.n = k;
    /* In display order: the page after the last item exists when the walk found more beyond it
     * (forward walks) or when something lies past the cursor (backward walks); the page before
     * the first item, the other way round. */
    bool has_next = op->backwards ? more_before : more_after;
    bool has_prev = op->backwards ? more_after : more_before;
    if (k > 0) {
        page.next = has_next ? members[k - 1] : NULL;
        page.prev = has_prev ? members[0] : NULL;
    }
    op->cb(op->udata, 0, &page);
    free(ids);
    free(values);
    free(members);
    free(op);
}

int eg_zpage(const eg_zpage_req_t *q, eg_zpage_fn cb, void *udata)
{
    const char *argv[5];
    char limit[24];
    zp_op_t *op;
    int rc;

    if (q == NULL || q->zkey == NULL || q->hkey == NULL || q->limit < 1 ||
        q->limit > EG_ZPAGE_LIMIT_MAX || (q->cursor != NULL && !eg_zpage_member_valid(q->cursor)))
        return EG_EINVAL;
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return EG_EINTERNAL;
    op->cb = cb;
    op->udata = udata;
    op->asc = q->asc;
    op->backwards = q->cursor != NULL && q->backwards;
    op->had_cursor = q->cursor != NULL;
    snprintf(limit, sizeof(limit), "%zu", q->limit);
    argv[0] = q->zkey;
    argv[1] = q->hkey;
    argv[2] = q->cursor != NULL ? q->cursor : "";
    /* Display order increasing (asc) walks forward; a backwards page walks the other way. */
    argv[3] = (q->asc != op->backwards) ? "1" : "0";
    argv[4] = limit;
    rc = eg_store_eval(&s_page, on_page, op, 2, 5, argv, NULL);
    if (rc != 0)
        free(op);
    return rc;
}
