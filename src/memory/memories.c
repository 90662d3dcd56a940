/* Memories (engram/memories.h): selecting units over the bank's index, fetching the records of
 * the shown ones, the listing and one memory.
 *
 * Every call acquires the bank's index first and does its selecting synchronously inside the
 * acquire callback (the index may change once control returns to the loop), copying out the ids
 * it will show. The records are then read by id, and their entities' names after them: two round
 * trips, whatever the size of the bank. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memories_int.h"

/* ---- small helpers -------------------------------------------------------------------------- */

void *eg__memreq_new(size_t size, const char *ws_id, const char *bank_id, void *udata)
{
    eg__memreq_t *r = eg_xcalloc(1, size);

    eg_arena_init(&r->arena);
    r->ws_id = eg_arena_strdup(&r->arena, ws_id);
    r->bank_id = eg_arena_strdup(&r->arena, bank_id);
    r->udata = udata;
    return r;
}

void eg__memreq_free(void *req)
{
    eg__memreq_t *r = req;

    if (r == NULL)
        return;
    eg_arena_destroy(&r->arena);
    free(r);
}

char *eg__mem_scope_id(eg_arena_t *a, const char *ws_id, const char *bank_id)
{
    return eg_arena_printf(a, "%s/%s", ws_id, bank_id);
}

uint64_t *eg__bitmap_new(eg_arena_t *a, size_t nbits)
{
    return eg_arena_calloc(a, ((nbits + 63) / 64 + 1) * sizeof(uint64_t));
}

static size_t u64_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return (size_t)k;
}

static void u64set_alloc(eg__u64set_t *s, size_t cap)
{
    s->keys = eg_arena_alloc(s->a, cap * sizeof(uint64_t));
    memset(s->keys, 0xff, cap * sizeof(uint64_t));
    s->mask = cap - 1;
}

void eg__u64set_init(eg__u64set_t *s, eg_arena_t *a, size_t expect)
{
    size_t cap = 16;

    while (cap < expect * 2)
        cap <<= 1;
    s->a = a;
    s->n = 0;
    u64set_alloc(s, cap);
}

bool eg__u64set_add(eg__u64set_t *s, uint64_t key)
{
    size_t i;

    if ((s->n + 1) * 2 > s->mask + 1) {
        uint64_t *old = s->keys;
        size_t oldcap = s->mask + 1;

        u64set_alloc(s, oldcap * 2);
        s->n = 0;
        for (size_t j = 0; j < oldcap; j++)
            if (old[j] != UINT64_MAX)
                eg__u64set_add(s, old[j]);
    }
    for (i = u64_hash(key) & s->mask; s->keys[i] != UINT64_MAX; i = (i + 1) & s->mask)
        if (s->keys[i] == key)
            return false;
    s->keys[i] = key;
    s->n++;
    return true;
}

