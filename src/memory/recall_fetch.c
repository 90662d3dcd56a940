/* The asynchronous recall: acquire the bank's index, rank in memory (recall.c), then fetch the
 * records of what is shown — the kept results, the observations of their entities, their chunks —
 * from Redis. Units and the first chunks go out together (one round trip); further chunks are
 * fetched only while the chunk budget is not spent. With include.source_facts the observation
 * results' source ids are known only once their records are in (the index does not keep them),
 * so one more HMGET reads the sources that are not among the results.
 *
 * Everything the index says is copied out inside the acquire callback (the index may change once
 * control returns to the loop), and the records are copied into the operation's arena as they
 * arrive (the store's are valid only during its callback). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/embed.h"
#include "engram/error.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/recall.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"

#include "recall_int.h"

#define CHUNK_BATCH_FIRST 16
#define CHUNK_BATCH       64

typedef struct {
    const char *id, *name;
    size_t first, n; /* its observations: op->ids[first .. first + n) */
} ent_pick_t;

typedef struct recall_op_s {
    eg_arena_t a;
    char *ws, *bank;
    eg_recall_req_t req;
    eg_recall_fn cb;
    void *udata;
    eg_recall_stats_t stats;
    uint64_t t_fetch;

    /* The kept results: their ids first in ids[], then the entities' observations. */
    eg_recall_cand_t *cands;
    size_t n;
    const char **ids;
    size_t nids, ids_cap;
    const eg_mem_unit_t **units; /* copies, NULL when missing */
    const char ***names;         /* entity names per result */
    size_t *nnames;
    ent_pick_t *ents;
    size_t nents;

    /* Chunks in rank order, fetched in batches while the budget lasts. */
    const char **chunk_ids;
    size_t nchunk_ids, chunk_next, chunk_used;
    eg_recall_chunk_t *chunks;
    size_t nchunks;
    bool chunks_done;

    /* include.source_facts: the distinct sources of the observation results in order of first
     * mention, their records (NULL when missing), each result's sources as indexes into them
     * (none for a result that is not a live observation), and which ones the second HMGET
     * reads. */
    const char **src_ids;
    const eg_mem_unit_t **src_units;
    size_t nsrc;
    uint32_t **obs_srcs;
    size_t *obs_nsrcs;
    size_t *src_fetch;
    size_t nfetch;

    eg_recall_trace_cand_t *trace;
    size_t ntrace;

    int pending, err;
    const char *qtext[1]; /* the query, for an embedder that is not builtin */
} recall_op_t;

static const char *const *strv_copy(eg_arena_t *a, const char *const *v, size_t n)
{
    const char **o;

    if (!n)
        return NULL;
    o = eg_arena_alloc(a, n * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        o[i] = eg_arena_strdup(a, v[i]);
    return o;
}

static void op_free(recall_op_t *op)
{
    eg_arena_destroy(&op->a);
    free(op);
}

/* prefer_observations: drop the facts that are sources of an observation among items[0..n),
 * keeping the order; returns the new count. */
static size_t prefer_observations(eg_recall_item_t *items, size_t n)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        bool covered = false;

        for (size_t k = 0; !covered && items[i].unit->type != EG_FACT_OBSERVATION && k < n; k++) {
            const eg_mem_unit_t *o = items[k].unit;

            for (size_t s = 0; !covered && o->type == EG_FACT_OBSERVATION && s < o->nsources; s++)
                covered = strcmp(o->source_ids[s], items[i].unit->id) == 0;
        }
        if (!covered)
            items[m++] = items[i];
    }
    return m;
}

/* The source facts that fit the budgets, into res. */
static void fill_sources(recall_op_t *op, eg_recall_result_t *res)
{
    eg_arena_t *a = &op->a;
    const eg_mem_unit_t **out;
    uint32_t *tokens;
    bool *keep;

    if (!op->nsrc)
        return;
    tokens = eg_arena_alloc(a, op->nsrc * sizeof(*tokens));
    keep = eg_arena_alloc(a, op->nsrc * sizeof(*keep));
    for (size_t f = 0; f < op->nsrc; f++) {
        const eg_mem_unit_t *u = op->src_units[f];
        size_t t;

        if (!u || u->invalidated) {
            tokens[f] = UINT32_MAX;
            continue;
        }
        t = eg_text_estimate_tokens(u->text, strlen(u->text));
        tokens[f] = (uint32_t)EG_MIN(t, (size_t)UINT32_MAX - 1);
    }
    res->source_facts_truncated = eg_recall_fill_sources(
        tokens, op->nsrc, (const uint32_t *const *)op->obs_srcs, op->obs_nsrcs, op->n,
        op->req.source_facts_max_tokens, op->req.source_facts_max_tokens_per_observation, keep);
    out = eg_arena_alloc(a, op->nsrc * sizeof(*out));
    for (size_t f = 0; f < op->nsrc; f++)
        if (keep[f])
            out[res->nsource_facts++] = op->src_units[f];
    res->source_facts = out;
}

