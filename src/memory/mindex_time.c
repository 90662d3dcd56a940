/* Memory index: units in time order, and temporal neighbours.
 *
 * Two orders are kept: by mentioned_at (listing, the timeline) and by event time (occurred_start,
 * else mentioned_at: the temporal arm and temporal neighbours). Neither is maintained on every
 * write: a change only records the slot as touched, and the next query rebuilds the order by
 * dropping touched slots from the old array, sorting the touched ones that are still in it, and
 * merging the two, which moves the bank's slot numbers once (memmove) and reads k log n keys for k
 * changes. Only the first build, or a build after changes to more than a quarter of the bank,
 * sorts everything. */
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "memory/mindex_int.h"

typedef struct {
    uint64_t k; /* (grp, t) as one unsigned number: see key_of */
    int64_t t;
    uint32_t grp; /* by mentioned_at: 0 for units without it (ordered by created_at), 1 with */
    uint32_t slot;
} tkey_t;

static int cmp_key(const tkey_t *a, const tkey_t *b)
{
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

/* LSD radix sort on k, 8 bits a pass, stable: keys collected in slot order stay in slot order
 * among equals. Passes where every key has the same byte are skipped (the high bytes of times
 * within a few years). About ten times faster than qsort at 10^5 keys, which keeps the first
 * build of a large bank's order near a millisecond. */
static void radix_sort(tkey_t *a, size_t n)
{
    tkey_t *tmp = eg_xmalloc((n ? n : 1) * sizeof(*tmp)), *src = a, *dst = tmp;

    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t cnt[256] = {0}, pos = 0;
        bool same = false;
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].k >> shift) & 255]++;
        for (int b = 0; b < 256 && !same; b++)
            same = cnt[b] == n;
        if (same)
            continue;
        for (int b = 0; b < 256; b++) {
            size_t c = cnt[b];
            cnt[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].k >> shift) & 255]++] = src[i];
        tkey_t *x = src;
        src = dst;
        dst = x;
    }
    if (src != a)
        memcpy(a, src, n * sizeof(*a));
    free(tmp);
}

static int cmp_key_q(const void *a, const void *b)
{
    return cmp_key(a, b);
}

/* The key of slot in the order, or false when the slot is free or not in the order. */
static bool key_of(const eg_mindex_t *ix, const eg__torder_t *o, uint32_t slot, tkey_t *k)
{
    const eg_mindex_unit_t *u;

    if (slot >= ix->nslots || !ix->units[slot].id[0])
        return false;
    u = &ix->units[slot];
    k->slot = slot;
    if (o == &ix->by_time) {
        k->grp = u->mentioned_at != EG_MEM_TIME_NONE;
        k->t = k->grp ? u->mentioned_at : u->created_at;
    } else {
        k->grp = 0;
        k->t = u->occurred_start != EG_MEM_TIME_NONE ? u->occurred_start : u->mentioned_at;
        if (k->t == EG_MEM_TIME_NONE)
            return false;
    }
    /* grp in bit 62, t biased into 62 bits: years 1..9999 in µs are within +-2^59, so clamping
     * to +-2^61 only folds EG_MEM_TIME_NONE (a missing created_at) onto the smallest time. */
    {
        const int64_t lim = INT64_C(1) << 61;
        int64_t t = k->t < -lim ? -lim : k->t >= lim ? lim - 1 : k->t;
        k->k = (uint64_t)k->grp << 62 | (uint64_t)(t + lim);
    }
    return true;
}

static bool tbit(const eg__torder_t *o, uint32_t s)
{
    return s / 64 < o->tbits_words && (o->tbits[s / 64] >> (s & 63)) & 1;
}

static void order_reset(eg__torder_t *o)
{
    o->built = false;
    o->ntouched = 0;
    if (o->tbits)
        memset(o->tbits, 0, o->tbits_words * sizeof(uint64_t));
}

