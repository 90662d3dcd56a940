/* Recall requests: defaults, the enums' names, tag filters and the temporal window. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/recall.h"
#include "engram/text.h"

#include "recall_int.h"

void eg_recall_req_init(eg_recall_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->query = "";
    r->types = EG_RECALL_TYPES_ALL;
    r->budget = EG_RECALL_BUDGET_MID;
    r->max_tokens = EG_RECALL_MAX_TOKENS;
    r->query_timestamp = EG_MEM_TIME_NONE;
    r->tags_match = EG_TAGS_ANY;
    r->min_semantic = r->min_keyword = r->min_reranker = r->min_final = NAN;
    r->window_start = r->window_end = EG_MEM_TIME_NONE;
    r->entities = true;
    r->entities_max_tokens = EG_RECALL_ENTITY_TOKENS;
    r->chunks_max_tokens = EG_RECALL_CHUNK_TOKENS;
    r->source_facts_max_tokens = EG_RECALL_SOURCE_FACT_TOKENS;
    r->source_facts_max_tokens_per_observation = -1;
    r->graph = r->temporal = true;
}

static bool group_ok(const eg_tag_group_t *g, int depth)
{
    /* Nesting deeper than this is not a real filter but an attempt to exhaust the stack. */
    if (depth > 32)
        return false;
    switch (g->kind) {
    case EG_TAG_GROUP_LEAF:
        return g->ntags == 0 || g->tags;
    case EG_TAG_GROUP_AND:
    case EG_TAG_GROUP_OR:
        break;
    case EG_TAG_GROUP_NOT:
        if (g->nchildren != 1)
            return false;
        break;
    default:
        return false;
    }
    if (g->nchildren && !g->children)
        return false;
    for (size_t i = 0; i < g->nchildren; i++)
        if (!group_ok(&g->children[i], depth + 1))
            return false;
    return true;
}

int eg_recall_req_check(const eg_recall_req_t *r, const char **why)
{
    const char *w = NULL;

    if (!r->query && r->query_len)
        w = "query is missing";
    else if (eg_text_estimate_tokens(r->query ? r->query : "", r->query_len) >
             EG_RECALL_QUERY_TOKENS_MAX)
        w = "query is too long (at most 500 tokens)";
    else if (r->budget > EG_RECALL_BUDGET_HIGH)
        w = "budget must be low, mid or high";
    else if ((unsigned)r->tags_match > EG_TAGS_EXACT)
        w = "invalid tags_match";
    else if (r->ntags && !r->tags)
        w = "invalid tags";
    else if (r->has_window && r->window_start > r->window_end)
        w = "temporal_window start is after its end";
    else if (r->ntag_groups && !r->tag_groups)
        w = "invalid tag_groups";
    for (size_t i = 0; !w && i < r->ntag_groups; i++)
        if (!group_ok(&r->tag_groups[i], 0))
            w = "invalid tag_groups";
    if (why)
        *why = w;
    return w ? EG_EINVAL : 0;
}

int eg_recall_budget_parse(const char *s, eg_recall_budget_t *out)
{
    static const char *const names[] = {"low", "mid", "high"};

    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (eg_recall_budget_t)i;
            return 0;
        }
    return EG_EINVAL;
}

size_t eg_recall_budget_depth(eg_recall_budget_t b)
{
    switch (b) {
    case EG_RECALL_BUDGET_LOW:
        return EG_RECALL_DEPTH_LOW;
    case EG_RECALL_BUDGET_HIGH:
        return EG_RECALL_DEPTH_HIGH;
    default:
        return EG_RECALL_DEPTH_MID;
    }
}

int eg_recall_type_add(const char *s, unsigned *mask)
{
    eg_fact_type_t t;

    if (s && !strcmp(s, "opinion"))
        return 0;
    /* The names are fixed, so match them here rather than depend on the store's parser. */
    if (!s)
        return EG_EINVAL;
    if (!strcmp(s, "world"))
        t = EG_FACT_WORLD;
    else if (!strcmp(s, "experience"))
        t = EG_FACT_EXPERIENCE;
    else if (!strcmp(s, "observation"))
        t = EG_FACT_OBSERVATION;
    else
        return EG_EINVAL;
    *mask |= 1u << t;
    return 0;
}

static const char *const match_names[] = {"any", "all", "any_strict", "all_strict", "exact"};