static void finish(recall_op_t *op, int err)
{
    eg_recall_result_t res;
    eg_arena_t *a = &op->a;

    memset(&res, 0, sizeof(res));
    if (err) {
        op->cb(op->udata, err, NULL);
        op_free(op);
        return;
    }
    res.items = op->n ? eg_arena_calloc(a, op->n * sizeof(eg_recall_item_t)) : NULL;
    for (size_t i = 0; i < op->n; i++) {
        eg_recall_item_t *it = &res.items[res.n];
        const eg_recall_cand_t *c = &op->cands[i];

        /* Deleted or invalidated between the ranking and the fetch. */
        if (!op->units[i] || op->units[i]->invalidated)
            continue;
        it->unit = op->units[i];
        it->entity_names = op->names[i];
        it->nentity_names = op->nnames[i];
        it->final = c->final;
        it->semantic = c->arm[EG_RECALL_ARM_SEMANTIC];
        it->keyword = c->arm[EG_RECALL_ARM_KEYWORD];
        it->rank_score = c->rank_score;
        res.n++;
    }
    if (op->req.prefer_observations)
        res.n = prefer_observations(res.items, res.n);
    if (op->req.entities) {
        res.entities =
            op->nents ? eg_arena_calloc(a, op->nents * sizeof(eg_recall_entity_t)) : NULL;
        for (size_t e = 0; e < op->nents; e++) {
            eg_recall_entity_t *re = &res.entities[res.nentities++];
            const eg_mem_unit_t **obs =
                op->ents[e].n ? eg_arena_alloc(a, op->ents[e].n * sizeof(*obs)) : NULL;

            re->id = op->ents[e].id;
            re->canonical_name = op->ents[e].name;
            re->observations = obs;
            for (size_t j = 0; j < op->ents[e].n; j++) {
                const eg_mem_unit_t *u = op->units[op->ents[e].first + j];
                if (u && !u->invalidated)
                    obs[re->nobservations++] = u;
            }
        }
    }
    if (op->req.chunks) {
        res.chunks = op->chunks;
        res.nchunks = op->nchunks;
    }
    if (op->req.source_facts)
        fill_sources(op, &res);
    if (op->req.trace) {
        res.stats = &op->stats;
        res.candidates = op->trace;
        res.ncandidates = op->ntrace;
        res.fetch_ms = op->t_fetch ? (double)(eg_mono_ns() - op->t_fetch) / 1e6 : 0;
    }
    op->cb(op->udata, 0, &res);
    op_free(op);
}

static void fetch_step(recall_op_t *op);

/* The bank's unit hash, eg:{b:<ws>/<bank>}:u. */
static const char *units_key(recall_op_t *op)
{
    return eg_key(&op->a, "b", eg_arena_printf(&op->a, "%s/%s", op->ws, op->bank), "u");
}

/* Decode an HMGET reply of n unit records straight into the operation's arena: the i-th into
 * out[at ? at[i] : i] (left NULL when missing). Returns err, or EG_EREDIS for a bad reply. */
static int decode_units(recall_op_t *op, int err, const redisReply *r, size_t n,
                        const eg_mem_unit_t **out, const size_t *at)
{
    if (!err && r->type == REDIS_REPLY_ERROR)
        err = EG_EREDIS;
    else if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != n))
        err = EG_EREDIS;
    for (size_t i = 0; !err && i < n; i++) {
        const redisReply *e = r->element[i];
        eg_mem_unit_t *u;

        if (e->type != REDIS_REPLY_STRING)
            continue;
        u = eg_arena_alloc(&op->a, sizeof(*u));
        if (eg__recall_unit_decode(&op->a, e->str, e->len, u) == 0)
            out[at ? at[i] : i] = u;
        else
            eg_log_warn("recall: a stored unit record does not parse; treated as missing");
    }
    return err;
}

