/* Memories (engram/memories.h): the bank's statistics and time series, its tags and its entities.
 *
 * All of it is counted over the bank's index; statistics add the bank record's counters and the
 * bank's operation records, and the entity listing reads the records of the page it shows. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memories_int.h"

#define TEMPORAL_WINDOW_US (INT64_C(24) * 3600 * 1000000)
#define TEMPORAL_MAX       20

/* ---- statistics ----------------------------------------------------------------------------- */

typedef struct stats_req_s {
    eg__memreq_t r;
    eg_memstats_fn cb;
    eg_memstats_t st;
    size_t index_docs;
} stats_req_t;

static void stats_done(stats_req_t *sr, int err)
{
    sr->cb(sr->r.udata, err, err ? NULL : &sr->st);
    eg__memreq_free(sr);
}

static bool valid_slot(eg_mindex_t *ix, uint32_t s)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

    return u != NULL && !u->invalidated;
}

/* Temporal neighbours among valid units, each pair once. The neighbour lists of all units are
 * kept flat (at most 20 per slot), so "does v list u too" is a scan of 20 slots rather than a
 * hash set of every pair: a pair both sides list counts from its lower slot, a pair only one
 * side lists counts from that side. */
static void count_temporal(stats_req_t *sr, eg_mindex_t *ix)
{
    eg_memstats_t *st = &sr->st;
    size_t nslots = eg_mindex_slots(ix);
    uint32_t *nb = eg_arena_alloc(&sr->r.arena, (nslots * TEMPORAL_MAX + 1) * sizeof(*nb));
    uint8_t *nn = eg_arena_calloc(&sr->r.arena, nslots + 1);
    eg_mindex_link_t near[TEMPORAL_MAX];

    for (uint32_t s = 0; s < nslots; s++) {
        size_t n;

        if (!valid_slot(ix, s))
            continue;
        n = eg_mindex_time_near(ix, s, TEMPORAL_WINDOW_US, TEMPORAL_MAX, near);
        for (size_t t = 0; t < n; t++)
            if (near[t].slot != s && near[t].slot < nslots && valid_slot(ix, near[t].slot))
                nb[(size_t)s * TEMPORAL_MAX + nn[s]++] = near[t].slot;
    }
    for (uint32_t s = 0; s < nslots; s++) {
        for (uint8_t t = 0; t < nn[s]; t++) {
            uint32_t v = nb[(size_t)s * TEMPORAL_MAX + t];
            bool mutual = false;

            if (v < s) {
                for (uint8_t k = 0; k < nn[v] && !mutual; k++)
                    mutual = nb[(size_t)v * TEMPORAL_MAX + k] == s;
                if (mutual)
                    continue; /* counted from v */
            }
            st->links[EG_LINK_TEMPORAL]++;
            st->links_by_fact[eg_mindex_unit(ix, EG_MIN(s, v))->type][EG_LINK_TEMPORAL]++;
        }
    }
}

/* Counts over the index: valid units by type; links among valid units, each pair once — stored
 * links from the lower slot's side, temporal neighbours (count_temporal) — and for each entity
 * the chain of the valid units naming it. */
static void count_index(stats_req_t *sr, eg_mindex_t *ix)
{
    eg_memstats_t *st = &sr->st;
    size_t nslots = eg_mindex_slots(ix), nents = eg_mindex_entities(ix);

    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

        if (u == NULL)
            continue;
        if (u->invalidated) {
            st->invalidated++;
            continue;
        }
        st->units[u->type]++;
        if (u->type != EG_FACT_OBSERVATION) {
            st->pending_consolidation += u->cstate == EG_MINDEX_CONS_PENDING;
            st->failed_consolidation += u->cstate == EG_MINDEX_CONS_FAILED;
        }
        for (uint32_t l = 0; l < u->nlinks; l++) {
            const eg_mindex_link_t *lk = &u->links[l];

            if (lk->slot <= s || lk->type >= EG_LINK_NTYPES || !valid_slot(ix, lk->slot))
                continue;
            st->links[lk->type]++;
            st->links_by_fact[u->type][lk->type]++;
        }
    }
    count_temporal(sr, ix);
    for (uint32_t e = 0; e < nents; e++) {
        const eg_mindex_entity_t *ent = eg_mindex_entity(ix, e);
        const eg_mindex_unit_t *prev = NULL;

        if (ent == NULL)
            continue;
        st->entities++;
        /* The units naming it form a chain (as in the memory graph): k units, k - 1 links. */
        for (uint32_t i = 0; i < ent->nslots; i++) {
            const eg_mindex_unit_t *u = eg_mindex_unit(ix, ent->slots[i]);

            if (u == NULL || u->invalidated)
                continue;
            if (prev) {
                st->links[EG_MEMGRAPH_ENTITY]++;
                st->links_by_fact[prev->type][EG_MEMGRAPH_ENTITY]++;
            }
            prev = u;
        }
    }
    for (size_t d = 0; d < eg_mindex_docs(ix); d++)
        sr->index_docs += eg_mindex_doc(ix, (uint32_t)d) != NULL;
}

