/* BM25 inverted index.
 *
 * Layout: a term dictionary (open addressing over term ids, with tombstones so terms whose last
 * document went away are freed), one unsorted postings array of (doc, tf) per term, and per
 * document its length and the ids of its distinct terms, which is what removal needs to find its
 * postings. Postings are not kept sorted by doc because slot numbers are reused; removal scans a
 * term's postings instead, which costs microseconds even for a term in every tenth document of
 * 10^5, and keeps adds O(terms).
 *
 * Statistics (N, total length, so avgdl) change with every add and remove; scores are computed at
 * query time from the current values, so there is nothing to rebuild. */
#include "engram/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"

#define EMPTY     UINT32_MAX
#define TOMBSTONE (UINT32_MAX - 1)

typedef struct {
    uint32_t doc;
    uint32_t tf;
} posting_t;

typedef struct {
    char *s; /* NULL when the id is free */
    uint32_t len;
    uint32_t n, cap; /* postings */
    uint64_t hash;
    posting_t *p;
} term_t;

typedef struct {
    uint32_t *tids; /* distinct term ids */
    uint32_t ntids;
    uint32_t len; /* terms including repeats: the BM25 document length */
} doc_t;

struct eg_bm25_s {
    uint32_t *table;              /* term ids by hash; EMPTY or TOMBSTONE */
    size_t table_cap, table_used; /* used counts tombstones: they lengthen probes too */
    term_t *terms;
    size_t nterms_alloc, nterms_live;
    uint32_t *free_tids;
    size_t nfree_tids, free_tids_cap;
    doc_t *docs;
    uint64_t *present; /* bitmap over docs */
    size_t docs_cap;
    size_t ndocs;
    uint64_t total_len;
    float *acc;        /* search scratch: per-doc score, all zero between searches */
    uint32_t *touched; /* search scratch: docs with a non-zero acc */
    size_t touched_cap;
};

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

eg_bm25_t *eg_bm25_new(void)
{
    return eg_xcalloc(1, sizeof(eg_bm25_t));
}

void eg_bm25_free(eg_bm25_t *bm)
{
    if (!bm)
        return;
    for (size_t i = 0; i < bm->nterms_alloc; i++) {
        free(bm->terms[i].s);
        free(bm->terms[i].p);
    }
    for (size_t d = 0; d < bm->docs_cap; d++)
        free(bm->docs[d].tids);
    free(bm->table);
    free(bm->terms);
    free(bm->free_tids);
    free(bm->docs);
    free(bm->present);
    free(bm->acc);
    free(bm->touched);
    free(bm);
}

bool eg_bm25_has(const eg_bm25_t *bm, uint32_t doc)
{
    return bm && doc < bm->docs_cap && (bm->present[doc >> 6] >> (doc & 63)) & 1;
}

/* Probe for term s; returns its id or EMPTY. *pos gets the table position where it is, or where
 * it would be inserted (the first tombstone seen, else the empty slot). */
static uint32_t lookup(const eg_bm25_t *bm, const char *s, size_t n, uint64_t h, size_t *pos)
{
    size_t mask = bm->table_cap - 1, i = h & mask, ins = SIZE_MAX;

    if (!bm->table_cap) {
        *pos = 0;
        return EMPTY;
    }
    for (;; i = (i + 1) & mask) {
        uint32_t id = bm->table[i];
        if (id == EMPTY) {
            *pos = ins != SIZE_MAX ? ins : i;
            return EMPTY;
        }
        if (id == TOMBSTONE) {
            if (ins == SIZE_MAX)
                ins = i;
            continue;
        }
        const term_t *t = &bm->terms[id];
        if (t->hash == h && t->len == n && memcmp(t->s, s, n) == 0) {
            *pos = i;
            return id;
        }
    }
}

static void rehash(eg_bm25_t *bm, size_t ncap)
{
    free(bm->table);
    bm->table = eg_xmalloc(ncap * sizeof(uint32_t));
    memset(bm->table, 0xff, ncap * sizeof(uint32_t)); /* EMPTY */
    bm->table_cap = ncap;
    bm->table_used = bm->nterms_live;
    for (size_t id = 0; id < bm->nterms_alloc; id++) {
        if (!bm->terms[id].s)
            continue;
        size_t i = bm->terms[id].hash & (ncap - 1);
        while (bm->table[i] != EMPTY)
            i = (i + 1) & (ncap - 1);
        bm->table[i] = (uint32_t)id;
    }
}