static void touch(eg_mindex_t *ix, eg__torder_t *o, uint32_t slot)
{
    if (!o->built || tbit(o, slot))
        return;
    /* Past a quarter of the bank a full sort is as cheap as the merge. */
    if (o->ntouched > o->n / 4 + 64) {
        order_reset(o);
        return;
    }
    if (slot / 64 >= o->tbits_words) {
        size_t nw = slot / 64 + 1 + (slot / 64 + 1) / 2;
        o->tbits =
            eg__mx_realloc(ix, o->tbits, o->tbits_words * sizeof(uint64_t), nw * sizeof(uint64_t));
        memset(o->tbits + o->tbits_words, 0, (nw - o->tbits_words) * sizeof(uint64_t));
        o->tbits_words = nw;
    }
    if (o->ntouched == o->touched_cap) {
        size_t ncap = o->touched_cap < 16 ? 16 : o->touched_cap * 2;
        o->touched = eg__mx_realloc(ix, o->touched, o->touched_cap * sizeof(uint32_t),
                                    ncap * sizeof(uint32_t));
        o->touched_cap = ncap;
    }
    o->tbits[slot / 64] |= 1ULL << (slot & 63);
    o->touched[o->ntouched++] = slot;
}

void eg__mx_time_touch(eg_mindex_t *ix, uint32_t slot)
{
    touch(ix, &ix->by_time, slot);
    touch(ix, &ix->by_event, slot);
}

static void order_fit(eg_mindex_t *ix, eg__torder_t *o, size_t n)
{
    /* Exact size: the order is rebuilt rarely and held by every loaded bank. */
    if (n > o->cap || n + n / 4 + 64 < o->cap) {
        o->a = eg__mx_realloc(ix, o->a, o->cap * sizeof(uint32_t), n * sizeof(uint32_t));
        o->cap = n;
    }
}