/* A small string map (id -> index) in the arena, sized for at most max keys. */
typedef struct {
    const char **keys;
    uint32_t *vals;
    size_t mask;
} idmap_t;

static void idmap_init(idmap_t *m, eg_arena_t *a, size_t max)
{
    size_t cap = 16;

    while (cap < 2 * max)
        cap *= 2;
    m->keys = eg_arena_calloc(a, cap * sizeof(*m->keys));
    m->vals = eg_arena_alloc(a, cap * sizeof(*m->vals));
    m->mask = cap - 1;
}

/* The slot of key: its value, or *added set and val stored when it was absent (add true) or
 * NULL (add false). */
static uint32_t *idmap_put(idmap_t *m, const char *key, uint32_t val, bool add, bool *added)
{
    size_t h = 1469598103934665603u;

    *added = false;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        if (!m->keys[i]) {
            if (!add)
                return NULL;
            m->keys[i] = key;
            m->vals[i] = val;
            *added = true;
            return &m->vals[i];
        }
        if (!strcmp(m->keys[i], key))
            return &m->vals[i];
    }
}

/* The HMGET reply of the sources that are not among the results. */
static void on_sources(void *udata, int err, redisReply *r)
{
    recall_op_t *op = udata;

    if ((err = decode_units(op, err, r, op->nfetch, op->src_units, op->src_fetch)) != 0)
        op->err = err;
    op->pending--;
    fetch_step(op);
}

/* include.source_facts, once the results' records are in: number the distinct sources of the
 * live observation results in order of first mention, take the records of those that are results
 * themselves, and read the others with one HMGET. 0 or a store error. */
static int fetch_sources(recall_op_t *op)
{
    eg_arena_t *a = &op->a;
    idmap_t results, seen;
    size_t total = 0;
    const char **argv;
    bool added;
    int rc;

    for (size_t i = 0; i < op->n; i++) {
        const eg_mem_unit_t *u = op->units[i];
        if (u && !u->invalidated && u->type == EG_FACT_OBSERVATION)
            total += u->nsources;
    }
    if (!total)
        return 0;
    op->obs_srcs = eg_arena_calloc(a, op->n * sizeof(*op->obs_srcs));
    op->obs_nsrcs = eg_arena_calloc(a, op->n * sizeof(*op->obs_nsrcs));
    op->src_ids = eg_arena_alloc(a, total * sizeof(*op->src_ids));
    op->src_units = eg_arena_calloc(a, total * sizeof(*op->src_units));
    op->src_fetch = eg_arena_alloc(a, total * sizeof(*op->src_fetch));
    idmap_init(&results, a, op->n);
    for (size_t i = 0; i < op->n; i++)
        idmap_put(&results, op->ids[i], (uint32_t)i, true, &added);
    idmap_init(&seen, a, total);
    for (size_t i = 0; i < op->n; i++) {
        const eg_mem_unit_t *u = op->units[i];

        if (!u || u->invalidated || u->type != EG_FACT_OBSERVATION || !u->nsources)
            continue;
        op->obs_srcs[i] = eg_arena_alloc(a, u->nsources * sizeof(uint32_t));
        for (size_t s = 0; s < u->nsources; s++) {
            const char *id = u->source_ids[s];
            uint32_t *f = idmap_put(&seen, id, (uint32_t)op->nsrc, true, &added);

            if (added) {
                const uint32_t *r = idmap_put(&results, id, 0, false, &added);

                op->src_ids[op->nsrc] = id;
                if (r)
                    op->src_units[op->nsrc] = op->units[*r]; /* NULL when it vanished */
                else
                    op->src_fetch[op->nfetch++] = op->nsrc;
                op->nsrc++;
            }
            op->obs_srcs[i][op->obs_nsrcs[i]++] = *f;
        }
    }
    if (!op->nfetch)
        return 0;
    argv = eg_arena_alloc(a, (op->nfetch + 2) * sizeof(*argv));
    argv[0] = "HMGET";
    argv[1] = units_key(op);
    for (size_t k = 0; k < op->nfetch; k++)
        argv[k + 2] = op->src_ids[op->src_fetch[k]];
    if ((rc = eg_store_commandv(on_sources, op, (int)(op->nfetch + 2), argv, NULL)) == 0)
        op->pending++;
    return rc;
}

/* The HMGET reply of the units. The sources of the observation results are asked for at once
 * (their ids are in these records). */
