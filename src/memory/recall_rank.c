/* Recall ranking: reciprocal rank fusion, final scores, score floors and the token fills.
 *
 * Hindsight ranks fused candidates with a cross-encoder; without one (its "rrf" passthrough) the
 * relevance of a candidate is its position in the fused order, 1 - 0.9 rank / (n - 1), so the
 * boosts below only reorder candidates whose ranks are close. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/recall.h"
#include "engram/text.h"

#include "recall_int.h"

const char *eg_recall_arm_name(eg_recall_arm_t arm)
{
    static const char *const names[] = {"semantic", "keyword", "graph", "temporal"};
    return (unsigned)arm < EG_RECALL_NARMS ? names[arm] : "unknown";
}

static uint32_t best_rank(const eg_recall_cand_t *c)
{
    uint32_t b = UINT32_MAX;

    for (int i = 0; i < EG_RECALL_NARMS; i++)
        if (c->rank[i] && c->rank[i] < b)
            b = c->rank[i];
    return b;
}

static int cmp_rrf(const void *pa, const void *pb)
{
    const eg_recall_cand_t *a = pa, *b = pb;
    uint32_t ra, rb;

    if (a->rrf != b->rrf)
        return a->rrf > b->rrf ? -1 : 1;
    ra = best_rank(a);
    rb = best_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

size_t eg_recall_fuse(eg_arena_t *a, const eg_recall_list_t lists[EG_RECALL_NARMS], size_t max,
                      eg_recall_cand_t **out)
{
    size_t total = 0, n = 0;
    eg_recall_cand_t *c;
    eg__slotmap_t map;

    for (int arm = 0; arm < EG_RECALL_NARMS; arm++)
        total += lists[arm].hits ? lists[arm].n : 0;
    *out = NULL;
    if (!total)
        return 0;
    c = eg_arena_alloc(a, total * sizeof(*c));
    eg__slotmap_init(&map, a, total);
    for (int arm = 0; arm < EG_RECALL_NARMS; arm++) {
        const eg_recall_list_t *l = &lists[arm];
        size_t first = 0, last = 0; /* the run of equal scores hit i is in: [first, last) */

        for (size_t i = 0; l->hits && i < l->n; i++) {
            bool added;
            uint32_t *idx = eg__slotmap_put(&map, l->hits[i].slot, (uint32_t)n, &added);
            eg_recall_cand_t *x = &c[*idx];

            if (i == last) {
                first = i;
                for (last = i + 1; last < l->n && l->hits[last].score == l->hits[i].score; last++)
                    ;
            }
            if (added) {
                memset(x, 0, sizeof(*x));
                x->slot = l->hits[i].slot;
                for (int j = 0; j < EG_RECALL_NARMS; j++)
                    x->arm[j] = NAN;
                x->when = EG_MEM_TIME_NONE;
                x->proximity = NAN;
                x->rank_score = x->recency = x->final = NAN;
                n++;
            } else if (x->rank[arm]) {
                continue; /* a duplicate within one list counts once, at its best rank */
            }
            /* Hits of equal score share the mean of their positions (fractional ranking): an arm
             * that cannot tell hits apart (the graph arm gives every unit that shares one entity
             * with the seeds the same score) must neither favour some of them by the order it
             * happens to list them in nor credit them all as its best. */
            x->rank[arm] = (uint32_t)(first + 1);
            x->arm[arm] = l->hits[i].score;
            x->rrf += (float)(1.0 / (EG_RECALL_RRF_K + (double)(first + 1 + last) / 2.0));
            if (arm == EG_RECALL_ARM_TEMPORAL && l->proximity)
                x->proximity = l->proximity[i];
        }
    }
    qsort(c, n, sizeof(*c), cmp_rrf);
    *out = c;
    return n < max ? n : max;
}

double eg_recall_recency(int64_t when, int64_t now)
{
    double days, r;

    if (when == EG_MEM_TIME_NONE)
        return 0.5;
    days = (double)(now - when) / (double)EG_TEXT_US_PER_DAY;
    r = 1.0 - days / EG_RECALL_RECENCY_DAYS;
    if (r > 1.0)
        r = 1.0;
    if (r < EG_RECALL_RECENCY_FLOOR)
        r = EG_RECALL_RECENCY_FLOOR;
    return r;
}

static int cmp_final(const void *pa, const void *pb)
{
    const eg_recall_cand_t *a = pa, *b = pb;

    if (a->final != b->final)
        return a->final > b->final ? -1 : 1;
    /* Then the fused order (rank_score never rises along it). */
    if (a->rank_score != b->rank_score)
        return a->rank_score > b->rank_score ? -1 : 1;
    return cmp_rrf(a, b);
}