static const char **strs_copy(eg_arena_t *a, const char *const *v, size_t n)
{
    const char **out;

    if (v == NULL || n == 0)
        return NULL;
    out = eg_arena_alloc(a, n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = eg_arena_strdup(a, v[i]);
    return out;
}

eg_mem_unit_t *eg__mem_unit_copy(eg_arena_t *a, const eg_mem_unit_t *u)
{
    eg_mem_unit_t *c = eg_arena_alloc(a, sizeof(*c));

    *c = *u;
    c->id = eg_arena_strdup(a, u->id);
    c->text = eg_arena_strdup(a, u->text ? u->text : "");
    c->context = eg_arena_strdup(a, u->context ? u->context : "");
    c->tags = strs_copy(a, u->tags, u->ntags);
    c->entity_ids = strs_copy(a, u->entity_ids, u->nentities);
    c->source_ids = strs_copy(a, u->source_ids, u->nsources);
    c->document_id = eg_arena_strdup(a, u->document_id);
    c->chunk_id = eg_arena_strdup(a, u->chunk_id);
    c->invalidation_reason = eg_arena_strdup(a, u->invalidation_reason);
    c->consolidation_error = eg_arena_strdup(a, u->consolidation_error);
    c->history = NULL;
    if (u->history != NULL) {
        cJSON *h = cJSON_Duplicate(u->history, true);

        eg_arena_defer(a, (void (*)(void *))cJSON_Delete, h);
        c->history = h;
    }
    c->metadata = NULL;
    if (u->metadata != NULL) {
        cJSON *m = cJSON_Duplicate(u->metadata, true);

        eg_arena_defer(a, (void (*)(void *))cJSON_Delete, m);
        c->metadata = m;
    }
    return c;
}

eg_memories_query_t *eg__mem_query_copy(eg_arena_t *a, const eg_memories_query_t *q)
{
    eg_memories_query_t *c = eg_arena_alloc(a, sizeof(*c));

    *c = *q;
    c->text = eg_arena_strdup(a, q->text);
    c->document_id = eg_arena_strdup(a, q->document_id);
    c->chunk_id = eg_arena_strdup(a, q->chunk_id);
    c->entity_id = eg_arena_strdup(a, q->entity_id);
    c->tags = strs_copy(a, q->tags, q->ntags);
    return c;
}

const char **eg__mem_slot_ids(eg_arena_t *a, eg_mindex_t *ix, const uint32_t *slots, size_t n)
{
    const char **ids = eg_arena_alloc(a, (n ? n : 1) * sizeof(*ids));

    for (size_t i = 0; i < n; i++)
        ids[i] = eg_arena_strdup(a, eg_mindex_unit(ix, slots[i])->id);
    return ids;
}

/* ---- selection ------------------------------------------------------------------------------ */

static uint32_t tag_lookup(void *udata, const char *tag)
{
    return eg_mindex_tag(udata, tag);
}

/* Units holding every keyword term of text: a bitmap, or NULL when text has no indexed terms
 * (stopwords only), which filters nothing. *none is set when some term occurs nowhere. */
static uint64_t *text_bitmap(eg_arena_t *a, eg_mindex_t *ix, const char *text, bool *none)
{
    const char **terms = NULL;
    size_t nterms = eg_text_terms(a, text, strlen(text), EG_MINDEX_BM25_FLAGS, &terms);
    size_t nslots = eg_mindex_slots(ix), words = (nslots + 63) / 64 + 1;
    eg_bm25_t *bm = eg_mindex_bm25(ix);
    uint64_t *acc = NULL, *cur;
    eg_hit_t *hits;

    *none = false;
    if (nterms == 0)
        return NULL;
    hits = eg_arena_alloc(a, (eg_mindex_count(ix) + 1) * sizeof(*hits));
    cur = eg__bitmap_new(a, nslots);
    for (size_t t = 0; t < nterms; t++) {
        eg_bm25_query_t bq = {.k = eg_mindex_count(ix), .allow = acc, .allow_nbits = nslots};
        size_t nh;

        if (eg_bm25_df(bm, terms[t]) == 0) {
            *none = true;
            return NULL;
        }
        nh = bq.k ? eg_bm25_search(bm, &terms[t], 1, &bq, hits) : 0;
        memset(cur, 0, words * sizeof(uint64_t));
        for (size_t i = 0; i < nh; i++)
            eg__bit_set(cur, hits[i].doc);
        if (acc == NULL) {
            acc = cur;
            cur = eg__bitmap_new(a, nslots);
        } else {
            for (size_t w = 0; w < words; w++)
                acc[w] &= cur[w];
        }
    }
    return acc;
}

/* Split a chunk id "<bank>_<document>_<index>" of bank_id into its document and index. */
static bool chunk_parse(eg_arena_t *a, const char *bank_id, const char *chunk_id, const char **doc,
                        uint32_t *index)
{
    size_t blen = strlen(bank_id), len = strlen(chunk_id);
    const char *rest, *us;
    int64_t v;

    if (len <= blen + 1 || strncmp(chunk_id, bank_id, blen) != 0 || chunk_id[blen] != '_')
        return false;
    rest = chunk_id + blen + 1;
    us = strrchr(rest, '_');
    if (us == NULL || us == rest || eg_parse_int64(us + 1, 0, UINT32_MAX - 1, &v) != 0)
        return false;
    *doc = eg_arena_strndup(a, rest, (size_t)(us - rest));
    *index = (uint32_t)v;
    return true;
}

static unsigned effective_types(const eg_memories_query_t *q)
{
    unsigned all = (1u << EG_FACT_NTYPES) - 1, m = q->types ? q->types & all : all;

    switch (q->consolidation) {
    case EG_MEM_CONSOLIDATION_ANY:
        return m;
    case EG_MEM_CONSOLIDATION_PENDING:
        return m & ((1u << EG_FACT_WORLD) | (1u << EG_FACT_EXPERIENCE));
    case EG_MEM_CONSOLIDATION_DONE:
    case EG_MEM_CONSOLIDATION_FAILED:
        return m & ((1u << EG_FACT_WORLD) | (1u << EG_FACT_EXPERIENCE));
    }
    return m;
}

static int64_t created_of(eg_mindex_t *ix, uint32_t slot)
{
    return eg_mindex_unit(ix, slot)->created_at;
}

size_t eg__mem_select(eg_arena_t *a, eg_mindex_t *ix, const char *bank_id,
                      const eg_memories_query_t *q, uint32_t **out)
{
    unsigned types = effective_types(q);
    uint32_t doc = EG_MINDEX_NONE, chunk = EG_MINDEX_NONE, ent;
    uint64_t *ents = NULL, *words = NULL;
    eg_tagfilter_t *tf = NULL;
    const uint32_t *order;
    size_t n = 0, norder = 0;
    uint32_t *sel;
    bool none = false;

    *out = NULL;
    if (q->none || types == 0 || eg_mindex_count(ix) == 0)
        return 0;
    if (q->document_id && eg_mindex_doc_by_id(ix, q->document_id, &doc) != 0)
        return 0;
    if (q->chunk_id) {
        const char *cdoc;
        uint32_t cdi;

        if (!chunk_parse(a, bank_id, q->chunk_id, &cdoc, &chunk) ||
            eg_mindex_doc_by_id(ix, cdoc, &cdi) != 0 || (doc != EG_MINDEX_NONE && doc != cdi))
            return 0;
        doc = cdi;
    }
    if (q->entity_id) {
        const eg_mindex_entity_t *e;

        if (eg_mindex_entity_by_id(ix, q->entity_id, &ent) != 0 ||
            (e = eg_mindex_entity(ix, ent)) == NULL)
            return 0;
        ents = eg__bitmap_new(a, eg_mindex_slots(ix));
        for (uint32_t i = 0; i < e->nslots; i++)
            eg__bit_set(ents, e->slots[i]);
    }
    if (q->text && q->text[0]) {
        words = text_bitmap(a, ix, q->text, &none);
        if (none)
            return 0;
    }
    eg_tagfilter_compile(a, q->tags, q->ntags, q->tags_match, NULL, 0, tag_lookup, ix, &tf);
    order = eg_mindex_by_time(ix, &norder);
    sel = eg_arena_alloc(a, (norder ? norder : 1) * sizeof(*sel));
    /* by_time is ascending with the undated first: walking it backwards gives the newest first
     * and the undated last (those by created_at descending). */
    for (size_t i = norder; i-- > 0;) {
        uint32_t s = order[i];
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);

        if (u == NULL || !(types & (1u << u->type)))
            continue;
        if (q->consolidation != EG_MEM_CONSOLIDATION_ANY &&
            u->cstate != (q->consolidation == EG_MEM_CONSOLIDATION_DONE     ? EG_MINDEX_CONS_DONE
                          : q->consolidation == EG_MEM_CONSOLIDATION_FAILED ? EG_MINDEX_CONS_FAILED
                                                                           : EG_MINDEX_CONS_PENDING))
            continue;
        if ((q->state == EG_MEM_STATE_VALID && u->invalidated) ||
            (q->state == EG_MEM_STATE_INVALIDATED && !u->invalidated))
            continue;
        if ((doc != EG_MINDEX_NONE && u->doc != doc) ||
            (chunk != EG_MINDEX_NONE && u->chunk != chunk))
            continue;
        if ((ents && !eg__bit(ents, s)) || (words && !eg__bit(words, s)))
            continue;
        if (tf && !eg_tagfilter_match(tf, u->tags, u->ntags))
            continue;
        sel[n++] = s;
    }
    /* Units mentioned at the same instant are ordered by created_at descending too (the index
     * breaks those ties by slot). The runs are short: an insertion sort per run. */
    for (size_t i = 0; i < n;) {
        int64_t m = eg_mindex_unit(ix, sel[i])->mentioned_at;
        size_t j = i + 1;

        while (j < n && m != EG_MEM_TIME_NONE && eg_mindex_unit(ix, sel[j])->mentioned_at == m)
            j++;
        for (size_t k = i + 1; k < j; k++) {
            uint32_t v = sel[k];
            size_t p = k;

            while (p > i && created_of(ix, sel[p - 1]) < created_of(ix, v)) {
                sel[p] = sel[p - 1];
                p--;
            }
            sel[p] = v;
        }
        i = j;
    }
    *out = sel;
    return n;
}