static void on_units(void *udata, int err, redisReply *r)
{
    recall_op_t *op = udata;

    err = decode_units(op, err, r, op->nids, op->units, NULL);
    if (!err && op->req.source_facts)
        err = fetch_sources(op);
    if (err)
        op->err = err;
    op->pending--;
    fetch_step(op);
}

/* Add fetched chunks in order while the chunk budget lasts; the one that overflows it is cut. */
static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *chunks, size_t n)
{
    recall_op_t *op = udata;
    size_t budget = op->req.chunks_max_tokens;

    if (err)
        op->err = err;
    for (size_t i = 0; !err && i < n && !op->chunks_done; i++) {
        const eg_mem_chunk_t *ch = chunks[i];
        eg_recall_chunk_t *rc;
        size_t len, tok, cut;

        if (!ch)
            continue;
        if (op->chunk_used >= budget) {
            op->chunks_done = true;
            break;
        }
        len = strlen(ch->text);
        tok = eg_text_estimate_tokens(ch->text, len);
        rc = &op->chunks[op->nchunks];
        rc->id = eg_arena_strdup(&op->a, ch->id);
        rc->chunk_index = ch->chunk_index;
        if (op->chunk_used + tok <= budget) {
            rc->text = eg_arena_strndup(&op->a, ch->text, len);
            op->chunk_used += tok;
            op->nchunks++;
            continue;
        }
        op->chunks_done = true;
        cut = eg_recall_cut_tokens(ch->text, len, budget - op->chunk_used);
        if (!cut)
            break;
        rc->text = eg_arena_strndup(&op->a, ch->text, cut);
        rc->truncated = true;
        op->chunk_used = budget;
        op->nchunks++;
    }
    op->pending--;
    fetch_step(op);
}

static int fetch_chunks(recall_op_t *op, size_t batch)
{
    size_t n = EG_MIN(batch, op->nchunk_ids - op->chunk_next);
    int rc = eg_mem_chunks_get(op->ws, op->bank, op->chunk_ids + op->chunk_next, n, on_chunks, op);

    if (rc == 0) {
        op->chunk_next += n;
        op->pending++;
    }
    return rc;
}

/* Called after every reply: finish once nothing is pending and no more chunks are wanted. */
static void fetch_step(recall_op_t *op)
{
    int rc;

    if (op->pending)
        return;
    if (op->err) {
        finish(op, op->err);
        return;
    }
    if (op->req.chunks && !op->chunks_done && op->chunk_next < op->nchunk_ids) {
        if ((rc = fetch_chunks(op, CHUNK_BATCH)) != 0)
            finish(op, rc);
        return;
    }
    finish(op, 0);
}

static int cmp_obs(const void *pa, const void *pb)
{
    const eg_mindex_unit_t *a = *(const eg_mindex_unit_t *const *)pa;
    const eg_mindex_unit_t *b = *(const eg_mindex_unit_t *const *)pb;

    if (a->mentioned_at != b->mentioned_at)
        return a->mentioned_at > b->mentioned_at ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* Append id to op->ids, growing it in the arena. */
static void ids_push(recall_op_t *op, const char *id)
{
    if (op->nids == op->ids_cap) {
        size_t cap = op->ids_cap ? op->ids_cap * 2 : 64;
        const char **v = eg_arena_alloc(&op->a, cap * sizeof(*v));

        if (op->nids)
            memcpy(v, op->ids, op->nids * sizeof(*v));
        op->ids = v;
        op->ids_cap = cap;
    }
    op->ids[op->nids++] = id;
}

/* The entities of the kept results in order of first mention, each with its observations (newest
 * first), while the entity budget lasts: a name costs its tokens, each observation its text's;
 * the fill stops at the first that does not fit. Their observation ids are appended to ids[].
 * Observations are looked for among an entity's units only when the bank has any (an entity
 * such as a city can have thousands of units). */
static void pick_entities(recall_op_t *op, eg_mindex_t *ix)
{
    eg_arena_t *a = &op->a;
    eg__slotmap_t seen;
    size_t used = 0, budget = op->req.entities_max_tokens, cap = 0;
    bool full = false, observations = eg__recall_type_count(ix, EG_FACT_OBSERVATION) > 0;
    const eg_mindex_unit_t **obs = NULL;
    size_t obs_cap = 0;

    for (size_t i = 0; i < op->n; i++)
        cap += eg_mindex_unit(ix, op->cands[i].slot)->nents;
    op->ents = cap ? eg_arena_calloc(a, cap * sizeof(ent_pick_t)) : NULL;
    eg__slotmap_init(&seen, a, cap);
    for (size_t i = 0; i < op->n && !full; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, op->cands[i].slot);

        for (size_t j = 0; j < u->nents && !full; j++) {
            const eg_mindex_entity_t *e = eg_mindex_entity(ix, u->ents[j]);
            size_t nobs = 0, tok;
            bool added;
            ent_pick_t *p;

            if (!e)
                continue;
            eg__slotmap_put(&seen, u->ents[j], 0, &added);
            if (!added)
                continue;
            tok = eg_text_estimate_tokens(e->name, strlen(e->name));
            if (used + tok > budget) {
                full = true;
                break;
            }
            used += tok;
            p = &op->ents[op->nents++];
            p->id = eg_arena_strdup(a, e->id);
            p->name = eg_arena_strdup(a, e->name);
            p->first = op->nids;
            if (!observations)
                continue;
            if (e->nslots > obs_cap) {
                obs_cap = e->nslots;
                obs = eg_arena_alloc(a, obs_cap * sizeof(*obs));
            }
            for (size_t k = 0; k < e->nslots; k++) {
                const eg_mindex_unit_t *o = eg_mindex_unit(ix, e->slots[k]);
                if (o && !o->invalidated && o->type == EG_FACT_OBSERVATION)
                    obs[nobs++] = o;
            }
            if (nobs > 1)
                qsort(obs, nobs, sizeof(*obs), cmp_obs);
            for (size_t k = 0; k < nobs; k++) {
                if (used + obs[k]->tokens > budget) {
                    full = true;
                    break;
                }
                used += obs[k]->tokens;
                ids_push(op, eg_arena_strdup(a, obs[k]->id));
                p->n++;
            }
        }
    }
}

