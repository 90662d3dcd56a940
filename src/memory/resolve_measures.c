/* The measures entity resolution scores with, reproduced from the code Hindsight relies on:
 * Python's str.lower() and difflib.SequenceMatcher.ratio(), and PostgreSQL pg_trgm's trigram
 * similarity. Faithful copies rather than lookalikes, because the thresholds (0.6, 0.15, 0.5)
 * were tuned against exactly these numbers. */
#include <stdlib.h>
#include <string.h>

#include "engram/resolve.h"
#include "engram/util.h"
#include "memory/resolve_int.h"
#include "memory/text_int.h"

/* ---- code points ---------------------------------------------------------------------------- */

/* Code points, in the struct itself while they fit (entity names nearly always do): resolution
 * compares thousands of short names per batch, and a malloc per name showed in profiles. Never
 * copy a cps_t by value (v may point into it). */
#define CPS_SMALL 48

typedef struct {
    uint32_t *v;
    size_t n, cap;
    uint32_t small[CPS_SMALL];
} cps_t;

static void cps_push(cps_t *c, uint32_t cp)
{
    if (c->n == c->cap) {
        if (c->cap == 0) {
            c->v = c->small;
            c->cap = CPS_SMALL;
        } else {
            size_t cap = c->cap * 2;
            if (c->v == c->small) {
                c->v = eg_xmalloc(cap * sizeof(*c->v));
                memcpy(c->v, c->small, c->n * sizeof(*c->v));
            } else {
                c->v = eg_xrealloc(c->v, cap * sizeof(*c->v));
            }
            c->cap = cap;
        }
    }
    c->v[c->n++] = cp;
}

static void cps_free(cps_t *c)
{
    if (c->v != c->small)
        free(c->v);
}

/* Decode s (len bytes) into code points; an invalid byte becomes U+DC80 + byte, as Python's
 * surrogateescape would read it. At most max code points. */
static void decode(const char *s, size_t len, size_t max, cps_t *out)
{
    size_t n;

    for (size_t i = 0; i < len && out->n < max; i += n) {
        uint32_t cp = eg__utf8_decode(s, len, i, &n);
        cps_push(out, cp == EG__UTF8_BAD ? 0xDC80u + (unsigned char)s[i] : cp);
    }
}

static bool is_cased_letter(uint32_t cp)
{
    return eg__text_is_word_cp(cp) && !(cp >= '0' && cp <= '9');
}

/* Python's str.lower() for one code point of the scripts we handle. The final-sigma rule needs
 * context, so the caller decides Σ. */
static uint32_t lower_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 32;
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
        return cp % 2 == 0 ? cp + 1 : cp;
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
        return cp % 2 == 1 ? cp + 1 : cp;
    if (cp == 0x178)
        return 0xFF;
    if ((cp >= 0x391 && cp <= 0x3A1) || (cp >= 0x3A3 && cp <= 0x3AB))
        return cp + 32;
    if (cp == 0x386)
        return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A)
        return cp + 37;
    if (cp == 0x38C)
        return 0x3CC;
    if (cp == 0x38E || cp == 0x38F)
        return cp + 63;
    if (cp >= 0x410 && cp <= 0x42F)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 80;
    if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF))
        return cp % 2 == 0 ? cp + 1 : cp;
    return cp;
}

/* Lowercase code points in place into out (İ becomes "i̇": two code points, as in Python). */
static void lower_cps(const cps_t *in, cps_t *out)
{
    for (size_t i = 0; i < in->n; i++) {
        uint32_t cp = in->v[i];
        if (cp == 0x130) {
            cps_push(out, 'i');
            cps_push(out, 0x307);
        } else if (cp == 0x3A3) {
            /* Final sigma: after a cased letter and not before one. */
            bool before = i > 0 && is_cased_letter(in->v[i - 1]);
            bool after = i + 1 < in->n && is_cased_letter(in->v[i + 1]);
            cps_push(out, before && !after ? 0x3C2 : 0x3C3);
        } else {
            cps_push(out, lower_cp(cp));
        }
    }
}

char *eg_resolve_lower(eg_arena_t *a, const char *s)
{
    cps_t in = {0}, low = {0};
    size_t len = strlen(s), k;

    /* ASCII (most names): str.lower() only maps A-Z. */
    for (k = 0; k < len && (unsigned char)s[k] < 0x80; k++)
        ;
    if (k == len) {
        char *out = eg_arena_alloc(a, len + 1);
        for (k = 0; k < len; k++)
            out[k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : s[k]);
        out[len] = '\0';
        return out;
    }
    decode(s, len, SIZE_MAX, &in);
    lower_cps(&in, &low);
    char *out = eg_arena_alloc(a, low.n * 4 + 1), *w = out;
    for (size_t i = 0; i < low.n; i++) {
        uint32_t cp = low.v[i];
        if (cp >= 0xDC80 && cp <= 0xDCFF) /* an invalid byte goes back as it was */
            *w++ = (char)(cp - 0xDC00);
        else
            w += eg__utf8_encode(cp, w);
    }
    *w = '\0';
    cps_free(&in);
    cps_free(&low);
    return out;
}

