/* Top-k selection: a min-heap of the best k so far, its root the worst kept hit. Ties rank the
 * lower id first so results do not depend on scan order. */
#include <stdbool.h>

#include "engram/topk.h"

static bool worse(const eg_hit_t *a, const eg_hit_t *b)
{
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void sift_down(eg_hit_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        eg_hit_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

void eg__topk_push(eg_hit_t *h, size_t *n, size_t k, uint32_t id, float score)
{
    eg_hit_t c = {.id = id, .score = score};

    if (*n < k) {
        size_t i = (*n)++;
        h[i] = c;
        while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
            eg_hit_t t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (worse(&h[0], &c)) {
        h[0] = c;
        sift_down(h, *n, 0);
    }
}

void eg_topk_sort(eg_hit_t *h, size_t n)
{
    for (size_t end = n; end > 1; end--) {
        eg_hit_t t = h[0];
        h[0] = h[end - 1];
        h[end - 1] = t;
        sift_down(h, end - 1, 0);
    }
}