static void on_stats_ops(void *udata, int err, const eg_op_t *ops, size_t n, size_t total,
                         const size_t counts[5])
{
    stats_req_t *sr = udata;

    (void)ops;
    (void)n;
    (void)total;
    if (err == 0)
        memcpy(sr->st.ops, counts, sizeof(sr->st.ops));
    stats_done(sr, err);
}

static void on_stats_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    stats_req_t *sr = udata;
    eg_op_filter_t f = {.status = EG_OP_KEEP, .counts = true};
    int rc;

    (void)created;
    if (err && err != EG_ENOTFOUND) {
        stats_done(sr, err);
        return;
    }
    sr->st.documents = sr->index_docs;
    if (err == 0) {
        if (bank->document_count > 0)
            sr->st.documents = (size_t)bank->document_count;
        sr->st.last_write_ms = bank->last_write_ms;
        sr->st.last_consolidated_ms = bank->last_consolidated_ms;
    }
    rc = eg_op_page("b", eg__mem_scope_id(&sr->r.arena, sr->r.ws_id, sr->r.bank_id), &f, 0, 0,
                    on_stats_ops, sr);
    if (rc)
        stats_done(sr, rc);
}

static void on_stats_index(void *udata, int err, eg_mindex_t *ix)
{
    stats_req_t *sr = udata;
    int rc;

    if (err) {
        stats_done(sr, err);
        return;
    }
    count_index(sr, ix);
    rc = eg_bank_get(sr->r.ws_id, sr->r.bank_id, on_stats_bank, sr);
    if (rc)
        stats_done(sr, rc);
}

int eg_memories_stats(const char *ws_id, const char *bank_id, eg_memstats_fn cb, void *udata)
{
    stats_req_t *sr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || cb == NULL)
        return EG_EINVAL;
    sr = eg__memreq_new(sizeof(*sr), ws_id, bank_id, udata);
    sr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_stats_index, sr);
    if (rc)
        eg__memreq_free(sr);
    return rc;
}