/* The id of term s, created (with no postings) if new. */
static uint32_t intern(eg_bm25_t *bm, const char *s, size_t n)
{
    uint64_t h = hash_str(s, n);
    size_t pos;
    uint32_t id;

    /* Keep the load (tombstones included) under 3/4 so probes stay short. */
    if ((bm->table_used + 1) * 4 > bm->table_cap * 3) {
        size_t ncap = bm->table_cap ? bm->table_cap : 64;
        while ((bm->nterms_live + 1) * 2 > ncap)
            ncap *= 2;
        rehash(bm, ncap);
    }
    id = lookup(bm, s, n, h, &pos);
    if (id != EMPTY)
        return id;
    if (bm->nfree_tids) {
        id = bm->free_tids[--bm->nfree_tids];
    } else {
        if (bm->nterms_alloc % 256 == 0)
            bm->terms = eg_xrealloc(bm->terms, (bm->nterms_alloc + 256) * sizeof(term_t));
        id = (uint32_t)bm->nterms_alloc++;
    }
    term_t *t = &bm->terms[id];
    memset(t, 0, sizeof(*t));
    t->s = eg_xstrndup(s, n);
    t->len = (uint32_t)n;
    t->hash = h;
    if (bm->table[pos] == EMPTY)
        bm->table_used++;
    bm->table[pos] = id;
    bm->nterms_live++;
    return id;
}

/* A term lost its last posting: free it and leave a tombstone so later probes continue. */
static void drop_term(eg_bm25_t *bm, uint32_t id)
{
    term_t *t = &bm->terms[id];
    size_t pos;

    lookup(bm, t->s, t->len, t->hash, &pos);
    bm->table[pos] = TOMBSTONE;
    free(t->s);
    free(t->p);
    memset(t, 0, sizeof(*t));
    if (bm->nfree_tids == bm->free_tids_cap) {
        bm->free_tids_cap = bm->free_tids_cap ? bm->free_tids_cap * 2 : 64;
        bm->free_tids = eg_xrealloc(bm->free_tids, bm->free_tids_cap * sizeof(uint32_t));
    }
    bm->free_tids[bm->nfree_tids++] = id;
    bm->nterms_live--;
}

static void grow_docs(eg_bm25_t *bm, uint32_t doc)
{
    size_t ncap = bm->docs_cap ? bm->docs_cap : 64;
    size_t owords = (bm->docs_cap + 63) / 64, nwords;

    while (ncap <= doc)
        ncap += ncap / 2;
    nwords = (ncap + 63) / 64;
    bm->docs = eg_xrealloc(bm->docs, ncap * sizeof(doc_t));
    memset(bm->docs + bm->docs_cap, 0, (ncap - bm->docs_cap) * sizeof(doc_t));
    bm->present = eg_xrealloc(bm->present, nwords * sizeof(uint64_t));
    memset(bm->present + owords, 0, (nwords - owords) * sizeof(uint64_t));
    bm->acc = eg_xrealloc(bm->acc, ncap * sizeof(float));
    memset(bm->acc + bm->docs_cap, 0, (ncap - bm->docs_cap) * sizeof(float));
    bm->docs_cap = ncap;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int eg_bm25_add(eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n)
{
    uint32_t *ids = NULL;
    size_t nids = 0, len = 0;
    doc_t *d;

    if (!bm || doc == UINT32_MAX || (n && !terms))
        return EG_EINVAL;
    if (eg_bm25_has(bm, doc))
        return EG_ECONFLICT;
    if (n > UINT32_MAX)
        return EG_ETOOBIG;
    if (doc >= bm->docs_cap)
        grow_docs(bm, doc);

    /* Sorting the ids groups repeats: each run is one posting with tf = run length. */
    ids = n ? eg_xmalloc(n * sizeof(uint32_t)) : NULL;
    for (size_t i = 0; i < n; i++) {
        size_t tl = terms[i] ? strlen(terms[i]) : 0;
        if (tl == 0)
            continue;
        ids[len++] = intern(bm, terms[i], tl);
    }
    if (len > 1) /* qsort(NULL, 0) is undefined: a document may have no terms */
        qsort(ids, len, sizeof(uint32_t), cmp_u32);
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && ids[j] == ids[i])
            j++;
        term_t *t = &bm->terms[ids[i]];
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap + t->cap / 2 + 1 : 2;
            t->p = eg_xrealloc(t->p, t->cap * sizeof(posting_t));
        }
        t->p[t->n++] = (posting_t){doc, (uint32_t)(j - i)};
        ids[nids++] = ids[i];
        i = j;
    }
    d = &bm->docs[doc];
    d->tids = nids ? eg_xrealloc(ids, nids * sizeof(uint32_t)) : NULL;
    if (!nids)
        free(ids);
    d->ntids = (uint32_t)nids;
    d->len = (uint32_t)len;
    bm->present[doc >> 6] |= 1ULL << (doc & 63);
    bm->ndocs++;
    bm->total_len += len;
    return 0;
}

