/* Mental model search for reflect's search_mental_models tool: every model of the bank is
 * scored against the query in process (a bank holds at most EG_MM_MAX of them, so there is no
 * index to keep), by the builtin embedding's cosine and the share of query terms the model's
 * text contains. */
#include <stdlib.h>
#include <string.h>

#include "dirmm_int.h"
#include "engram/bank.h"
#include "engram/embed.h"
#include "engram/error.h"
#include "engram/memories.h"
#include "engram/mental_models.h"
#include "engram/text.h"
#include "engram/util.h"
#include "mental_models_int.h"

#define W_SEMANTIC 0.7
#define W_KEYWORD  0.3
#define TERMS      (EG_TEXT_STOPWORDS | EG_TEXT_STEM)

typedef struct search_s {
    eg_arena_t arena;
    eg_mm_search_t q; /* strings copied into the arena */
    eg_mm_hits_fn cb;
    void *udata;
} search_t;

static int cmp_terms(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted distinct terms of text in the arena; the count. */
static size_t distinct_terms(eg_arena_t *a, const char *text, const char ***out)
{
    const char **t;
    size_t n = eg_text_terms(a, text, strlen(text), TERMS, &t), k = 0;

    if (n == 0) {
        *out = NULL;
        return 0;
    }
    qsort(t, n, sizeof(*t), cmp_terms);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(t[k - 1], t[i]) != 0)
            t[k++] = t[i];
    *out = t;
    return k;
}

static int cmp_hits(const void *pa, const void *pb)
{
    const eg_mm_hit_t *a = pa, *b = pb;

    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp(a->mm->id, b->mm->id);
}

static bool excluded(const search_t *s, const char *id)
{
    for (size_t i = 0; i < s->q.nexclude; i++)
        if (strcmp(s->q.exclude_ids[i], id) == 0)
            return true;
    return false;
}

static void on_read(void *udata, int err, redisReply *r)
{
    search_t *s = udata;
    eg_arena_t *a = &s->arena;
    const redisReply *recs;
    eg_mm_hit_t *hits = NULL;
    eg_mm_t *ms;
    const char **qterms;
    size_t nq, n = 0, dim = EG_EMBED_DEFAULT_DIM;
    float *qv, *mv;
    int64_t lw = 0;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__dirmm_reply_error(r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        err = EG_EREDIS;
    if (err) {
        s->cb(s->udata, err, NULL, 0);
        goto done;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING)
        eg_parse_int64(r->element[0]->str, 0, INT64_MAX, &lw);
    recs = r->element[1];
    if (recs->type != REDIS_REPLY_ARRAY || recs->elements == 0) {
        s->cb(s->udata, 0, NULL, 0);
        goto done;
    }
    nq = distinct_terms(a, s->q.query, &qterms);
    qv = eg_arena_alloc(a, dim * sizeof(*qv));
    mv = eg_arena_alloc(a, dim * sizeof(*mv));
    eg_embed_builtin_vec(s->q.query, strlen(s->q.query), qv, dim);
    ms = eg_arena_alloc(a, recs->elements * sizeof(*ms));
    hits = eg_arena_alloc(a, recs->elements * sizeof(*hits));
    for (size_t i = 0; i < recs->elements; i++) {
        eg_mm_t *m = &ms[i];
        const char *text, **mterms;
        size_t nm, found = 0;
        double cos = 0, kw = 0, score;

        eg__mm_parse(a, recs->element[i], lw, m);
        if (excluded(s, m->id) || (s->q.ntags && !eg_mm_tags_pass(m->tags, m->ntags, s->q.tags,
                                                                  s->q.ntags, s->q.tags_match)))
            continue;
        text = eg_arena_printf(a, "%s\n%s\n%s", m->name, m->source_query, m->content);
        eg_embed_builtin_vec(text, strlen(text), mv, dim);
        for (size_t d = 0; d < dim; d++)
            cos += (double)qv[d] * mv[d];
        nm = distinct_terms(a, text, &mterms);
        for (size_t t = 0; t < nq; t++)
            if (nm && bsearch(&qterms[t], mterms, nm, sizeof(*mterms), cmp_terms))
                found++;
        if (nq)
            kw = (double)found / (double)nq;
        score = W_SEMANTIC * (cos > 0 ? cos : 0) + W_KEYWORD * kw;
        if (score > 1)
            score = 1;
        if (!(score > 0))
            continue;
        hits[n].mm = m;
        hits[n].score = score;
        n++;
    }
    qsort(hits, n, sizeof(*hits), cmp_hits);
    if (n > s->q.max_results)
        n = s->q.max_results;
    s->cb(s->udata, 0, n ? hits : NULL, n);
done:
    eg_arena_destroy(&s->arena);
    free(s);
}

static const char **copy_strs(eg_arena_t *a, const char *const *v, size_t n)
{
    const char **out = n ? eg_arena_alloc(a, n * sizeof(*out)) : NULL;

    for (size_t i = 0; i < n; i++)
        out[i] = eg_arena_strdup(a, v[i]);
    return out;
}

int eg_mm_search(const char *ws_id, const char *bank_id, const eg_mm_search_t *q, eg_mm_hits_fn cb,
                 void *udata)
{
    search_t *s;
    int rc;

    if (ws_id == NULL || bank_id == NULL || !eg_bank_id_valid(bank_id, strlen(bank_id)) ||
        q == NULL || q->query == NULL)
        return EG_EINVAL;
    s = eg_xcalloc(1, sizeof(*s));
    eg_arena_init(&s->arena);
    s->cb = cb;
    s->udata = udata;
    s->q = *q;
    s->q.query = eg_arena_strdup(&s->arena, q->query);
    s->q.tags = copy_strs(&s->arena, q->tags, q->ntags);
    s->q.exclude_ids = copy_strs(&s->arena, q->exclude_ids, q->nexclude);
    if (s->q.max_results == 0)
        s->q.max_results = 5;
    rc = eg__mm_read_all(ws_id, bank_id, on_read, s, &s->arena);
    if (rc) {
        eg_arena_destroy(&s->arena);
        free(s);
    }
    return rc;
}

/* ---- tags ------------------------------------------------------------------------------------ */

typedef struct tags_s {
    eg_arena_t arena;
    const char *pattern;
    size_t limit, offset;
    eg_mm_tags_fn cb;
    void *udata;
} tags_t;

static int cmp_tag_count(const void *pa, const void *pb)
{
    const eg_mm_tag_count_t *a = pa, *b = pb;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->tag, b->tag);
}