void eg_recall_score(eg_recall_cand_t *c, size_t n, int64_t now)
{
    size_t first = 0, last = 0; /* the run of equal RRF scores candidate i is in */

    for (size_t i = 0; i < n; i++) {
        double pos, rank;

        /* Candidates with the same fused evidence get the same rank score (at the mean of their
         * positions), so a group of equal candidates is not spread out by the order it happens
         * to be listed in. */
        if (i == last) {
            first = i;
            for (last = i + 1; last < n && c[last].rrf == c[i].rrf; last++)
                ;
        }
        pos = (double)(first + last - 1) / 2.0;
        rank = n > 1 ? 1.0 - 0.9 * pos / (double)(n - 1) : 1.0;
        double rec = eg_recall_recency(c[i].when, now);
        double temporal = isnan(c[i].proximity) ? 0.5 : c[i].proximity;
        double proof = 0.5;

        if (c[i].proof_count >= 1) {
            proof = 0.5 + log((double)c[i].proof_count) / 10.0;
            proof = proof < 0 ? 0 : proof > 1 ? 1 : proof;
        }
        c[i].rank_score = (float)rank;
        c[i].recency = (float)rec;
        c[i].final = (float)(rank * (1.0 + 0.2 * (rec - 0.5)) * (1.0 + 0.2 * (temporal - 0.5)) *
                             (1.0 + 0.1 * (proof - 0.5)));
    }
    if (n > 1)
        qsort(c, n, sizeof(*c), cmp_final);
}

size_t eg_recall_min_scores(eg_recall_cand_t *c, size_t n, float min_reranker, float min_final)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (!isnan(min_reranker) && !(c[i].rank_score >= min_reranker))
            continue;
        if (!isnan(min_final) && !(c[i].final >= min_final))
            continue;
        if (k != i)
            c[k] = c[i];
        k++;
    }
    return k;
}

size_t eg_recall_fill(const uint32_t *tokens, size_t n, size_t max_tokens, size_t *used)
{
    size_t sum = 0, i;

    for (i = 0; i < n; i++) {
        if (sum + tokens[i] > max_tokens)
            break;
        sum += tokens[i];
    }
    if (used)
        *used = sum;
    return i;
}

size_t eg_recall_fill_chunks(const uint32_t *tokens, size_t n, size_t budget, uint32_t *keep,
                             size_t *truncated_at)
{
    size_t sum = 0;

    *truncated_at = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (sum >= budget)
            return i;
        if (sum + tokens[i] <= budget) {
            keep[i] = tokens[i];
            sum += tokens[i];
            continue;
        }
        keep[i] = (uint32_t)(budget - sum);
        *truncated_at = i;
        return i + 1;
    }
    return n;
}

bool eg_recall_fill_sources(const uint32_t *tokens, size_t nfacts, const uint32_t *const *srcs,
                            const size_t *nsrcs, size_t nobs, int64_t total, int64_t per_obs,
                            bool *keep)
{
    bool skipped_any = false;
    int64_t used = 0;

    if (nfacts)
        memset(keep, 0, nfacts * sizeof(*keep));
    for (size_t o = 0; o < nobs; o++) {
        int64_t obs_used = 0;

        for (size_t k = 0; k < nsrcs[o]; k++) {
            uint32_t f = srcs[o][k];

            if (f >= nfacts || tokens[f] == UINT32_MAX)
                continue;
            if (per_obs >= 0) {
                /* Each observation its own budget: a fact an earlier one kept still counts. */
                if (obs_used + tokens[f] > per_obs) {
                    skipped_any = true;
                    continue;
                }
                obs_used += tokens[f];
                keep[f] = true;
                continue;
            }
            /* The shared budget: a fact kept once is not counted again, and one that did not
             * fit never fits later (used only grows), so each fact counts at its first mention. */
            if (keep[f])
                continue;
            if (total >= 0 && used + tokens[f] > total) {
                skipped_any = true;
                continue;
            }
            used += tokens[f];
            keep[f] = true;
        }
    }
    /* Truncated only when a skipped fact is missing from the final set: under per-observation
     * budgets one observation may skip a fact that another kept. */
    if (!skipped_any)
        return false;
    for (size_t f = 0; f < nfacts; f++)
        if (!keep[f] && tokens[f] != UINT32_MAX)
            return true;
    return false;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

size_t eg_recall_cut_tokens(const char *text, size_t len, size_t max_tokens)
{
    size_t lo = 0, hi, nb = 0, *ends;
    size_t stack_ends[256];

    while (len && is_space(text[len - 1]))
        len--;
    if (eg_text_estimate_tokens(text, len) <= max_tokens)
        return len;
    /* Candidate cut points: the end of every word. The estimate of a longer prefix is never
     * smaller, so a binary search finds the longest one that fits. */
    for (size_t i = 1; i < len; i++)
        if (is_space(text[i]) && !is_space(text[i - 1]))
            nb++;
    if (!nb)
        return 0;
    ends = nb <= 256 ? stack_ends : malloc(nb * sizeof(size_t));
    if (!ends)
        return 0;
    nb = 0;
    for (size_t i = 1; i < len; i++)
        if (is_space(text[i]) && !is_space(text[i - 1]))
            ends[nb++] = i;
    /* Find the number of candidate ends (0..nb) that fit: ends[0..lo) fit, ends[hi..) do not. */
    hi = nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (eg_text_estimate_tokens(text, ends[mid]) <= max_tokens)
            lo = mid + 1;
        else
            hi = mid;
    }
    len = lo ? ends[lo - 1] : 0;
    if (ends != stack_ends)
        free(ends);
    return len;
}
