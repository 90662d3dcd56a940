/* Bounded best-k selection over scored items, shared by the retrieval indexes (and recall). */
#ifndef ENGRAM_TOPK_H
#define ENGRAM_TOPK_H

#include <stddef.h>
#include <stdint.h>

/* A scored item: a document (BM25) or a slot (vector index) and its score. */
typedef struct eg_hit_s {
    union {
        uint32_t id;
        uint32_t doc;
        uint32_t slot;
    };
    float score;
} eg_hit_t;

/* Insert (id, score) into the heap (the slow path of eg_topk_offer). */
void eg__topk_push(eg_hit_t *h, size_t *n, size_t k, uint32_t id, float score);

/* Offer (id, score) to the best-k kept in h[0..*n) (a min-heap, its root the worst kept hit;
 * equal scores rank the lower id first). h has room for k items. Inline because a scan offers
 * every candidate and most are rejected at once. */
static inline void eg_topk_offer(eg_hit_t *h, size_t *n, size_t k, uint32_t id, float score)
{
    if (*n == k && (k == 0 || score < h[0].score || (score == h[0].score && id >= h[0].id)))
        return;
    eg__topk_push(h, n, k, id, score);
}

/* Turn the heap h[0..n) into best-first order in place. */
void eg_topk_sort(eg_hit_t *h, size_t n);

#endif
