/* Entity resolution: the dictionary of entity names that candidate search runs on (see
 * engram/resolve.h): an inverted index from trigram to the names that have it.
 *
 * Names are numbered by the caller (the bank index's entity numbers, which are dense and reused),
 * so per-name arrays are indexed by that number directly. A search counts, for every name sharing
 * a trigram with the query, how many it shares (one pass over the query's posting lists into a
 * scratch counter per name), then finds the similarity at which the best max are complete from a
 * count per (shared, trigrams) cell, so only the names kept are sorted. Removing a name takes its
 * number out of its trigrams' lists (swap with the last), so the dictionary can live as long as the
 * index and follow its entities. */
#include <stdlib.h>
#include <string.h>

#include "engram/resolve.h"
#include "engram/util.h"
#include "memory/resolve_int.h"

typedef struct {
    uint64_t key;  /* 0 = empty slot (no trigram packs to 0: a trigram has a space or a letter) */
    uint32_t *ids; /* caller's numbers */
    uint32_t n, cap;
} posting_t;

struct eg_resolve_dict_s {
    posting_t *tab;
    size_t tab_cap, tab_used; /* power of two */
    uint16_t *ntri;           /* by number: trigram count */
    uint64_t *present;        /* by number: in the dictionary */
    size_t ids_cap;           /* ntri, present, scratch, touched cover numbers below this */
    size_t n;                 /* names */
    size_t post_bytes;        /* capacity of every posting list, in bytes */
    uint16_t *scratch;        /* shared-trigram counts during a search (zero between searches) */
    uint32_t *touched;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static posting_t *tab_find(const eg_resolve_dict_t *d, uint64_t key)
{
    if (d->tab_cap == 0)
        return NULL;
    for (size_t i = mix(key) & (d->tab_cap - 1);; i = (i + 1) & (d->tab_cap - 1)) {
        if (d->tab[i].key == key)
            return &d->tab[i];
        if (d->tab[i].key == 0)
            return NULL;
    }
}

static posting_t *tab_insert(eg_resolve_dict_t *d, uint64_t key)
{
    if ((d->tab_used + 1) * 2 > d->tab_cap) {
        size_t cap = d->tab_cap ? d->tab_cap * 2 : 1024;
        posting_t *tab = eg_xcalloc(cap, sizeof(*tab));
        for (size_t k = 0; k < d->tab_cap; k++) {
            if (d->tab[k].key == 0)
                continue;
            size_t i = mix(d->tab[k].key) & (cap - 1);
            while (tab[i].key != 0)
                i = (i + 1) & (cap - 1);
            tab[i] = d->tab[k];
        }
        free(d->tab);
        d->tab = tab;
        d->tab_cap = cap;
    }
    size_t i = mix(key) & (d->tab_cap - 1);
    while (d->tab[i].key != 0 && d->tab[i].key != key)
        i = (i + 1) & (d->tab_cap - 1);
    if (d->tab[i].key == 0) {
        d->tab[i].key = key;
        d->tab_used++;
    }
    return &d->tab[i];
}

eg_resolve_dict_t *eg_resolve_dict_new(void)
{
    return eg_xcalloc(1, sizeof(eg_resolve_dict_t));
}

void eg_resolve_dict_free(eg_resolve_dict_t *d)
{
    if (!d)
        return;
    for (size_t k = 0; k < d->tab_cap; k++)
        free(d->tab[k].ids);
    free(d->tab);
    free(d->ntri);
    free(d->present);
    free(d->scratch);
    free(d->touched);
    free(d);
}

size_t eg_resolve_dict_size(const eg_resolve_dict_t *d)
{
    return d ? d->n : 0;
}

size_t eg_resolve_dict_bytes(const eg_resolve_dict_t *d)
{
    if (!d)
        return 0;
    return sizeof(*d) + d->tab_cap * sizeof(posting_t) + d->post_bytes +
           d->ids_cap * (sizeof(*d->ntri) + sizeof(*d->scratch) + sizeof(*d->touched)) +
           (d->ids_cap + 63) / 64 * sizeof(uint64_t);
}

bool eg_resolve_dict_has(const eg_resolve_dict_t *d, uint32_t id)
{
    return d && id < d->ids_cap && (d->present[id / 64] >> (id % 64)) & 1;
}

static void ids_grow(eg_resolve_dict_t *d, uint32_t id)
{
    size_t cap = d->ids_cap < 256 ? 256 : d->ids_cap;
    size_t ow = (d->ids_cap + 63) / 64, nw;

    while (cap <= id)
        cap += cap / 2;
    nw = (cap + 63) / 64;
    d->ntri = eg_xrealloc(d->ntri, cap * sizeof(*d->ntri));
    memset(d->ntri + d->ids_cap, 0, (cap - d->ids_cap) * sizeof(*d->ntri));
    d->present = eg_xrealloc(d->present, nw * sizeof(*d->present));
    memset(d->present + ow, 0, (nw - ow) * sizeof(*d->present));
    d->scratch = eg_xrealloc(d->scratch, cap * sizeof(*d->scratch));
    memset(d->scratch + d->ids_cap, 0, (cap - d->ids_cap) * sizeof(*d->scratch));
    d->touched = eg_xrealloc(d->touched, cap * sizeof(*d->touched));
    d->ids_cap = cap;
}

void eg_resolve_dict_add(eg_resolve_dict_t *d, uint32_t id, const char *name)
{
    uint64_t *t;
    size_t nt;

    if (!d || !name || eg_resolve_dict_has(d, id))
        return;
    if (id >= d->ids_cap)
        ids_grow(d, id);
    nt = eg__resolve_trigrams_malloc(name, &t);
    d->present[id / 64] |= 1ULL << (id % 64);
    d->ntri[id] = (uint16_t)EG_MIN(nt, UINT16_MAX);
    d->n++;
    for (size_t k = 0; k < nt; k++) {
        posting_t *p = tab_insert(d, t[k]);
        if (p->n == p->cap) {
            uint32_t cap = p->cap < 4 ? 4 : p->cap + p->cap / 2;
            p->ids = eg_xrealloc(p->ids, cap * sizeof(*p->ids));
            d->post_bytes += (cap - p->cap) * sizeof(*p->ids);
            p->cap = cap;
        }
        p->ids[p->n++] = id;
    }
    free(t);
}

void eg_resolve_dict_remove(eg_resolve_dict_t *d, uint32_t id, const char *name)
{
    uint64_t *t;
    size_t nt;

    if (!eg_resolve_dict_has(d, id) || !name)
        return;
    nt = eg__resolve_trigrams_malloc(name, &t);
    for (size_t k = 0; k < nt; k++) {
        posting_t *p = tab_find(d, t[k]);
        if (!p)
            continue;
        /* From the end: the names removed are often the recent ones. */
        for (uint32_t q = p->n; q-- > 0;) {
            if (p->ids[q] == id) {
                p->ids[q] = p->ids[--p->n];
                break;
            }
        }
        if (p->n == 0) {
            d->post_bytes -= p->cap * sizeof(*p->ids);
            free(p->ids);
            p->ids = NULL;
            p->cap = 0; /* the key stays: open addressing without tombstones */
        }
    }
    free(t);
    d->present[id / 64] &= ~(1ULL << (id % 64));
    d->ntri[id] = 0;
    d->n--;
}

/* Best first: higher similarity, then the lower number. */
static bool better(const eg_resolve_hit_t *p, const eg_resolve_hit_t *q)
{
    return p->sim > q->sim || (p->sim == q->sim && p->id < q->id);
}

static int cmp_hit(const void *x, const void *y)
{
    const eg_resolve_hit_t *p = x, *q = y;
    return better(p, q) ? -1 : better(q, p) ? 1 : 0;
}

static int cmp_sim_desc(const void *x, const void *y)
{
    double p = ((const eg_resolve_hit_t *)x)->sim, q = ((const eg_resolve_hit_t *)y)->sim;
    return p > q ? -1 : p < q;
}

/* Move the k lowest of v[0..n) (distinct) to v[0..k), in any order: quickselect, Lomuto
 * partition around the middle element. */
static void select_lowest(uint32_t *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n;

    while (k > lo && k < hi) {
        size_t mid = lo + (hi - lo) / 2, store = lo;
        uint32_t t = v[mid], pivot;
        v[mid] = v[hi - 1];
        v[hi - 1] = t;
        pivot = t;
        for (size_t i = lo; i + 1 < hi; i++) {
            if (v[i] < pivot) {
                t = v[i];
                v[i] = v[store];
                v[store++] = t;
            }
        }
        v[hi - 1] = v[store];
        v[store] = pivot;
        /* v[lo..store) < pivot = v[store] < v[store + 1..hi) */
        if (k <= store)
            hi = store;
        else
            lo = store + 1;
    }
}

/* Similarities by (shared, name trigrams) for one query, computed once: a search sees thousands
 * of names but few distinct pairs. */
#define SIM_TAB_N 64

size_t eg_resolve_dict_search(eg_resolve_dict_t *d, const char *name, double min_sim,
                              eg_resolve_hit_t *out, size_t max)
{
    uint64_t *t;
    size_t nt, ntouched = 0, nhits = 0;

    if (!d || !name || max == 0 || d->n == 0)
        return 0;
    nt = eg__resolve_trigrams_malloc(name, &t);
    uint16_t *restrict scratch = d->scratch;
    uint32_t *restrict touched = d->touched;
    const uint16_t *ntri = d->ntri;
    for (size_t k = 0; k < nt; k++) {
        const posting_t *p = tab_find(d, t[k]);
        if (!p)
            continue;
        /* Branch-free: whether a name is new to this search is a coin toss. */
        const uint32_t *ids = p->ids;
        for (uint32_t q = 0, n = p->n; q < n; q++) {
            uint32_t id = ids[q];
            touched[ntouched] = id;
            ntouched += scratch[id]++ == 0;
        }
    }
    /* sim(s, m) = s / (nt + m - s) for s <= min(nt, SIM_TAB_N - 1) and m < SIM_TAB_N. */
    size_t ns = EG_MIN(nt, (size_t)SIM_TAB_N - 1);
    double *tab = eg_xmalloc((ns + 1) * SIM_TAB_N * sizeof(*tab));
    for (size_t sh = 1; sh <= ns; sh++)
        for (size_t m = 0; m < SIM_TAB_N; m++)
            tab[sh * SIM_TAB_N + m] = m + nt >= sh ? (double)sh / (double)(nt + m - sh) : 0;
    /* The cut, without a heap: count names per (shared, trigrams) cell, walk the cells from the
     * highest similarity down to the one that completes max names, then take every name above
     * that similarity and, among those at it, the lowest numbers. */
    size_t ncell = (ns + 1) * SIM_TAB_N, nbig = 0, ncut = 0, total = 0;
    uint32_t *hist = eg_xcalloc(ncell, sizeof(*hist));
    for (size_t k = 0; k < ntouched; k++) {
        uint32_t id = touched[k];
        size_t shared = scratch[id], m = ntri[id];
        if (shared <= ns && m < SIM_TAB_N)
            hist[shared * SIM_TAB_N + m]++;
        else
            nbig++;
    }
    eg_resolve_hit_t *cells = eg_xmalloc((ncell + nbig + 1) * sizeof(*cells));
    for (size_t c = 0; c < ncell; c++)
        if (hist[c] && tab[c] >= min_sim && tab[c] > 0)
            cells[ncut++] = (eg_resolve_hit_t){hist[c], tab[c]}; /* id: the count */
    for (size_t k = 0; k < ntouched && nbig; k++) {
        uint32_t id = touched[k];
        size_t shared = scratch[id], m = ntri[id];
        if (shared > ns || m >= SIM_TAB_N) {
            double sim = (double)shared / (double)(nt + m - shared);
            if (sim >= min_sim)
                cells[ncut++] = (eg_resolve_hit_t){1, sim};
        }
    }
    qsort(cells, ncut, sizeof(*cells), cmp_sim_desc);
    double cut = -1.0; /* similarity of the last names taken */
    size_t above = 0;  /* names strictly above cut */
    for (size_t c = 0; c < ncut && total < max;) {
        size_t e = c, n = 0;
        while (e < ncut && cells[e].sim == cells[c].sim)
            n += cells[e++].id;
        above = total;
        total += n;
        cut = cells[c].sim;
        c = e;
    }
    free(cells);
    free(hist);
    /* Names above the cut go straight out; those at it are gathered (in touched, from the
     * front) and the lowest numbers fill the rest. */
    size_t nties = 0;
    for (size_t k = 0; k < ntouched; k++) {
        uint32_t id = touched[k];
        size_t shared = scratch[id], m = ntri[id];
        scratch[id] = 0;
        double sim = shared <= ns && m < SIM_TAB_N ? tab[shared * SIM_TAB_N + m]
                                                   : (double)shared / (double)(nt + m - shared);
        if (sim > cut && sim >= min_sim)
            out[nhits++] = (eg_resolve_hit_t){id, sim};
        else if (sim == cut)
            touched[nties++] = id;
    }
    free(tab);
    size_t need = EG_MIN(max - above, nties);
    if (need < nties)
        select_lowest(touched, nties, need);
    for (size_t k = 0; k < need; k++)
        out[nhits++] = (eg_resolve_hit_t){touched[k], cut};
    qsort(out, nhits, sizeof(*out), cmp_hit);
    free(t);
    return nhits;
}