bool eg_resolve_lower_eq(const char *s, const char *low)
{
    size_t i = 0;

    for (; s[i] && (unsigned char)s[i] < 0x80; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
        if (c != low[i])
            return false;
    }
    if (!s[i])
        return low[i] == '\0';
    eg_arena_t a;
    eg_arena_init(&a);
    bool eq = strcmp(eg_resolve_lower(&a, s), low) == 0;
    eg_arena_destroy(&a);
    return eq;
}

/* ---- difflib.SequenceMatcher ---------------------------------------------------------------- */

typedef struct {
    const uint32_t *a, *b;
    size_t la, lb;
    bool *popular;      /* b positions autojunk removed from b2j */
    size_t *prev, *cur; /* j2len rows, index j + 1 */
} sm_t;

static int cmp_pair(const void *x, const void *y)
{
    const uint64_t *p = x, *q = y;
    return *p < *q ? -1 : *p > *q;
}

/* autojunk: with 200+ elements in b, an element occurring more than len/100 + 1 times is
 * "popular" and does not seed matches (it can still extend one). */
static void mark_popular(sm_t *sm)
{
    if (sm->lb < 200)
        return;
    size_t ntest = sm->lb / 100 + 1;
    uint64_t *v = eg_xmalloc(sm->lb * sizeof(*v));
    for (size_t j = 0; j < sm->lb; j++)
        v[j] = ((uint64_t)sm->b[j] << 32) | j;
    qsort(v, sm->lb, sizeof(*v), cmp_pair);
    for (size_t s = 0, e; s < sm->lb; s = e) {
        for (e = s; e < sm->lb && (v[e] >> 32) == (v[s] >> 32); e++)
            ;
        if (e - s > ntest)
            for (size_t k = s; k < e; k++)
                sm->popular[(uint32_t)v[k]] = true;
    }
    free(v);
}

/* find_longest_match(alo, ahi, blo, bhi): the longest matching block, earliest in a, then in b;
 * then extended by equal elements on both sides (bjunk is empty without an isjunk function, so
 * popular elements extend a match like any other). */
static void longest(sm_t *sm, size_t alo, size_t ahi, size_t blo, size_t bhi, size_t *bi,
                    size_t *bj, size_t *bk)
{
    size_t besti = alo, bestj = blo, bestsize = 0;

    for (size_t j = blo; j <= bhi; j++)
        sm->prev[j] = 0;
    for (size_t i = alo; i < ahi; i++) {
        for (size_t j = blo; j < bhi; j++) {
            size_t k = 0;
            if (!sm->popular[j] && sm->a[i] == sm->b[j])
                k = (j > blo ? sm->prev[j] : 0) + 1;
            sm->cur[j + 1] = k;
            if (k > bestsize) {
                besti = i + 1 - k;
                bestj = j + 1 - k;
                bestsize = k;
            }
        }
        size_t *t = sm->prev;
        sm->prev = sm->cur;
        sm->cur = t;
    }
    while (besti > alo && bestj > blo && sm->a[besti - 1] == sm->b[bestj - 1]) {
        besti--;
        bestj--;
        bestsize++;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi &&
           sm->a[besti + bestsize] == sm->b[bestj + bestsize])
        bestsize++;
    *bi = besti;
    *bj = bestj;
    *bk = bestsize;
}

/* Sum of the sizes of get_matching_blocks(). */
static size_t matches(sm_t *sm)
{
    typedef struct {
        size_t alo, ahi, blo, bhi;
    } range_t;
    size_t cap = 32, top = 0, total = 0;
    range_t small[32], *stack = small;

    stack[top++] = (range_t){0, sm->la, 0, sm->lb};
    while (top > 0) {
        range_t r = stack[--top];
        size_t i, j, k;
        longest(sm, r.alo, r.ahi, r.blo, r.bhi, &i, &j, &k);
        if (k == 0)
            continue;
        total += k;
        if (top + 2 > cap) {
            cap *= 2;
            if (stack == small) {
                stack = eg_xmalloc(cap * sizeof(*stack));
                memcpy(stack, small, top * sizeof(*stack));
            } else {
                stack = eg_xrealloc(stack, cap * sizeof(*stack));
            }
        }
        if (r.alo < i && r.blo < j)
            stack[top++] = (range_t){r.alo, i, r.blo, j};
        if (i + k < r.ahi && j + k < r.bhi)
            stack[top++] = (range_t){i + k, r.ahi, j + k, r.bhi};
    }
    if (stack != small)
        free(stack);
    return total;
}