int eg_tags_match_parse(const char *s, eg_tags_match_t *out)
{
    for (size_t i = 0; s && i < 5; i++)
        if (!strcmp(s, match_names[i])) {
            *out = (eg_tags_match_t)i;
            return 0;
        }
    return EG_EINVAL;
}

const char *eg_tags_match_name(eg_tags_match_t m)
{
    return (unsigned)m <= EG_TAGS_EXACT ? match_names[m] : "any";
}

/* ---- tag filters ----------------------------------------------------------------------------

 * A compiled node holds, for a leaf, the request's tags that the bank knows as sorted unique
 * interned ids, and whether some tag is unknown to the bank (no unit carries it, so it can
 * neither overlap nor be contained; it only matters for all and exact). */

typedef struct tf_node_s {
    eg_tag_group_kind_t kind;
    eg_tags_match_t match;
    bool unknown;
    uint32_t *ids;
    size_t nids;
    struct tf_node_s *kids;
    size_t nkids;
} tf_node_t;

struct eg_tagfilter_s {
    tf_node_t root; /* an AND of the parts */
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void compile_leaf(eg_arena_t *a, tf_node_t *n, const char *const *tags, size_t ntags,
                         eg_tags_match_t match, eg_tag_lookup_fn lookup, void *udata)
{
    size_t k = 0;

    n->kind = EG_TAG_GROUP_LEAF;
    n->match = match;
    n->ids = ntags ? eg_arena_alloc(a, ntags * sizeof(uint32_t)) : NULL;
    for (size_t i = 0; i < ntags; i++) {
        uint32_t id = tags[i] ? lookup(udata, tags[i]) : EG_MINDEX_NONE;
        if (id == EG_MINDEX_NONE)
            n->unknown = true;
        else
            n->ids[k++] = id;
    }
    if (k > 1) {
        size_t u = 1;
        qsort(n->ids, k, sizeof(uint32_t), cmp_u32);
        for (size_t i = 1; i < k; i++)
            if (n->ids[i] != n->ids[u - 1])
                n->ids[u++] = n->ids[i];
        k = u;
    }
    n->nids = k;
}

static void compile_group(eg_arena_t *a, tf_node_t *n, const eg_tag_group_t *g,
                          eg_tag_lookup_fn lookup, void *udata)
{
    if (g->kind == EG_TAG_GROUP_LEAF) {
        compile_leaf(a, n, g->tags, g->ntags, g->match, lookup, udata);
        return;
    }
    n->kind = g->kind;
    n->nkids = g->nchildren;
    n->kids = g->nchildren ? eg_arena_calloc(a, g->nchildren * sizeof(tf_node_t)) : NULL;
    for (size_t i = 0; i < g->nchildren; i++)
        compile_group(a, &n->kids[i], &g->children[i], lookup, udata);
}

void eg_tagfilter_compile(eg_arena_t *a, const char *const *tags, size_t ntags,
                          eg_tags_match_t match, const eg_tag_group_t *groups, size_t ngroups,
                          eg_tag_lookup_fn lookup, void *udata, eg_tagfilter_t **out)
{
    /* Without tags, only exact filters (to the untagged units); the other modes mean "all". */
    bool top = ntags > 0 || match == EG_TAGS_EXACT;
    size_t nparts = (top ? 1 : 0) + ngroups, p = 0;
    eg_tagfilter_t *f;

    *out = NULL;
    if (!nparts)
        return;
    f = eg_arena_calloc(a, sizeof(*f));
    f->root.kind = EG_TAG_GROUP_AND;
    f->root.nkids = nparts;
    f->root.kids = eg_arena_calloc(a, nparts * sizeof(tf_node_t));
    if (top)
        compile_leaf(a, &f->root.kids[p++], tags, ntags, match, lookup, udata);
    for (size_t i = 0; i < ngroups; i++)
        compile_group(a, &f->root.kids[p++], &groups[i], lookup, udata);
    *out = f;
}

/* Both arrays ascending. */
static bool overlaps(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t i = 0, j = 0;

    while (i < na && j < nb) {
        if (a[i] == b[j])
            return true;
        if (a[i] < b[j])
            i++;
        else
            j++;
    }
    return false;
}

static bool subset(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t j = 0;

    for (size_t i = 0; i < na; i++) {
        while (j < nb && b[j] < a[i])
            j++;
        if (j == nb || b[j] != a[i])
            return false;
        j++;
    }
    return true;
}

static bool leaf_match(const tf_node_t *n, const uint32_t *tags, size_t nt)
{
    switch (n->match) {
    case EG_TAGS_EXACT:
        /* A tag the bank does not know is on no unit, so no unit's set can equal the list. */
        if (n->unknown)
            return false;
        return nt == n->nids && (nt == 0 || !memcmp(tags, n->ids, nt * sizeof(uint32_t)));
    case EG_TAGS_ANY:
    case EG_TAGS_ANY_STRICT:
        if (nt == 0)
            return n->match == EG_TAGS_ANY;
        return overlaps(n->ids, n->nids, tags, nt);
    default: /* all, all_strict */
        if (nt == 0)
            return n->match == EG_TAGS_ALL;
        return !n->unknown && subset(n->ids, n->nids, tags, nt);
    }
}

static bool node_match(const tf_node_t *n, const uint32_t *tags, size_t nt)
{
    switch (n->kind) {
    case EG_TAG_GROUP_LEAF:
        return leaf_match(n, tags, nt);
    case EG_TAG_GROUP_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!node_match(&n->kids[i], tags, nt))
                return false;
        return true;
    case EG_TAG_GROUP_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (node_match(&n->kids[i], tags, nt))
                return true;
        return false;
    case EG_TAG_GROUP_NOT:
        return n->nkids == 1 && !node_match(&n->kids[0], tags, nt);
    }
    return false;
}

