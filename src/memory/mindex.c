/* Memory index: the index object, its string maps and tags, units, and the queries over them.
 *
 * A unit's slot is its vector index slot (eg_vindex_add picks it, reusing freed ones), so the
 * metadata array, the vectors and the BM25 documents all share one numbering. The per-unit
 * record is the public eg_mindex_unit_t (120 bytes) plus one small block holding its tag and
 * entity ids and, when it has any, its links; everything else a unit costs lives in the vector
 * and BM25 indexes. Memory is the point here (one process may hold many banks of 10^5 units), so
 * the maps store a value and a hash (8 bytes) and read keys back from the tables they index,
 * arrays grow by half rather than double, and eg__mx_alloc accounts for what malloc really uses
 * (its chunk header and rounding), not just what was asked for. */
#include "engram/mindex.h"

#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "memory/mindex_int.h"

/* ---- allocation with accounting --------------------------------------------------------- */

/* What glibc malloc uses for a request of n bytes: an 8-byte header, 16-byte rounding, 32 at
 * least. */
static size_t chunk_bytes(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return n == 0 ? 0 : c < 32 ? 32 : c;
}

void *eg__mx_alloc(eg_mindex_t *ix, size_t n)
{
    if (n == 0)
        return NULL;
    ix->heap += chunk_bytes(n);
    return eg_xmalloc(n);
}

void *eg__mx_realloc(eg_mindex_t *ix, void *p, size_t old_n, size_t n)
{
    ix->heap -= chunk_bytes(old_n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    ix->heap += chunk_bytes(n);
    return eg_xrealloc(p, n);
}

void eg__mx_free(eg_mindex_t *ix, void *p, size_t n)
{
    if (!p)
        return;
    ix->heap -= chunk_bytes(n);
    free(p);
}

char *eg__mx_strdup(eg_mindex_t *ix, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = eg__mx_alloc(ix, n);

    memcpy(d, s, n);
    return d;
}

void eg__mx_strfree(eg_mindex_t *ix, char *s)
{
    if (s)
        eg__mx_free(ix, s, strlen(s) + 1);
}

uint64_t eg__mx_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* ---- string maps ------------------------------------------------------------------------- */

void eg__smap_init(eg__smap_t *m, eg__mx_key_fn key)
{
    memset(m, 0, sizeof(*m));
    m->key = key;
}

void eg__smap_free(eg_mindex_t *ix, eg__smap_t *m)
{
    eg__mx_free(ix, m->t, (size_t)m->cap * sizeof(*m->t));
    m->t = NULL;
    m->cap = m->n = 0;
}

static uint32_t hash32(const char *key)
{
    return (uint32_t)eg__mx_hash(key, strlen(key));
}

uint32_t eg__smap_get(const eg_mindex_t *ix, const eg__smap_t *m, const char *key)
{
    uint32_t mask, i, h;

    if (!m->cap || !key)
        return EG_MINDEX_NONE;
    mask = m->cap - 1;
    h = hash32(key);
    for (i = h & mask; m->t[i].v != EG_MINDEX_NONE; i = (i + 1) & mask)
        if (m->t[i].h == h && strcmp(m->key(ix, m->t[i].v), key) == 0)
            return m->t[i].v;
    return EG_MINDEX_NONE;
}

static void smap_insert(eg__smap_t *m, uint32_t v, uint32_t h)
{
    uint32_t i = h & (m->cap - 1);

    while (m->t[i].v != EG_MINDEX_NONE)
        i = (i + 1) & (m->cap - 1);
    m->t[i].v = v;
    m->t[i].h = h;
}

/* Rehashing reads only the stored hashes, never the keys: at 10^5 entries that is a sequential
 * pass over the table instead of a cache miss per entry into the table it indexes. */
static void smap_resize(eg_mindex_t *ix, eg__smap_t *m, uint32_t ncap)
{
    eg__smap_ent_t *old = m->t;
    uint32_t ocap = m->cap;

    m->t = eg__mx_alloc(ix, (size_t)ncap * sizeof(*m->t));
    for (uint32_t i = 0; i < ncap; i++)
        m->t[i].v = EG_MINDEX_NONE;
    m->cap = ncap;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i].v != EG_MINDEX_NONE)
            smap_insert(m, old[i].v, old[i].h);
    eg__mx_free(ix, old, (size_t)ocap * sizeof(*old));
}