int eg_bm25_remove(eg_bm25_t *bm, uint32_t doc)
{
    doc_t *d;

    if (!eg_bm25_has(bm, doc))
        return EG_ENOTFOUND;
    d = &bm->docs[doc];
    for (uint32_t i = 0; i < d->ntids; i++) {
        term_t *t = &bm->terms[d->tids[i]];
        for (uint32_t j = 0; j < t->n; j++) {
            if (t->p[j].doc == doc) {
                t->p[j] = t->p[--t->n];
                break;
            }
        }
        if (t->n == 0)
            drop_term(bm, d->tids[i]);
    }
    free(d->tids);
    bm->total_len -= d->len;
    memset(d, 0, sizeof(*d));
    bm->present[doc >> 6] &= ~(1ULL << (doc & 63));
    bm->ndocs--;
    return 0;
}

int eg_bm25_update(eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n)
{
    if (!bm || doc == UINT32_MAX || (n && !terms))
        return EG_EINVAL;
    if (eg_bm25_has(bm, doc))
        eg_bm25_remove(bm, doc);
    return eg_bm25_add(bm, doc, terms, n);
}

size_t eg_bm25_count(const eg_bm25_t *bm)
{
    return bm ? bm->ndocs : 0;
}

double eg_bm25_avgdl(const eg_bm25_t *bm)
{
    return bm && bm->ndocs ? (double)bm->total_len / (double)bm->ndocs : 0;
}

size_t eg_bm25_terms(const eg_bm25_t *bm)
{
    return bm ? bm->nterms_live : 0;
}

static const term_t *find_term(const eg_bm25_t *bm, const char *s)
{
    size_t n = s ? strlen(s) : 0, pos;
    uint32_t id;

    if (!bm || n == 0)
        return NULL;
    id = lookup(bm, s, n, hash_str(s, n), &pos);
    return id == EMPTY ? NULL : &bm->terms[id];
}

size_t eg_bm25_df(const eg_bm25_t *bm, const char *term)
{
    const term_t *t = find_term(bm, term);
    return t ? t->n : 0;
}

static double idf(const eg_bm25_t *bm, size_t df)
{
    return log(1.0 + ((double)bm->ndocs - (double)df + 0.5) / ((double)df + 0.5));
}

/* Document lengths below this get their tf 1 score from a per-query table. */
#define SCORE_TAB 64

static double term_score(double idf_, uint32_t tf, uint32_t dl, double avgdl)
{
    double norm = EG_BM25_K1 * (1.0 - EG_BM25_B + EG_BM25_B * (avgdl > 0 ? dl / avgdl : 0));
    return idf_ * (tf * (EG_BM25_K1 + 1.0)) / (tf + norm);
}

/* Distinct query terms present in the index, as term pointers (at most n). */
static size_t query_terms(const eg_bm25_t *bm, const char *const *terms, size_t n,
                          const term_t **out)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        const term_t *t = find_term(bm, terms[i]);
        bool dup = false;
        if (!t)
            continue;
        for (size_t j = 0; j < m && !dup; j++)
            dup = out[j] == t;
        if (!dup)
            out[m++] = t;
    }
    return m;
}