/* ---- fetching records ----------------------------------------------------------------------- */

typedef struct fetch_s {
    eg_arena_t *a;
    const char *ws_id, *bank_id;
    eg__mem_fetch_fn cb;
    void *udata;
    size_t nids;
    eg_mem_unit_t **units; /* by id position, NULL when gone */
    const char **eids;     /* distinct entity ids, sorted */
    const char **enames;   /* their names, NULL when gone */
    size_t neids;
} fetch_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void fetch_finish(fetch_t *f)
{
    eg_memory_t *items = eg_arena_calloc(f->a, (f->nids ? f->nids : 1) * sizeof(*items));
    uint32_t *pos = eg_arena_alloc(f->a, (f->nids ? f->nids : 1) * sizeof(*pos));
    size_t n = 0;

    for (size_t i = 0; i < f->nids; i++) {
        eg_mem_unit_t *u = f->units[i];
        const char **names;
        size_t nn = 0;

        pos[i] = UINT32_MAX;
        if (u == NULL)
            continue;
        names = eg_arena_alloc(f->a, (u->nentities ? u->nentities : 1) * sizeof(*names));
        for (size_t e = 0; e < u->nentities; e++) {
            const char **hit =
                f->neids ? bsearch(&u->entity_ids[e], f->eids, f->neids, sizeof(*f->eids), cmp_str)
                         : NULL;

            if (hit && f->enames[hit - f->eids])
                names[nn++] = f->enames[hit - f->eids];
        }
        items[n].unit = u;
        items[n].entity_names = names;
        items[n].nentity_names = nn;
        pos[i] = (uint32_t)n++;
    }
    f->cb(f->udata, 0, items, n, pos);
}