void eg__smap_reserve(eg_mindex_t *ix, eg__smap_t *m, size_t n)
{
    uint32_t ncap = m->cap ? m->cap : 16;

    /* Load at most 3/4: linear probes stay short. */
    while (n * 4 > (size_t)ncap * 3)
        ncap *= 2;
    if (ncap != m->cap)
        smap_resize(ix, m, ncap);
}

void eg__smap_put(eg_mindex_t *ix, eg__smap_t *m, uint32_t v)
{
    eg__smap_reserve(ix, m, (size_t)m->n + 1);
    smap_insert(m, v, hash32(m->key(ix, v)));
    m->n++;
}

void eg__smap_del(eg_mindex_t *ix, eg__smap_t *m, uint32_t v)
{
    uint32_t mask, i, j;

    if (!m->cap)
        return;
    mask = m->cap - 1;
    for (i = hash32(m->key(ix, v)) & mask; m->t[i].v != v; i = (i + 1) & mask)
        if (m->t[i].v == EG_MINDEX_NONE)
            return;
    /* Backward shift: pull later entries of the probe run into the hole when their home is not
     * between the hole and them (cyclically). */
    for (j = i;;) {
        uint32_t k;
        j = (j + 1) & mask;
        if (m->t[j].v == EG_MINDEX_NONE)
            break;
        k = m->t[j].h & mask;
        if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
            m->t[i] = m->t[j];
            i = j;
        }
    }
    m->t[i].v = EG_MINDEX_NONE;
    m->n--;
}

static const char *unit_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->units[v].id;
}

static const char *tag_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->tags[v].name;
}

/* ---- tags ----------------------------------------------------------------------------------- */

uint32_t eg__mx_tag_intern(eg_mindex_t *ix, const char *tag)
{
    uint32_t id = eg__smap_get(ix, &ix->tag_by_name, tag);

    if (id != EG_MINDEX_NONE)
        return id;
    if (ix->ntags == ix->tags_cap) {
        size_t ncap = ix->tags_cap < 16 ? 16 : ix->tags_cap + ix->tags_cap / 2;
        ix->tags = eg__mx_realloc(ix, ix->tags, ix->tags_cap * sizeof(eg__tag_t),
                                  ncap * sizeof(eg__tag_t));
        ix->tags_cap = ncap;
    }
    id = (uint32_t)ix->ntags++;
    ix->tags[id] = (eg__tag_t){.name = eg__mx_strdup(ix, tag)};
    eg__smap_put(ix, &ix->tag_by_name, id);
    return id;
}

void eg__mx_tag_count(eg_mindex_t *ix, uint32_t id, bool doc, int delta)
{
    uint32_t *c = doc ? &ix->tags[id].ndocs : &ix->tags[id].nunits;
    *c = (uint32_t)((int64_t)*c + delta);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint16_t eg__mx_tags_intern(eg_mindex_t *ix, const char *const *tags, size_t n, uint32_t *out)
{
    size_t m = 0, k = 0;

    for (size_t i = 0; i < n && m < EG_MEM_TAGS_MAX; i++)
        if (tags[i])
            out[m++] = eg__mx_tag_intern(ix, tags[i]);
    qsort(out, m, sizeof(uint32_t), cmp_u32);
    for (size_t i = 0; i < m; i++)
        if (k == 0 || out[k - 1] != out[i])
            out[k++] = out[i];
    return (uint16_t)k;
}

uint32_t eg_mindex_tag(const eg_mindex_t *ix, const char *tag)
{
    uint32_t id = ix ? eg__smap_get(ix, &ix->tag_by_name, tag) : EG_MINDEX_NONE;

    if (id == EG_MINDEX_NONE || ix->tags[id].nunits + ix->tags[id].ndocs == 0)
        return EG_MINDEX_NONE;
    return id;
}

const char *eg_mindex_tag_name(const eg_mindex_t *ix, uint32_t id)
{
    return ix && id < ix->ntags ? ix->tags[id].name : NULL;
}

size_t eg_mindex_ntags(const eg_mindex_t *ix)
{
    return ix ? ix->ntags : 0;
}

uint32_t eg_mindex_tag_units(const eg_mindex_t *ix, uint32_t id)
{
    return ix && id < ix->ntags ? ix->tags[id].nunits : 0;
}

/* ---- the index --------------------------------------------------------------------------------
 */

static const char *ent_id_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->ents[v].pub.id;
}