/* ---- time series ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t n;
    int64_t width;
    const char *trunc;
} periods[] = {
    [EG_TS_1H] = {"1h", 60, 60 * EG_TEXT_US_PER_SEC, "minute"},
    [EG_TS_12H] = {"12h", 12, 3600 * EG_TEXT_US_PER_SEC, "hour"},
    [EG_TS_1D] = {"1d", 24, 3600 * EG_TEXT_US_PER_SEC, "hour"},
    [EG_TS_7D] = {"7d", 7, EG_TEXT_US_PER_DAY, "day"},
    [EG_TS_30D] = {"30d", 30, EG_TEXT_US_PER_DAY, "day"},
    [EG_TS_90D] = {"90d", 90, EG_TEXT_US_PER_DAY, "day"},
};

static const char *const field_names[] = {"created_at", "mentioned_at", "occurred_start"};

int eg_ts_period_parse(const char *s, eg_ts_period_t *out)
{
    for (size_t i = 0; s && i < EG_ARRAY_SIZE(periods); i++) {
        if (strcmp(s, periods[i].name) == 0) {
            *out = (eg_ts_period_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

const char *eg_ts_period_name(eg_ts_period_t p)
{
    return (size_t)p < EG_ARRAY_SIZE(periods) ? periods[p].name : "7d";
}

int eg_ts_field_parse(const char *s, eg_ts_field_t *out)
{
    for (size_t i = 0; s && i < EG_ARRAY_SIZE(field_names); i++) {
        if (strcmp(s, field_names[i]) == 0) {
            *out = (eg_ts_field_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

const char *eg_ts_field_name(eg_ts_field_t f)
{
    return (size_t)f < EG_ARRAY_SIZE(field_names) ? field_names[f] : field_names[0];
}

static int64_t floor_to(int64_t t, int64_t unit)
{
    int64_t q = t / unit;

    if (t % unit != 0 && t < 0)
        q--;
    return q * unit;
}

const char *eg_ts_buckets(eg_ts_period_t p, int64_t now_us, int64_t *first, int64_t *width_us,
                          size_t *n)
{
    if ((size_t)p >= EG_ARRAY_SIZE(periods))
        p = EG_TS_7D;
    *n = periods[p].n;
    *width_us = periods[p].width;
    *first = floor_to(now_us, periods[p].width) - (int64_t)(periods[p].n - 1) * periods[p].width;
    return periods[p].trunc;
}

typedef struct ts_req_s {
    eg__memreq_t r;
    eg_ts_period_t p;
    eg_ts_field_t f;
    int64_t now;
    eg_memories_ts_fn cb;
} ts_req_t;

static void on_ts_index(void *udata, int err, eg_mindex_t *ix)
{
    ts_req_t *tr = udata;
    int64_t first, width;
    size_t n, nslots;
    const char *trunc = eg_ts_buckets(tr->p, tr->now, &first, &width, &n);
    eg_ts_bucket_t *b;

    if (err) {
        tr->cb(tr->r.udata, err, trunc, NULL, 0);
        eg__memreq_free(tr);
        return;
    }
    b = eg_arena_calloc(&tr->r.arena, n * sizeof(*b));
    for (size_t i = 0; i < n; i++)
        b[i].start = first + (int64_t)i * width;
    nslots = eg_mindex_slots(ix);
    for (uint32_t s = 0; s < nslots; s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        int64_t t;

        if (u == NULL || u->invalidated)
            continue;
        t = tr->f == EG_TS_MENTIONED  ? u->mentioned_at
            : tr->f == EG_TS_OCCURRED ? u->occurred_start
                                      : u->created_at;
        if (t == EG_MEM_TIME_NONE)
            t = u->created_at;
        if (t == EG_MEM_TIME_NONE || t < first || (t - first) / width >= (int64_t)n)
            continue;
        b[(t - first) / width].counts[u->type]++;
    }
    tr->cb(tr->r.udata, 0, trunc, b, n);
    eg__memreq_free(tr);
}

int eg_memories_timeseries(const char *ws_id, const char *bank_id, eg_ts_period_t p,
                           eg_ts_field_t f, int64_t now_us, eg_memories_ts_fn cb, void *udata)
{
    ts_req_t *tr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || cb == NULL || (size_t)p >= EG_ARRAY_SIZE(periods) ||
        (size_t)f >= EG_ARRAY_SIZE(field_names))
        return EG_EINVAL;
    tr = eg__memreq_new(sizeof(*tr), ws_id, bank_id, udata);
    tr->p = p;
    tr->f = f;
    tr->now = now_us;
    tr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_ts_index, tr);
    if (rc)
        eg__memreq_free(tr);
    return rc;
}

/* ---- tags ----------------------------------------------------------------------------------- */

bool eg_memories_tag_match(const char *pattern, const char *tag)
{
    const char *star = NULL, *resume = NULL;

    /* Greedy wildcard match with backtracking to the last '*' (linear in practice). */
    while (*tag) {
        if (*pattern == '*') {
            star = pattern++;
            resume = tag;
        } else if (*pattern && tolower((unsigned char)*pattern) == tolower((unsigned char)*tag)) {
            pattern++;
            tag++;
        } else if (star) {
            pattern = star + 1;
            tag = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

typedef struct tags_req_s {
    eg__memreq_t r;
    char *pattern;
    size_t limit, offset;
    eg_memories_tags_fn cb;
} tags_req_t;

static int cmp_tag_count(const void *pa, const void *pb)
{
    const eg_tag_count_t *a = pa, *b = pb;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->tag, b->tag);
}

static void on_tags_index(void *udata, int err, eg_mindex_t *ix)
{
    tags_req_t *tr = udata;
    size_t ntags, n = 0, from, count;
    eg_tag_count_t *v;

    if (err) {
        tr->cb(tr->r.udata, err, NULL, 0, 0);
        eg__memreq_free(tr);
        return;
    }
    ntags = eg_mindex_ntags(ix);
    v = eg_arena_alloc(&tr->r.arena, (ntags ? ntags : 1) * sizeof(*v));
    for (uint32_t id = 0; id < ntags; id++) {
        const char *name = eg_mindex_tag_name(ix, id);
        uint32_t units = eg_mindex_tag_units(ix, id);

        if (name == NULL || units == 0 ||
            (tr->pattern && !eg_memories_tag_match(tr->pattern, name)))
            continue;
        v[n].tag = eg_arena_strdup(&tr->r.arena, name);
        v[n++].count = units;
    }
    qsort(v, n, sizeof(*v), cmp_tag_count);
    from = EG_MIN(tr->offset, n);
    count = EG_MIN(tr->limit, n - from);
    tr->cb(tr->r.udata, 0, v + from, count, n);
    eg__memreq_free(tr);
}

int eg_memories_tags(const char *ws_id, const char *bank_id, const char *pattern, size_t limit,
                     size_t offset, eg_memories_tags_fn cb, void *udata)
{
    tags_req_t *tr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || cb == NULL)
        return EG_EINVAL;
    tr = eg__memreq_new(sizeof(*tr), ws_id, bank_id, udata);
    tr->pattern = eg_arena_strdup(&tr->r.arena, pattern);
    tr->limit = limit;
    tr->offset = offset;
    tr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_tags_index, tr);
    if (rc)
        eg__memreq_free(tr);
    return rc;
}