static void on_fetch_entities(void *udata, int err, const eg_mem_entity_t *const *ents, size_t n)
{
    fetch_t *f = udata;

    if (err) {
        f->cb(f->udata, err, NULL, 0, NULL);
        return;
    }
    for (size_t i = 0; i < n && i < f->neids; i++)
        f->enames[i] = ents[i] ? eg_arena_strdup(f->a, ents[i]->canonical_name) : NULL;
    fetch_finish(f);
}

static void on_fetch_units(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    fetch_t *f = udata;
    size_t total = 0, k = 0;
    int rc;

    if (err) {
        f->cb(f->udata, err, NULL, 0, NULL);
        return;
    }
    for (size_t i = 0; i < f->nids; i++) {
        f->units[i] = i < n && units[i] ? eg__mem_unit_copy(f->a, units[i]) : NULL;
        total += f->units[i] ? f->units[i]->nentities : 0;
    }
    if (total == 0) {
        fetch_finish(f);
        return;
    }
    f->eids = eg_arena_alloc(f->a, total * sizeof(*f->eids));
    for (size_t i = 0; i < f->nids; i++)
        for (size_t e = 0; f->units[i] && e < f->units[i]->nentities; e++)
            f->eids[k++] = f->units[i]->entity_ids[e];
    qsort(f->eids, k, sizeof(*f->eids), cmp_str);
    f->neids = 0;
    for (size_t i = 0; i < k; i++)
        if (f->neids == 0 || strcmp(f->eids[f->neids - 1], f->eids[i]) != 0)
            f->eids[f->neids++] = f->eids[i];
    f->enames = eg_arena_calloc(f->a, f->neids * sizeof(*f->enames));
    rc = eg_mem_entities_get(f->ws_id, f->bank_id, f->eids, f->neids, on_fetch_entities, f);
    if (rc)
        f->cb(f->udata, rc, NULL, 0, NULL);
}

int eg__mem_fetch(eg_arena_t *a, const char *ws_id, const char *bank_id, const char *const *ids,
                  size_t n, eg__mem_fetch_fn cb, void *udata)
{
    fetch_t *f = eg_arena_calloc(a, sizeof(*f));

    f->a = a;
    f->ws_id = ws_id;
    f->bank_id = bank_id;
    f->cb = cb;
    f->udata = udata;
    f->nids = n;
    f->units = eg_arena_calloc(a, (n ? n : 1) * sizeof(*f->units));
    return eg_mem_units_get(ws_id, bank_id, ids, n, on_fetch_units, f);
}

/* ---- the listing ---------------------------------------------------------------------------- */

typedef struct list_req_s {
    eg__memreq_t r;
    eg_memories_query_t *q;
    eg_memories_list_fn cb;
    size_t total;
} list_req_t;

static void list_done(list_req_t *lr, int err, const eg_memory_t *items, size_t n)
{
    lr->cb(lr->r.udata, err, items, n, err ? 0 : lr->total);
    eg__memreq_free(lr);
}