static const char *ent_folded_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->ents[v].pub.folded;
}

static const char *doc_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->docs[v].pub.id;
}

static const char *pend_key(const eg_mindex_t *ix, uint32_t v)
{
    return ix->pend[v].target;
}

/* Versions come from one counter, so (index, version) never repeats even when a freed index's
 * memory is reused for another. */
static uint64_t mx_versions;

void eg__mx_changed(eg_mindex_t *ix)
{
    ix->version = ++mx_versions;
}

uint64_t eg_mindex_version(const eg_mindex_t *ix)
{
    return ix ? ix->version : 0;
}

eg_mindex_t *eg_mindex_new(size_t dim)
{
    eg_mindex_t *ix;

    if (dim == 0)
        return NULL;
    ix = eg_xcalloc(1, sizeof(*ix));
    ix->dim = dim;
    ix->vec = eg_vindex_new(dim, EG_VINDEX_I8);
    ix->bm = eg_bm25_new();
    eg__smap_init(&ix->by_id, unit_key);
    eg__smap_init(&ix->ent_by_id, ent_id_key);
    eg__smap_init(&ix->ent_by_folded, ent_folded_key);
    eg__smap_init(&ix->doc_by_id, doc_key);
    eg__smap_init(&ix->tag_by_name, tag_key);
    eg__smap_init(&ix->pend_by_target, pend_key);
    ix->pend_free = EG_MINDEX_NONE;
    eg_arena_init(&ix->scratch);
    eg__mx_changed(ix);
    return ix;
}

void eg_mindex_free(eg_mindex_t *ix)
{
    if (!ix)
        return;
    for (size_t s = 0; s < ix->nslots; s++) {
        eg_mindex_unit_t *u = &ix->units[s];
        free(u->tags);
        free(u->links);
    }
    free(ix->units);
    eg__mx_graph_free(ix);
    eg__mx_time_free(ix);
    eg__mx_names_free(ix);
    for (size_t i = 0; i < ix->ntags; i++)
        free(ix->tags[i].name);
    free(ix->tags);
    free(ix->by_id.t);
    free(ix->tag_by_name.t);
    eg_vindex_free(ix->vec);
    eg_bm25_free(ix->bm);
    eg_arena_destroy(&ix->scratch);
    free(ix);
}

/* The new capacity is left untouched (no page is faulted in until a unit lands there): every slot
 * below the vector index's high-water mark is either live or was zeroed when its unit left, and a
 * fresh slot is zeroed by eg_mindex_put_unit, so nothing reads an uninitialised record. */
static void units_resize(eg_mindex_t *ix, size_t n)
{
    ix->units = eg__mx_realloc(ix, ix->units, ix->units_cap * sizeof(eg_mindex_unit_t),
                               n * sizeof(eg_mindex_unit_t));
    ix->units_cap = n;
}

void eg_mindex_reserve(eg_mindex_t *ix, size_t n)
{
    if (!ix)
        return;
    eg_vindex_reserve(ix->vec, n);
    if (n > ix->units_cap)
        units_resize(ix, n);
    eg__smap_reserve(ix, &ix->by_id, n);
}

/* Grow by half again, like the vector index (a doubling would strand megabytes). */
static void units_grow(eg_mindex_t *ix, uint32_t slot)
{
    size_t ncap = ix->units_cap < 64 ? 64 : ix->units_cap;

    while (ncap <= slot)
        ncap += ncap / 2;
    units_resize(ix, ncap);
}