static double ratio_cps(const uint32_t *a, size_t la, const uint32_t *b, size_t lb)
{
    if (la + lb == 0)
        return 1.0;
    sm_t sm = {.a = a, .b = b, .la = la, .lb = lb};
    bool pop_small[CPS_SMALL + 1] = {0};
    size_t rows_small[2][CPS_SMALL + 1] = {{0}};
    bool heap = lb > CPS_SMALL;
    sm.popular = heap ? eg_xcalloc(lb + 1, sizeof(*sm.popular)) : pop_small;
    sm.prev = heap ? eg_xcalloc(lb + 1, sizeof(*sm.prev)) : rows_small[0];
    sm.cur = heap ? eg_xcalloc(lb + 1, sizeof(*sm.cur)) : rows_small[1];
    mark_popular(&sm);
    size_t m = matches(&sm);
    if (heap) {
        free(sm.popular);
        free(sm.prev); /* longest() swaps the two rows: both are freed either way */
        free(sm.cur);
    }
    return 2.0 * (double)m / (double)(la + lb);
}

double eg_resolve_seq_ratio(const char *a, size_t alen, const char *b, size_t blen)
{
    cps_t ca = {0}, cb = {0};

    decode(a, alen, EG_RESOLVE_NAME_MAX_CP, &ca);
    decode(b, blen, EG_RESOLVE_NAME_MAX_CP, &cb);
    double r = ratio_cps(ca.v, ca.n, cb.v, cb.n);
    cps_free(&ca);
    cps_free(&cb);
    return r;
}

double eg_resolve_name_similarity(const char *a, const char *b)
{
    cps_t ca = {0}, cb = {0}, la = {0}, lb = {0};

    decode(a, strlen(a), EG_RESOLVE_NAME_MAX_CP, &ca);
    decode(b, strlen(b), EG_RESOLVE_NAME_MAX_CP, &cb);
    lower_cps(&ca, &la);
    lower_cps(&cb, &lb);
    double r = ratio_cps(la.v, la.n, lb.v, lb.n);
    cps_free(&ca);
    cps_free(&cb);
    cps_free(&la);
    cps_free(&lb);
    return r;
}

/* ---- pg_trgm -------------------------------------------------------------------------------- */

static uint64_t trigram(uint32_t x, uint32_t y, uint32_t z)
{
    return ((uint64_t)(x & 0x1FFFFF) << 42) | ((uint64_t)(y & 0x1FFFFF) << 21) | (z & 0x1FFFFF);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return p < q ? -1 : p > q;
}

size_t eg__resolve_trigrams_malloc(const char *s, uint64_t **out)
{
    cps_t raw = {0}, low = {0};
    size_t n = 0, cap = 0;
    uint64_t *v = NULL;

    decode(s, strlen(s), EG_RESOLVE_NAME_MAX_CP, &raw);
    lower_cps(&raw, &low);
    for (size_t i = 0; i < low.n;) {
        if (!eg__text_is_word_cp(low.v[i])) {
            i++;
            continue;
        }
        size_t e = i;
        while (e < low.n && eg__text_is_word_cp(low.v[e]))
            e++;
        /* "  word ": w + 3 code points, w + 1 trigrams. */
        size_t w = e - i, need = n + w + 1;
        if (need > cap) {
            cap = need * 2;
            v = eg_xrealloc(v, cap * sizeof(*v));
        }
        for (size_t k = 0; k + 2 < w + 3; k++) {
            uint32_t c[3];
            for (size_t q = 0; q < 3; q++) {
                size_t p = k + q; /* position in the padded word */
                c[q] = (p < 2 || p >= w + 2) ? ' ' : low.v[i + p - 2];
            }
            v[n++] = trigram(c[0], c[1], c[2]);
        }
        i = e;
    }
    cps_free(&raw);
    cps_free(&low);
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_u64);
        size_t u = 1;
        for (size_t k = 1; k < n; k++)
            if (v[k] != v[u - 1])
                v[u++] = v[k];
        n = u;
    }
    *out = v;
    return n;
}

size_t eg_resolve_trigrams(eg_arena_t *a, const char *s, uint64_t **out)
{
    uint64_t *v;
    size_t n = eg__resolve_trigrams_malloc(s, &v);

    *out = NULL;
    if (n) {
        *out = eg_arena_alloc(a, n * sizeof(**out));
        memcpy(*out, v, n * sizeof(*v));
    }
    free(v);
    return n;
}

double eg_resolve_trigram_sim(const uint64_t *ta, size_t na, const uint64_t *tb, size_t nb)
{
    size_t i = 0, j = 0, shared = 0;

    if (na + nb == 0)
        return 0.0;
    while (i < na && j < nb) {
        if (ta[i] == tb[j]) {
            shared++;
            i++;
            j++;
        } else if (ta[i] < tb[j]) {
            i++;
        } else {
            j++;
        }
    }
    return (double)shared / (double)(na + nb - shared);
}

double eg_resolve_name_trigram_sim(const char *a, const char *b)
{
    uint64_t *ta, *tb;
    size_t na = eg__resolve_trigrams_malloc(a, &ta), nb = eg__resolve_trigrams_malloc(b, &tb);
    double r = eg_resolve_trigram_sim(ta, na, tb, nb);

    free(ta);
    free(tb);
    return r;
}