static void on_list_fetched(void *udata, int err, eg_memory_t *items, size_t n, const uint32_t *pos)
{
    (void)pos;
    list_done(udata, err, items, n);
}

static void on_list_index(void *udata, int err, eg_mindex_t *ix)
{
    list_req_t *lr = udata;
    uint32_t *sel;
    size_t n, from, count;
    int rc;

    if (err) {
        list_done(lr, err, NULL, 0);
        return;
    }
    n = eg__mem_select(&lr->r.arena, ix, lr->r.bank_id, lr->q, &sel);
    lr->total = n;
    from = EG_MIN(lr->q->offset, n);
    count = EG_MIN(EG_MIN(lr->q->limit, n - from), (size_t)EG_MEMORIES_FETCH_MAX);
    if (count == 0) {
        list_done(lr, 0, NULL, 0);
        return;
    }
    rc = eg__mem_fetch(&lr->r.arena, lr->r.ws_id, lr->r.bank_id,
                       eg__mem_slot_ids(&lr->r.arena, ix, sel + from, count), count,
                       on_list_fetched, lr);
    if (rc)
        list_done(lr, rc, NULL, 0);
}

int eg_memories_list(const char *ws_id, const char *bank_id, const eg_memories_query_t *q,
                     eg_memories_list_fn cb, void *udata)
{
    list_req_t *lr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || q == NULL || cb == NULL)
        return EG_EINVAL;
    lr = eg__memreq_new(sizeof(*lr), ws_id, bank_id, udata);
    lr->q = eg__mem_query_copy(&lr->r.arena, q);
    lr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_list_index, lr);
    if (rc)
        eg__memreq_free(lr);
    return rc;
}

/* ---- one memory ----------------------------------------------------------------------------- */

typedef struct get_req_s {
    eg__memreq_t r;
    eg_memory_fn cb;
    eg_memory_t *m;
} get_req_t;

static int cmp_mentioned_desc(const void *pa, const void *pb)
{
    const eg_memory_t *a = pa, *b = pb;
    int64_t x = a->unit->mentioned_at, y = b->unit->mentioned_at;

    if (x == y)
        return 0;
    if (x == EG_MEM_TIME_NONE)
        return 1;
    if (y == EG_MEM_TIME_NONE)
        return -1;
    return x > y ? -1 : 1;
}

static void on_get_sources(void *udata, int err, eg_memory_t *items, size_t n, const uint32_t *pos)
{
    get_req_t *gr = udata;

    (void)pos;
    if (err == 0 && n > 1)
        qsort(items, n, sizeof(*items), cmp_mentioned_desc);
    gr->cb(gr->r.udata, err, err ? NULL : gr->m, items, err ? 0 : n);
    eg__memreq_free(gr);
}

static void on_get_fetched(void *udata, int err, eg_memory_t *items, size_t n, const uint32_t *pos)
{
    get_req_t *gr = udata;
    const eg_mem_unit_t *u;
    int rc;

    (void)pos;
    if (err == 0 && n == 0)
        err = EG_ENOTFOUND;
    if (err) {
        gr->cb(gr->r.udata, err, NULL, NULL, 0);
        eg__memreq_free(gr);
        return;
    }
    gr->m = &items[0];
    u = gr->m->unit;
    if (u->type != EG_FACT_OBSERVATION || u->nsources == 0) {
        gr->cb(gr->r.udata, 0, gr->m, NULL, 0);
        eg__memreq_free(gr);
        return;
    }
    rc = eg__mem_fetch(&gr->r.arena, gr->r.ws_id, gr->r.bank_id, u->source_ids, u->nsources,
                       on_get_sources, gr);
    if (rc) {
        gr->cb(gr->r.udata, rc, NULL, NULL, 0);
        eg__memreq_free(gr);
    }
}

int eg_memories_get(const char *ws_id, const char *bank_id, const char *unit_id, eg_memory_fn cb,
                    void *udata)
{
    get_req_t *gr;
    const char *ids[1];
    int rc;

    if (ws_id == NULL || bank_id == NULL || unit_id == NULL || cb == NULL)
        return EG_EINVAL;
    gr = eg__memreq_new(sizeof(*gr), ws_id, bank_id, udata);
    gr->cb = cb;
    ids[0] = eg_arena_strdup(&gr->r.arena, unit_id);
    rc = eg__mem_fetch(&gr->r.arena, gr->r.ws_id, gr->r.bank_id, ids, 1, on_get_fetched, gr);
    if (rc)
        eg__memreq_free(gr);
    return rc;
}