/* ---- entities ------------------------------------------------------------------------------- */

typedef struct ents_req_s {
    eg__memreq_t r;
    size_t limit, offset, total;
    eg_memories_entities_fn cb;
} ents_req_t;

typedef struct ent_rank_s {
    const char *id;
    int64_t mentions, last;
} ent_rank_t;

static int cmp_ent_rank(const void *pa, const void *pb)
{
    const ent_rank_t *a = pa, *b = pb;
    int64_t la = a->last == EG_MEM_TIME_NONE ? INT64_MIN : a->last;
    int64_t lb = b->last == EG_MEM_TIME_NONE ? INT64_MIN : b->last;

    if (a->mentions != b->mentions)
        return a->mentions > b->mentions ? -1 : 1;
    if (la != lb)
        return la > lb ? -1 : 1;
    return strcmp(a->id, b->id);
}

static void ents_done(ents_req_t *er, int err, const eg_mem_entity_t *v, size_t n)
{
    er->cb(er->r.udata, err, v, n, err ? 0 : er->total);
    eg__memreq_free(er);
}

static void on_ents_records(void *udata, int err, const eg_mem_entity_t *const *ents, size_t n)
{
    ents_req_t *er = udata;
    eg_mem_entity_t *v;
    size_t k = 0;

    if (err) {
        ents_done(er, err, NULL, 0);
        return;
    }
    v = eg_arena_alloc(&er->r.arena, (n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        if (ents[i])
            v[k++] = *ents[i]; /* its strings stay valid: the callback runs within this one */
    ents_done(er, 0, v, k);
}

static void on_ents_index(void *udata, int err, eg_mindex_t *ix)
{
    ents_req_t *er = udata;
    size_t nents, n = 0, from, count;
    const char **ids;
    ent_rank_t *v;
    int rc;

    if (err) {
        ents_done(er, err, NULL, 0);
        return;
    }
    nents = eg_mindex_entities(ix);
    v = eg_arena_alloc(&er->r.arena, (nents ? nents : 1) * sizeof(*v));
    for (uint32_t e = 0; e < nents; e++) {
        const eg_mindex_entity_t *ent = eg_mindex_entity(ix, e);

        if (ent == NULL)
            continue;
        v[n++] =
            (ent_rank_t){.id = ent->id, .mentions = ent->mention_count, .last = ent->last_seen};
    }
    qsort(v, n, sizeof(*v), cmp_ent_rank);
    er->total = n;
    from = EG_MIN(er->offset, n);
    count = EG_MIN(EG_MIN(er->limit, n - from), (size_t)EG_MEMORIES_FETCH_MAX);
    if (count == 0) {
        ents_done(er, 0, NULL, 0);
        return;
    }
    ids = eg_arena_alloc(&er->r.arena, count * sizeof(*ids));
    for (size_t i = 0; i < count; i++)
        ids[i] = eg_arena_strdup(&er->r.arena, v[from + i].id);
    rc = eg_mem_entities_get(er->r.ws_id, er->r.bank_id, ids, count, on_ents_records, er);
    if (rc)
        ents_done(er, rc, NULL, 0);
}

int eg_memories_entities(const char *ws_id, const char *bank_id, size_t limit, size_t offset,
                         eg_memories_entities_fn cb, void *udata)
{
    ents_req_t *er;
    int rc;

    if (ws_id == NULL || bank_id == NULL || cb == NULL)
        return EG_EINVAL;
    er = eg__memreq_new(sizeof(*er), ws_id, bank_id, udata);
    er->limit = limit;
    er->offset = offset;
    er->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_ents_index, er);
    if (rc)
        eg__memreq_free(er);
    return rc;
}