/* The chunks of the kept results, unique, in rank order. */
static void pick_chunks(recall_op_t *op, eg_mindex_t *ix)
{
    eg_arena_t *a = &op->a;

    op->chunk_ids = op->n ? eg_arena_alloc(a, op->n * sizeof(char *)) : NULL;
    op->chunks = op->n ? eg_arena_calloc(a, op->n * sizeof(eg_recall_chunk_t)) : NULL;
    for (size_t i = 0; i < op->n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, op->cands[i].slot);
        const eg_mindex_doc_t *d;
        const char *id;
        bool dup = false;

        if (u->doc == EG_MINDEX_NONE || u->chunk == EG_MINDEX_NONE ||
            !(d = eg_mindex_doc(ix, u->doc)))
            continue;
        id = eg_mem_chunk_id(a, op->bank, d->id, u->chunk);
        for (size_t j = 0; j < op->nchunk_ids && !dup; j++)
            dup = !strcmp(op->chunk_ids[j], id);
        if (!dup)
            op->chunk_ids[op->nchunk_ids++] = id;
    }
}

static void on_index(void *udata, int err, eg_mindex_t *ix)
{
    recall_op_t *op = udata;
    eg_arena_t *a = &op->a;
    eg_recall_ranked_t r;
    int rc;

    if (err) {
        finish(op, err);
        return;
    }
    if (op->req.query_vec && eg_mindex_dim(ix) && eg_mindex_dim(ix) != op->req.query_dim) {
        eg_log_warn(
            "recall: bank %s holds %zu-dim vectors, the query's has %zu (embedder changed?)",
            op->bank, eg_mindex_dim(ix), op->req.query_dim);
        finish(op, EG_ECONFLICT);
        return;
    }
    if ((rc = eg_recall_rank(a, ix, &op->req, eg_now_ms() * 1000, &r)) != 0) {
        finish(op, rc);
        return;
    }
    op->stats = r.stats;
    op->cands = r.results;
    op->n = r.n;

    /* Copy out what the index knows: ids, entity names, trace ids. */
    op->names = op->n ? eg_arena_alloc(a, op->n * sizeof(char **)) : NULL;
    op->nnames = op->n ? eg_arena_calloc(a, op->n * sizeof(size_t)) : NULL;
    for (size_t i = 0; i < op->n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, op->cands[i].slot);

        ids_push(op, eg_arena_strndup(a, u->id, strlen(u->id)));
        op->names[i] = u->nents ? eg_arena_alloc(a, u->nents * sizeof(char *)) : NULL;
        for (size_t j = 0; j < u->nents; j++) {
            const eg_mindex_entity_t *e = eg_mindex_entity(ix, u->ents[j]);
            if (e)
                op->names[i][op->nnames[i]++] = eg_arena_strdup(a, e->name);
        }
    }
    if (op->req.entities)
        pick_entities(op, ix);
    if (op->req.chunks)
        pick_chunks(op, ix);
    if (op->req.trace && r.nscored) {
        op->trace = eg_arena_alloc(a, r.nscored * sizeof(*op->trace));
        for (size_t i = 0; i < r.nscored; i++) {
            op->trace[i].id = eg_arena_strdup(a, eg_mindex_unit(ix, r.scored[i].slot)->id);
            op->trace[i].c = r.scored[i];
        }
        op->ntrace = r.nscored;
    }

    /* One round trip: the units and the first chunks together. */
    op->t_fetch = eg_mono_ns();
    op->units = op->nids ? eg_arena_calloc(a, op->nids * sizeof(*op->units)) : NULL;
    if (op->nids) {
        const char **argv = eg_arena_alloc(a, (op->nids + 2) * sizeof(*argv));

        argv[0] = "HMGET";
        argv[1] = units_key(op);
        memcpy(argv + 2, op->ids, op->nids * sizeof(*argv));
        if ((rc = eg_store_commandv(on_units, op, (int)(op->nids + 2), argv, NULL)) != 0) {
            finish(op, rc);
            return;
        }
        op->pending++;
    }
    if (op->req.chunks && op->nchunk_ids && (rc = fetch_chunks(op, CHUNK_BATCH_FIRST)) != 0)
        op->err = rc; /* reported once the units reply is in */
    fetch_step(op);
}