double eg_bm25_score(const eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n)
{
    const term_t **qt;
    double s = 0, avgdl = eg_bm25_avgdl(bm);
    size_t m;

    if (!eg_bm25_has(bm, doc) || n == 0 || !terms)
        return 0;
    qt = eg_xmalloc(n * sizeof(*qt));
    m = query_terms(bm, terms, n, qt);
    for (size_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < qt[i]->n; j++)
            if (qt[i]->p[j].doc == doc)
                s += term_score(idf(bm, qt[i]->n), qt[i]->p[j].tf, bm->docs[doc].len, avgdl);
    free(qt);
    return s;
}

size_t eg_bm25_search(eg_bm25_t *bm, const char *const *terms, size_t n, const eg_bm25_query_t *q,
                      eg_bm25_hit_t *out)
{
    const term_t **qt;
    size_t m, ntouched = 0, nh = 0;
    double avgdl;

    if (!bm || !terms || !q || !out || q->k == 0 || n == 0 || bm->ndocs == 0)
        return 0;
    avgdl = eg_bm25_avgdl(bm);
    qt = eg_xmalloc(n * sizeof(*qt));
    m = query_terms(bm, terms, n, qt);

    /* Term-at-a-time accumulation into a dense per-doc array: for short queries over 10^5 docs
     * this beats merging postings, and scores are strictly positive so 0 marks "untouched".
     * Most postings of short facts have tf 1 and a short document: their scores come from a
     * per-term table by document length (the same double expression, so the same floats). */
    for (size_t i = 0; i < m; i++) {
        const term_t *t = qt[i];
        double w = idf(bm, t->n);
        float tf1[SCORE_TAB];

        /* Room for every posting of the term (no document is touched twice, so never more than
         * the documents). */
        if (ntouched + t->n > bm->touched_cap && bm->touched_cap < bm->docs_cap) {
            size_t need = EG_MIN(ntouched + t->n, bm->docs_cap),
                   cap = EG_MAX(bm->touched_cap, 1024);
            while (cap < need)
                cap *= 2;
            cap = EG_MIN(cap, bm->docs_cap);
            bm->touched = eg_xrealloc(bm->touched, cap * sizeof(uint32_t));
            bm->touched_cap = cap;
        }
        for (uint32_t dl = 0; dl < SCORE_TAB; dl++)
            tf1[dl] = (float)term_score(w, 1, dl, avgdl);
        for (uint32_t j = 0; j < t->n; j++) {
            uint32_t doc = t->p[j].doc, tf = t->p[j].tf, dl;
            if (q->allow && !(doc < q->allow_nbits && (q->allow[doc >> 6] >> (doc & 63)) & 1))
                continue;
            if (bm->acc[doc] == 0)
                bm->touched[ntouched++] = doc;
            dl = bm->docs[doc].len;
            bm->acc[doc] +=
                tf == 1 && dl < SCORE_TAB ? tf1[dl] : (float)term_score(w, tf, dl, avgdl);
        }
    }
    free(qt);

    for (size_t i = 0; i < ntouched; i++) {
        uint32_t doc = bm->touched[i];
        float score = bm->acc[doc];
        bm->acc[doc] = 0;
        eg_topk_offer(out, &nh, q->k, doc, score);
    }
    eg_topk_sort(out, nh);
    return nh;
}

size_t eg_bm25_bytes(const eg_bm25_t *bm)
{
    size_t n;

    if (!bm)
        return 0;
    n = sizeof(*bm) + bm->table_cap * sizeof(uint32_t) +
        (bm->nterms_alloc + 255) / 256 * 256 * sizeof(term_t) +
        bm->free_tids_cap * sizeof(uint32_t) + bm->docs_cap * (sizeof(doc_t) + sizeof(float)) +
        (bm->docs_cap + 63) / 64 * sizeof(uint64_t) + bm->touched_cap * sizeof(uint32_t);
    for (size_t i = 0; i < bm->nterms_alloc; i++)
        if (bm->terms[i].s)
            n += bm->terms[i].len + 1 + bm->terms[i].cap * sizeof(posting_t);
    for (size_t d = 0; d < bm->docs_cap; d++)
        n += bm->docs[d].ntids * sizeof(uint32_t);
    return n;
}