static void on_tags_read(void *udata, int err, redisReply *r)
{
    tags_t *t = udata;
    const redisReply *recs;
    eg_mm_tag_count_t *v = NULL;
    size_t n = 0, cap = 0, page = 0;

    if (err == 0 && r->type == REDIS_REPLY_ERROR)
        err = eg__dirmm_reply_error(r);
    if (err == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
        err = EG_EREDIS;
    if (err) {
        t->cb(t->udata, err, NULL, 0, 0);
        goto done;
    }
    recs = r->element[1];
    for (size_t i = 0; recs->type == REDIS_REPLY_ARRAY && i < recs->elements; i++) {
        const char *const *tags;
        size_t nt =
            eg__dirmm_tags_parse(&t->arena, eg__dirmm_hget(recs->element[i], "tags"), &tags);

        for (size_t k = 0; k < nt; k++) {
            size_t j;

            if (t->pattern && !eg_memories_tag_match(t->pattern, tags[k]))
                continue;
            for (j = 0; j < n && strcmp(v[j].tag, tags[k]) != 0; j++)
                ;
            if (j == n) {
                if (n == cap) {
                    eg_mm_tag_count_t *nv;

                    cap = cap ? cap * 2 : 16;
                    nv = eg_arena_alloc(&t->arena, cap * sizeof(*nv));
                    if (n)
                        memcpy(nv, v, n * sizeof(*nv));
                    v = nv;
                }
                v[n].tag = tags[k];
                v[n++].count = 0;
            }
            /* A model listing a tag twice counts once. */
            bool dup = false;
            for (size_t d = 0; d < k; d++)
                dup = dup || strcmp(tags[d], tags[k]) == 0;
            if (!dup)
                v[j].count++;
        }
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_tag_count);
    if (t->offset < n) {
        page = n - t->offset;
        if (page > t->limit)
            page = t->limit;
    }
    t->cb(t->udata, 0, page ? v + t->offset : NULL, page, n);
done:
    eg_arena_destroy(&t->arena);
    free(t);
}

int eg_mm_tags(const char *ws_id, const char *bank_id, const char *pattern, size_t limit,
               size_t offset, eg_mm_tags_fn cb, void *udata)
{
    tags_t *t;
    int rc;

    if (ws_id == NULL || bank_id == NULL || !eg_bank_id_valid(bank_id, strlen(bank_id)))
        return EG_EINVAL;
    t = eg_xcalloc(1, sizeof(*t));
    eg_arena_init(&t->arena);
    t->pattern = pattern && pattern[0] ? eg_arena_strdup(&t->arena, pattern) : NULL;
    t->limit = limit;
    t->offset = offset;
    t->cb = cb;
    t->udata = udata;
    rc = eg__mm_read_all(ws_id, bank_id, on_tags_read, t, &t->arena);
    if (rc) {
        eg_arena_destroy(&t->arena);
        free(t);
    }
    return rc;
}