/* The query's vector from the configured embedder (in op->req.query_vec); then the ranking. */
static void on_query_vec(eg_embedder_t *e, int status, void *udata)
{
    recall_op_t *op = udata;
    int rc;

    if (status != 0) {
        eg_log_warn("recall: the query could not be embedded (%s): %s", e->name,
                    eg_strerror(status));
        finish(op, status);
        return;
    }
    if ((rc = eg_mindex_acquire(op->ws, op->bank, on_index, op)) != 0)
        finish(op, rc);
}

/* Copy a tag group tree into the arena. */
static eg_tag_group_t *groups_copy(eg_arena_t *a, const eg_tag_group_t *g, size_t n)
{
    eg_tag_group_t *o;

    if (!n)
        return NULL;
    o = eg_arena_alloc(a, n * sizeof(*o));
    for (size_t i = 0; i < n; i++) {
        o[i] = g[i];
        o[i].tags = strv_copy(a, g[i].tags, g[i].ntags);
        o[i].children = groups_copy(a, g[i].children, g[i].nchildren);
    }
    return o;
}

int eg_recall(const char *ws_id, const char *bank_id, const eg_recall_req_t *req, eg_recall_fn cb,
              void *udata)
{
    recall_op_t *op;
    eg_arena_t *a;
    int rc;

    if (!ws_id || !bank_id || !cb || eg_recall_req_check(req, NULL) != 0)
        return EG_EINVAL;
    op = eg_xcalloc(1, sizeof(*op));
    a = &op->a;
    eg_arena_init(a);
    op->ws = eg_arena_strdup(a, ws_id);
    op->bank = eg_arena_strdup(a, bank_id);
    op->cb = cb;
    op->udata = udata;
    op->req = *req;
    op->req.query = eg_arena_strndup(a, req->query ? req->query : "", req->query_len);
    op->req.tags = strv_copy(a, req->tags, req->ntags);
    op->req.tag_groups = groups_copy(a, req->tag_groups, req->ntag_groups);
    if (req->query_vec && req->query_dim) {
        float *v = eg_arena_alloc(a, req->query_dim * sizeof(float));
        memcpy(v, req->query_vec, req->query_dim * sizeof(float));
        op->req.query_vec = v;
    }
    /* The builtin query vector is computed inside the ranking at the index's dimension; another
     * embedder's comes first, from its model. */
    eg_embedder_t *e = eg_llm_embedder();
    if (!op->req.query_vec && !eg_embed_is_builtin(e)) {
        float *v = eg_arena_alloc(a, e->dim * sizeof(float));

        op->qtext[0] = op->req.query;
        op->req.query_vec = v;
        op->req.query_dim = e->dim;
        rc = eg_embed_run(e, op->qtext, 1, v, on_query_vec, op);
    } else {
        rc = eg_mindex_acquire(ws_id, bank_id, on_index, op);
    }
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    return 0;
}
