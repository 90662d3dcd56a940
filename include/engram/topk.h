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

/* Offer (id, score) to the best-k kept in h[0..*n) (a min-heap, its root the worst kept hit;
 * equal scores rank the lower id first). h has room for k items. */
void eg_topk_offer(eg_hit_t *h, size_t *n, size_t k, uint32_t id, float score);

/* Turn the heap h[0..n) into best-first order in place. */
void eg_topk_sort(eg_hit_t *h, size_t n);

#endif