static void rebuild(eg_mindex_t *ix, eg__torder_t *o)
{
    tkey_t *keys, k = {0};
    size_t m = 0;

    if (o->built && o->ntouched == 0)
        return;
    if (!o->built) {
        keys = eg_xmalloc((ix->count ? ix->count : 1) * sizeof(*keys));
        for (uint32_t s = 0; s < ix->nslots; s++)
            if (key_of(ix, o, s, &keys[m]))
                m++;
        radix_sort(keys, m);
        order_fit(ix, o, m);
        for (size_t i = 0; i < m; i++)
            o->a[i] = keys[i].slot;
        free(keys);
        o->n = m;
        o->built = true;
        return;
    }

    /* The touched slots still in the order, sorted; the untouched rest keeps its order; the two
     * are merged from the back, in place. */
    keys = eg_xmalloc(o->ntouched * sizeof(*keys));
    for (size_t i = 0; i < o->ntouched; i++)
        if (key_of(ix, o, o->touched[i], &keys[m]))
            m++;
    qsort(keys, m, sizeof(*keys), cmp_key_q);
    size_t kept = 0;
    for (size_t i = 0; i < o->n; i++)
        if (!tbit(o, o->a[i]))
            o->a[kept++] = o->a[i];
    for (size_t i = 0; i < o->ntouched; i++)
        o->tbits[o->touched[i] / 64] &= ~(1ULL << (o->touched[i] & 63));
    order_fit(ix, o, kept + m);
    /* From the back: each touched key's place among the untouched is found by binary search
     * (reading a unit's key is a cache miss, so a batch of m changes reads m log n of them, not
     * the whole bank), and the untouched run after it moves up in one memmove. */
    for (size_t i = kept, j = m, out = kept + m; j > 0; j--) {
        size_t lo = 0, hi = i;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            key_of(ix, o, o->a[mid], &k);
            if (cmp_key(&k, &keys[j - 1]) > 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        memmove(o->a + out - (i - lo), o->a + lo, (i - lo) * sizeof(*o->a));
        out -= i - lo;
        i = lo;
        o->a[--out] = keys[j - 1].slot;
    }
    free(keys);
    o->n = kept + m;
    o->ntouched = 0;
}

void eg__mx_time_build(eg_mindex_t *ix)
{
    rebuild(ix, &ix->by_time);
    rebuild(ix, &ix->by_event);
}

const uint32_t *eg_mindex_by_time(eg_mindex_t *ix, size_t *n)
{
    if (!ix) {
        if (n)
            *n = 0;
        return NULL;
    }
    rebuild(ix, &ix->by_time);
    if (n)
        *n = ix->by_time.n;
    return ix->by_time.a;
}

size_t eg_mindex_time_near(eg_mindex_t *ix, uint32_t slot, int64_t window_us, size_t max,
                           eg_mindex_link_t *out)
{
    eg__torder_t *o;
    tkey_t k0, k = {0};
    size_t lo, hi, m = 0;
    ptrdiff_t l, r;

    if (!ix || !out || max == 0 || window_us < 0)
        return 0;
    o = &ix->by_event;
    if (!key_of(ix, o, slot, &k0))
        return 0;
    rebuild(ix, o);
    /* Position of slot itself (its key is unique), then walk outwards, nearest side first. */
    for (lo = 0, hi = o->n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        key_of(ix, o, o->a[mid], &k);
        if (cmp_key(&k, &k0) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    l = (ptrdiff_t)lo - 1;
    r = (ptrdiff_t)lo + 1;
    while (m < max) {
        int64_t dl = INT64_MAX, dr = INT64_MAX, d;
        uint32_t s;
        if (l >= 0) {
            key_of(ix, o, o->a[l], &k);
            dl = k0.t - k.t;
        }
        if ((size_t)r < o->n) {
            key_of(ix, o, o->a[r], &k);
            dr = k.t - k0.t;
        }
        if (dl > window_us && dr > window_us)
            break;
        if (dl <= dr) {
            s = o->a[l--];
            d = dl;
        } else {
            s = o->a[r++];
            d = dr;
        }
        if (ix->units[s].invalidated)
            continue;
        double w = window_us > 0 ? 1.0 - (double)d / (double)window_us : 1.0;
        out[m++] = (eg_mindex_link_t){
            .slot = s, .weight = (float)(w < 0.3 ? 0.3 : w), .type = EG_LINK_TEMPORAL};
    }
    return m;
}

size_t eg_mindex_time_near_at(eg_mindex_t *ix, int64_t t, int64_t window_us, size_t max,
                              eg_slot_filter_fn keep, void *udata, uint32_t *out)
{
    eg__torder_t *o;
    tkey_t k = {0};
    size_t lo, hi, m = 0, cap;
    ptrdiff_t l, r;
    int64_t last = -1;

    if (!ix || !out || max == 0 || window_us < 0 || t == EG_MEM_TIME_NONE)
        return 0;
    o = &ix->by_event;
    rebuild(ix, o);
    cap = max + EG_MINDEX_NEAR_TIES * max;
    /* The first unit at or after t, then walk outwards, nearest side first. */
    for (lo = 0, hi = o->n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        key_of(ix, o, o->a[mid], &k);
        if (k.t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    l = (ptrdiff_t)lo - 1;
    r = (ptrdiff_t)lo;
    while (m < cap) {
        int64_t dl = INT64_MAX, dr = INT64_MAX, d;
        uint32_t s;
        if (l >= 0) {
            key_of(ix, o, o->a[l], &k);
            dl = t - k.t;
        }
        if ((size_t)r < o->n) {
            key_of(ix, o, o->a[r], &k);
            dr = k.t - t;
        }
        d = dl <= dr ? dl : dr;
        if (d > window_us || (m >= max && d != last))
            break;
        s = dl <= dr ? o->a[l--] : o->a[r++];
        if (ix->units[s].invalidated || (keep && !keep(s, udata)))
            continue;
        out[m++] = s;
        last = d;
    }
    return m;
}

void eg__mx_time_free(eg_mindex_t *ix)
{
    eg__torder_t *o[2] = {&ix->by_time, &ix->by_event};

    for (int i = 0; i < 2; i++) {
        free(o[i]->a);
        free(o[i]->touched);
        free(o[i]->tbits);
    }
}