/* The chunk index at the end of a chunk id "<bank>_<document>_<index>". */
static uint32_t chunk_index(const char *chunk_id)
{
    const char *us;
    int64_t v;

    if (!chunk_id || !(us = strrchr(chunk_id, '_')))
        return EG_MINDEX_NONE;
    if (eg_parse_int64(us + 1, 0, (int64_t)UINT32_MAX - 1, &v) != 0)
        return EG_MINDEX_NONE;
    return (uint32_t)v;
}

/* Index text + " " + context in BM25. */
static void index_terms(eg_mindex_t *ix, uint32_t slot, const eg_mem_unit_t *u)
{
    const char *text = u->text, **terms;
    size_t len = strlen(text), n;

    if (u->context && u->context[0]) {
        size_t cl = strlen(u->context);
        char *s = eg_arena_alloc(&ix->scratch, len + 1 + cl + 1);
        memcpy(s, text, len);
        s[len] = ' ';
        memcpy(s + len + 1, u->context, cl + 1);
        text = s;
        len += 1 + cl;
    }
    n = eg_text_terms(&ix->scratch, text, len, EG_MINDEX_BM25_FLAGS, &terms);
    eg_bm25_update(ix->bm, slot, terms, n);
}

/* Fill the unit's tag and entity ids (one block: tags first, then entities). */
static void set_members(eg_mindex_t *ix, eg_mindex_unit_t *mu, const eg_mem_unit_t *u)
{
    uint32_t buf[EG_MEM_TAGS_MAX + EG_MEM_ENTITIES_MAX], *blk;
    uint16_t nt, ne = 0;

    nt = eg__mx_tags_intern(ix, u->tags, u->tags ? u->ntags : 0, buf);
    for (size_t i = 0; u->entity_ids && i < u->nentities && ne < EG_MEM_ENTITIES_MAX; i++) {
        uint32_t e = eg__smap_get(ix, &ix->ent_by_id, u->entity_ids[i]);
        bool dup = e == EG_MINDEX_NONE;
        for (uint16_t j = 0; j < ne && !dup; j++)
            dup = buf[nt + j] == e;
        if (!dup)
            buf[nt + ne++] = e;
    }
    blk = eg__mx_alloc(ix, ((size_t)nt + ne) * sizeof(uint32_t));
    if (blk)
        memcpy(blk, buf, ((size_t)nt + ne) * sizeof(uint32_t));
    mu->tags = blk;
    mu->ents = blk ? blk + nt : NULL;
    mu->ntags = nt;
    mu->nents = ne;
}

int eg_mindex_put_unit(eg_mindex_t *ix, const eg_mem_unit_t *u, const float *vec,
                       const eg_mem_link_t *links, size_t nlinks)
{
    eg_mindex_unit_t *mu;
    size_t idlen, tok;
    uint32_t slot;
    bool fresh;
    int rc;

    if (!ix || !u || !u->id || !u->text || (nlinks && !links))
        return EG_EINVAL;
    idlen = strlen(u->id);
    if (idlen == 0 || idlen > EG_MEM_UUID_LEN)
        return EG_EINVAL;
    slot = eg__smap_get(ix, &ix->by_id, u->id);
    fresh = slot == EG_MINDEX_NONE;
    if (fresh) {
        const float *v = vec ? vec : eg_arena_calloc(&ix->scratch, ix->dim * sizeof(float));
        if ((rc = eg_vindex_add(ix->vec, v, &slot)) != 0)
            goto done;
        if (slot >= ix->units_cap)
            units_grow(ix, slot);
        if (slot >= ix->nslots)
            ix->nslots = (size_t)slot + 1;
        mu = &ix->units[slot];
        memset(mu, 0, sizeof(*mu));
        memcpy(mu->id, u->id, idlen + 1);
        eg__smap_put(ix, &ix->by_id, slot);
        ix->count++;
    } else {
        mu = &ix->units[slot];
        eg__mx_unit_detach(ix, slot);
        if (vec)
            eg_vindex_update(ix->vec, slot, vec);
    }
    eg__mx_time_touch(ix, slot);
    mu->type = (uint8_t)u->type;
    mu->invalidated = u->invalidated;
    mu->cstate = u->consolidated_at > 0            ? EG_MINDEX_CONS_DONE
                 : u->consolidation_failed_at > 0 ? EG_MINDEX_CONS_FAILED
                                                  : EG_MINDEX_CONS_PENDING;
    tok = eg_text_estimate_tokens(u->text, strlen(u->text));
    mu->tokens = (uint16_t)(tok > UINT16_MAX ? UINT16_MAX : tok);
    mu->occurred_start = u->occurred_start;
    mu->occurred_end = u->occurred_end;
    mu->mentioned_at = u->mentioned_at;
    mu->created_at = u->created_at;
    mu->doc = u->document_id ? eg__mx_doc_ensure(ix, u->document_id) : EG_MINDEX_NONE;
    mu->chunk = chunk_index(u->chunk_id);
    set_members(ix, mu, u);
    eg__mx_unit_attach(ix, slot);
    index_terms(ix, slot, u);
    eg__mx_links_set(ix, slot, links, nlinks);
    if (fresh)
        eg__mx_pending_resolve(ix, slot);
    rc = 0;
done:
    eg__mx_changed(ix);
    eg_arena_reset(&ix->scratch);
    return rc;
}

