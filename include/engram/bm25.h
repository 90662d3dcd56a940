/* BM25 keyword index: an in-memory inverted index over pre-tokenised documents.
 *
 * Documents are numbered by the caller (the same slot numbers as the vector index) and given as
 * arrays of terms, so tokenisation (lowercasing, stopwords, stemming) stays the caller's choice
 * and queries must be tokenised the same way. Scoring is Okapi BM25 with k1 = 1.2, b = 0.75 and
 * the non-negative idf ln(1 + (N - df + 0.5) / (df + 0.5)). Not thread-safe: one index belongs
 * to one loop thread, and even a search uses the index's scratch space. */
#ifndef ENGRAM_BM25_H
#define ENGRAM_BM25_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/topk.h"

#define EG_BM25_K1 1.2
#define EG_BM25_B  0.75

typedef struct eg_bm25_s eg_bm25_t;

/* A hit: .doc and .score (the shared eg_hit_t of engram/topk.h). */
typedef eg_hit_t eg_bm25_hit_t;

typedef struct {
    size_t k;              /* at most this many hits */
    const uint64_t *allow; /* optional bitmap: doc d is a candidate iff bit d is set ... */
    size_t allow_nbits;    /* ... and d < allow_nbits */
} eg_bm25_query_t;

/* A new empty index. */
eg_bm25_t *eg_bm25_new(void);

/* Free the index (NULL is a no-op). */
void eg_bm25_free(eg_bm25_t *bm);

/* Index document doc with its n terms (duplicates count towards tf; empty strings are skipped).
 * EG_ECONFLICT if doc is already indexed, EG_EINVAL for doc == UINT32_MAX. */
int eg_bm25_add(eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n);

/* Replace the terms of doc, or add it if absent. */
int eg_bm25_update(eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n);

/* Drop doc from the index; EG_ENOTFOUND if it is not indexed. */
int eg_bm25_remove(eg_bm25_t *bm, uint32_t doc);

/* True if doc is indexed. */
bool eg_bm25_has(const eg_bm25_t *bm, uint32_t doc);

/* Number of indexed documents, their mean length in terms, distinct terms with postings. */
size_t eg_bm25_count(const eg_bm25_t *bm);
double eg_bm25_avgdl(const eg_bm25_t *bm);
size_t eg_bm25_terms(const eg_bm25_t *bm);

/* Documents containing term (its document frequency). */
size_t eg_bm25_df(const eg_bm25_t *bm, const char *term);

/* BM25 score of one document for the query terms (0 if it matches none or is not indexed). */
double eg_bm25_score(const eg_bm25_t *bm, uint32_t doc, const char *const *terms, size_t n);

/* Top-k documents for the query terms (repeated query terms count once): writes up to q->k hits
 * with score > 0 to out, best first (ties by lower doc), and returns how many. */
size_t eg_bm25_search(eg_bm25_t *bm, const char *const *terms, size_t n, const eg_bm25_query_t *q,
                      eg_bm25_hit_t *out);

/* Heap bytes the index holds (allocated capacity). */
size_t eg_bm25_bytes(const eg_bm25_t *bm);

#endif