bool eg_tagfilter_match(const eg_tagfilter_t *f, const uint32_t *tags, size_t n)
{
    return !f || node_match(&f->root, tags, n);
}

/* ---- the temporal window --------------------------------------------------------------------- */

bool eg_recall_window(const eg_recall_req_t *r, int64_t now_us, int64_t *start, int64_t *end)
{
    eg_text_date_t d;
    int64_t ref = r->query_timestamp != EG_MEM_TIME_NONE ? r->query_timestamp : now_us;

    if (r->has_window) {
        *start = r->window_start;
        *end = r->window_end;
        return true;
    }
    if (!r->query || !r->query_len || !eg_text_find_date(r->query, r->query_len, 0, ref, &d))
        return false;
    *start = d.start_us;
    *end = d.end_us;
    return true;
}

/* ---- the slot map -----------------------------------------------------------------------------
 */

static size_t slot_hash(uint32_t key)
{
    /* Fibonacci hashing spreads consecutive slot numbers over the table. */
    return (size_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> 32);
}

static void slotmap_alloc(eg__slotmap_t *m, size_t cap)
{
    m->keys = eg_arena_alloc(m->a, cap * sizeof(uint32_t));
    m->vals = eg_arena_alloc(m->a, cap * sizeof(uint32_t));
    memset(m->keys, 0xff, cap * sizeof(uint32_t));
    m->mask = cap - 1;
}

void eg__slotmap_init(eg__slotmap_t *m, eg_arena_t *a, size_t expect)
{
    size_t cap = 16;

    while (cap < expect * 2)
        cap <<= 1;
    m->a = a;
    m->n = 0;
    slotmap_alloc(m, cap);
}

uint32_t *eg__slotmap_get(const eg__slotmap_t *m, uint32_t key)
{
    for (size_t i = slot_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == key)
            return &m->vals[i];
        if (m->keys[i] == UINT32_MAX)
            return NULL;
    }
}

uint32_t *eg__slotmap_put(eg__slotmap_t *m, uint32_t key, uint32_t val, bool *added)
{
    size_t i;

    if ((m->n + 1) * 2 > m->mask + 1) {
        uint32_t *ok = m->keys, *ov = m->vals;
        size_t ocap = m->mask + 1;

        slotmap_alloc(m, ocap * 2);
        for (size_t j = 0; j < ocap; j++) {
            if (ok[j] == UINT32_MAX)
                continue;
            for (i = slot_hash(ok[j]) & m->mask; m->keys[i] != UINT32_MAX; i = (i + 1) & m->mask)
                ;
            m->keys[i] = ok[j];
            m->vals[i] = ov[j];
        }
    }
    for (i = slot_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) {
            *added = false;
            return &m->vals[i];
        }
        if (m->keys[i] == UINT32_MAX)
            break;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    *added = true;
    return &m->vals[i];
}

static int cmp_hit(const void *pa, const void *pb)
{
    const eg_hit_t *a = pa, *b = pb;

    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

void eg__hits_sort(eg_hit_t *h, size_t n)
{
    if (n > 1)
        qsort(h, n, sizeof(*h), cmp_hit);
}