int eg_mindex_remove_unit(eg_mindex_t *ix, const char *unit_id)
{
    uint32_t slot = ix ? eg__smap_get(ix, &ix->by_id, unit_id) : EG_MINDEX_NONE;
    eg_mindex_unit_t *mu;

    if (slot == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    mu = &ix->units[slot];
    eg__mx_changed(ix);
    eg__mx_links_clear(ix, slot);
    eg__mx_unit_detach(ix, slot);
    eg__mx_time_touch(ix, slot);
    eg__smap_del(ix, &ix->by_id, slot);
    eg_vindex_remove(ix->vec, slot);
    eg_bm25_remove(ix->bm, slot);
    memset(mu, 0, sizeof(*mu));
    mu->doc = mu->chunk = EG_MINDEX_NONE;
    ix->count--;
    /* Slots past the last live one are not part of the index any more. */
    while (ix->nslots > 0 && ix->units[ix->nslots - 1].id[0] == '\0')
        ix->nslots--;
    return 0;
}

int eg__mx_set_vector(eg_mindex_t *ix, uint32_t slot, const float *vec)
{
    if (slot >= ix->nslots || ix->units[slot].id[0] == '\0')
        return EG_ENOTFOUND;
    if (!vec)
        vec = eg_arena_calloc(&ix->scratch, ix->dim * sizeof(float));
    eg_vindex_update(ix->vec, slot, vec);
    eg_arena_reset(&ix->scratch);
    eg__mx_changed(ix);
    return 0;
}

/* ---- queries --------------------------------------------------------------------------------- */

size_t eg_mindex_dim(const eg_mindex_t *ix)
{
    return ix ? ix->dim : 0;
}

size_t eg_mindex_count(const eg_mindex_t *ix)
{
    return ix ? ix->count : 0;
}

size_t eg_mindex_slots(const eg_mindex_t *ix)
{
    return ix ? ix->nslots : 0;
}

const eg_mindex_unit_t *eg_mindex_unit(const eg_mindex_t *ix, uint32_t slot)
{
    if (!ix || slot >= ix->nslots || ix->units[slot].id[0] == '\0')
        return NULL;
    return &ix->units[slot];
}

int eg_mindex_find(const eg_mindex_t *ix, const char *unit_id, uint32_t *slot)
{
    uint32_t s = ix ? eg__smap_get(ix, &ix->by_id, unit_id) : EG_MINDEX_NONE;

    if (s == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    if (slot)
        *slot = s;
    return 0;
}

eg_vindex_t *eg_mindex_vectors(eg_mindex_t *ix)
{
    return ix ? ix->vec : NULL;
}

eg_bm25_t *eg_mindex_bm25(eg_mindex_t *ix)
{
    return ix ? ix->bm : NULL;
}

size_t eg_mindex_bytes(const eg_mindex_t *ix)
{
    if (!ix)
        return 0;
    return sizeof(*ix) + ix->heap + eg_vindex_bytes(ix->vec) + eg_bm25_bytes(ix->bm) +
           eg__mx_names_bytes(ix);
}
