/* Memory index: links between units (both sides, pending until the target arrives), entities and
 * documents with their memberships.
 *
 * Every link is kept on both units, typed from the holder's side (A causes B is "causes" on A and
 * "caused_by" on B), so the graph arm walks a unit's neighbours without a reverse lookup and
 * removing a unit visits exactly its neighbours. A link whose target has not been loaded yet (the
 * loader reads a bank in slices, and a write may name a unit of the same batch) waits in a pending
 * table keyed by the target id and is resolved when that unit is put.
 *
 * Entity and document memberships are sorted slot arrays: adding and removing are a binary search
 * and a memmove, which stays cheap even for an entity mentioned by a tenth of a large bank, and
 * callers get the slots in ascending order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/util.h"
#include "memory/mindex_int.h"

/* ---- sorted slot sets ----------------------------------------------------------------------- */

static uint32_t lower_bound(const uint32_t *a, uint32_t n, uint32_t s)
{
    uint32_t lo = 0, hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void eg__slots_add(eg_mindex_t *ix, uint32_t **a, uint32_t *n, uint32_t *cap, uint32_t s)
{
    uint32_t i = lower_bound(*a, *n, s);

    if (i < *n && (*a)[i] == s)
        return;
    if (*n == *cap) {
        uint32_t ncap = *cap < 4 ? 4 : *cap + *cap / 2;
        *a = eg__mx_realloc(ix, *a, (size_t)*cap * sizeof(uint32_t),
                            (size_t)ncap * sizeof(uint32_t));
        *cap = ncap;
    }
    memmove(*a + i + 1, *a + i, (size_t)(*n - i) * sizeof(uint32_t));
    (*a)[i] = s;
    (*n)++;
}

void eg__slots_del(eg_mindex_t *ix, uint32_t **a, uint32_t *n, uint32_t *cap, uint32_t s)
{
    uint32_t i = lower_bound(*a, *n, s);

    if (i == *n || (*a)[i] != s)
        return;
    memmove(*a + i, *a + i + 1, (size_t)(*n - i - 1) * sizeof(uint32_t));
    (*n)--;
    /* Give memory back when a set shrank to a third: a cleared bank should not keep its peak. */
    if (*n < *cap / 3) {
        uint32_t ncap = *n + *n / 2;
        *a = eg__mx_realloc(ix, *a, (size_t)*cap * sizeof(uint32_t),
                            (size_t)ncap * sizeof(uint32_t));
        *cap = ncap;
    }
}

/* ---- links ---------------------------------------------------------------------------------- */

/* Add or re-weight holder -> other of type. */
static void link_add(eg_mindex_t *ix, uint32_t holder, uint32_t other, uint8_t type, float w)
{
    eg_mindex_unit_t *u = &ix->units[holder];

    for (uint32_t j = 0; j < u->nlinks; j++) {
        if (u->links[j].slot == other && u->links[j].type == type) {
            u->links[j].weight = w;
            return;
        }
    }
    u->links = eg__mx_realloc(ix, u->links, u->nlinks * sizeof(eg_mindex_link_t),
                              (u->nlinks + 1) * sizeof(eg_mindex_link_t));
    u->links[u->nlinks++] = (eg_mindex_link_t){.slot = other, .weight = w, .type = type};
}

/* Drop every link holder has to other. */
static void link_del_all(eg_mindex_t *ix, uint32_t holder, uint32_t other)
{
    eg_mindex_unit_t *u = &ix->units[holder];
    uint32_t k = 0;

    for (uint32_t j = 0; j < u->nlinks; j++)
        if (u->links[j].slot != other)
            u->links[k++] = u->links[j];
    if (k == u->nlinks)
        return;
    u->links = eg__mx_realloc(ix, u->links, u->nlinks * sizeof(eg_mindex_link_t),
                              k * sizeof(eg_mindex_link_t));
    u->nlinks = k;
}

static void pend_set_bit(eg_mindex_t *ix, uint32_t slot, bool on)
{
    size_t w = slot / 64;

    if (w >= ix->has_pend_words) {
        size_t nw;
        if (!on)
            return;
        nw = w + 1 + (w + 1) / 2;
        ix->has_pend = eg__mx_realloc(ix, ix->has_pend, ix->has_pend_words * sizeof(uint64_t),
                                      nw * sizeof(uint64_t));
        memset(ix->has_pend + ix->has_pend_words, 0, (nw - ix->has_pend_words) * sizeof(uint64_t));
        ix->has_pend_words = nw;
    }
    if (on)
        ix->has_pend[w] |= 1ULL << (slot & 63);
    else
        ix->has_pend[w] &= ~(1ULL << (slot & 63));
}

static bool pend_bit(const eg_mindex_t *ix, uint32_t slot)
{
    return slot / 64 < ix->has_pend_words && (ix->has_pend[slot / 64] >> (slot & 63)) & 1;
}

static void pend_add(eg_mindex_t *ix, uint32_t holder, const char *target, uint8_t type, float w)
{
    uint32_t e, head;

    if (ix->pend_free != EG_MINDEX_NONE) {
        e = ix->pend_free;
        ix->pend_free = ix->pend[e].next;
    } else {
        if (ix->npend_alloc == ix->pend_cap) {
            size_t ncap = ix->pend_cap < 16 ? 16 : ix->pend_cap + ix->pend_cap / 2;
            ix->pend = eg__mx_realloc(ix, ix->pend, ix->pend_cap * sizeof(eg__pend_t),
                                      ncap * sizeof(eg__pend_t));
            ix->pend_cap = ncap;
        }
        e = (uint32_t)ix->npend_alloc++;
    }
    ix->pend[e] = (eg__pend_t){.holder = holder, .weight = w, .type = type};
    snprintf(ix->pend[e].target, sizeof(ix->pend[e].target), "%s", target);
    head = eg__smap_get(ix, &ix->pend_by_target, target);
    if (head == EG_MINDEX_NONE) {
        ix->pend[e].next = EG_MINDEX_NONE;
        eg__smap_put(ix, &ix->pend_by_target, e);
    } else {
        /* Behind the head, so the map entry stays as it is. */
        ix->pend[e].next = ix->pend[head].next;
        ix->pend[head].next = e;
    }
    ix->npend++;
    pend_set_bit(ix, holder, true);
}

static void pend_release(eg_mindex_t *ix, uint32_t e)
{
    ix->pend[e].target[0] = '\0';
    ix->pend[e].next = ix->pend_free;
    ix->pend_free = e;
    ix->npend--;
}

/* Drop the pending links slot holds. */
static void pend_drop_holder(eg_mindex_t *ix, uint32_t slot)
{
    if (!pend_bit(ix, slot))
        return;
    pend_set_bit(ix, slot, false);
    for (uint32_t e = 0; e < ix->npend_alloc; e++) {
        uint32_t head;
        if (!ix->pend[e].target[0] || ix->pend[e].holder != slot)
            continue;
        head = eg__smap_get(ix, &ix->pend_by_target, ix->pend[e].target);
        if (head == e) {
            eg__smap_del(ix, &ix->pend_by_target, e);
            if (ix->pend[e].next != EG_MINDEX_NONE)
                eg__smap_put(ix, &ix->pend_by_target, ix->pend[e].next);
        } else {
            uint32_t p = head;
            while (ix->pend[p].next != e)
                p = ix->pend[p].next;
            ix->pend[p].next = ix->pend[e].next;
        }
        pend_release(ix, e);
    }
}

void eg__mx_pending_resolve(eg_mindex_t *ix, uint32_t slot)
{
    uint32_t e = eg__smap_get(ix, &ix->pend_by_target, ix->units[slot].id);

    if (e == EG_MINDEX_NONE)
        return;
    eg__smap_del(ix, &ix->pend_by_target, e);
    while (e != EG_MINDEX_NONE) {
        eg__pend_t p = ix->pend[e];
        uint32_t next = p.next;
        pend_release(ix, e);
        if (p.holder != slot && p.holder < ix->nslots && ix->units[p.holder].id[0]) {
            link_add(ix, p.holder, slot, p.type, p.weight);
            link_add(ix, slot, p.holder, (uint8_t)eg_link_type_reverse(p.type), p.weight);
        }
        e = next;
    }
}

void eg__mx_links_clear(eg_mindex_t *ix, uint32_t slot)
{
    eg_mindex_unit_t *u = &ix->units[slot];

    for (uint32_t j = 0; j < u->nlinks; j++)
        if (u->links[j].slot != slot)
            link_del_all(ix, u->links[j].slot, slot);
    u = &ix->units[slot];
    eg__mx_free(ix, u->links, u->nlinks * sizeof(eg_mindex_link_t));
    u->links = NULL;
    u->nlinks = 0;
    pend_drop_holder(ix, slot);
}

void eg__mx_links_set(eg_mindex_t *ix, uint32_t slot, const eg_mem_link_t *links, size_t n)
{
    eg__mx_links_clear(ix, slot);
    for (size_t i = 0; i < n; i++) {
        const eg_mem_link_t *l = &links[i];
        size_t idlen = l->other_id ? strlen(l->other_id) : 0;
        uint32_t other;

        if (l->type == EG_LINK_TEMPORAL || (unsigned)l->type >= EG_LINK_NTYPES || idlen == 0 ||
            idlen > EG_MEM_UUID_LEN)
            continue;
        other = eg__smap_get(ix, &ix->by_id, l->other_id);
        if (other == slot)
            continue;
        if (other == EG_MINDEX_NONE) {
            pend_add(ix, slot, l->other_id, (uint8_t)l->type, l->weight);
            continue;
        }
        link_add(ix, slot, other, (uint8_t)l->type, l->weight);
        link_add(ix, other, slot, (uint8_t)eg_link_type_reverse(l->type), l->weight);
    }
}

/* ---- documents ------------------------------------------------------------------------------ */

static void doc_set_tags(eg_mindex_t *ix, eg__doc_t *d, const char *const *tags, size_t n)
{
    uint32_t buf[EG_MEM_TAGS_MAX];
    uint16_t nt;

    for (uint16_t i = 0; i < d->pub.ntags; i++)
        eg__mx_tag_count(ix, d->pub.tags[i], true, -1);
    eg__mx_free(ix, d->pub.tags, d->pub.ntags * sizeof(uint32_t));
    d->pub.tags = NULL;
    d->pub.ntags = 0;
    nt = eg__mx_tags_intern(ix, tags, tags ? n : 0, buf);
    if (!nt)
        return;
    d->pub.tags = eg__mx_alloc(ix, nt * sizeof(uint32_t));
    memcpy(d->pub.tags, buf, nt * sizeof(uint32_t));
    d->pub.ntags = nt;
    for (uint16_t i = 0; i < nt; i++)
        eg__mx_tag_count(ix, buf[i], true, 1);
}

uint32_t eg__mx_doc_ensure(eg_mindex_t *ix, const char *id)
{
    uint32_t idx = eg__smap_get(ix, &ix->doc_by_id, id);
    eg__doc_t *d;

    if (idx != EG_MINDEX_NONE)
        return idx;
    if (ix->ndoc_free) {
        idx = ix->doc_free[--ix->ndoc_free];
    } else {
        if (ix->ndocs == ix->docs_cap) {
            size_t ncap = ix->docs_cap < 16 ? 16 : ix->docs_cap + ix->docs_cap / 2;
            ix->docs = eg__mx_realloc(ix, ix->docs, ix->docs_cap * sizeof(eg__doc_t),
                                      ncap * sizeof(eg__doc_t));
            ix->docs_cap = ncap;
        }
        idx = (uint32_t)ix->ndocs++;
    }
    d = &ix->docs[idx];
    memset(d, 0, sizeof(*d));
    d->pub.id = eg__mx_strdup(ix, id);
    d->pub.created_at = d->pub.updated_at = EG_MEM_TIME_NONE;
    d->live = d->stub = true;
    eg__smap_put(ix, &ix->doc_by_id, idx);
    return idx;
}

static void doc_drop(eg_mindex_t *ix, uint32_t idx)
{
    eg__doc_t *d = &ix->docs[idx];

    for (uint32_t i = 0; i < d->units.n; i++) {
        ix->units[d->units.a[i]].doc = EG_MINDEX_NONE;
        ix->units[d->units.a[i]].chunk = EG_MINDEX_NONE;
    }
    doc_set_tags(ix, d, NULL, 0);
    eg__smap_del(ix, &ix->doc_by_id, idx);
    eg__mx_strfree(ix, d->pub.id);
    eg__mx_free(ix, d->units.a, d->units.cap * sizeof(uint32_t));
    memset(d, 0, sizeof(*d));
    if (ix->ndoc_free == ix->doc_free_cap) {
        size_t ncap = ix->doc_free_cap < 16 ? 16 : ix->doc_free_cap * 2;
        ix->doc_free = eg__mx_realloc(ix, ix->doc_free, ix->doc_free_cap * sizeof(uint32_t),
                                      ncap * sizeof(uint32_t));
        ix->doc_free_cap = ncap;
    }
    ix->doc_free[ix->ndoc_free++] = idx;
}

int eg_mindex_put_doc(eg_mindex_t *ix, const eg_mem_doc_t *d)
{
    uint32_t idx;
    eg__doc_t *x;

    if (!ix || !d || !d->id || !d->id[0])
        return EG_EINVAL;
    eg__mx_changed(ix);
    idx = eg__mx_doc_ensure(ix, d->id); /* may move ix->docs */
    x = &ix->docs[idx];
    x->stub = false;
    x->pub.created_at = d->created_at;
    x->pub.updated_at = d->updated_at;
    x->pub.text_length = d->text_length;
    snprintf(x->pub.content_hash, sizeof(x->pub.content_hash), "%s",
             d->content_hash ? d->content_hash : "");
    doc_set_tags(ix, x, d->tags, d->ntags);
    return 0;
}

int eg_mindex_remove_doc(eg_mindex_t *ix, const char *doc_id)
{
    uint32_t idx = ix ? eg__smap_get(ix, &ix->doc_by_id, doc_id) : EG_MINDEX_NONE;

    if (idx == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    eg__mx_changed(ix);
    doc_drop(ix, idx);
    return 0;
}

size_t eg_mindex_docs(const eg_mindex_t *ix)
{
    return ix ? ix->ndocs : 0;
}

const eg_mindex_doc_t *eg_mindex_doc(const eg_mindex_t *ix, uint32_t idx)
{
    return ix && idx < ix->ndocs && ix->docs[idx].live ? &ix->docs[idx].pub : NULL;
}

int eg_mindex_doc_by_id(const eg_mindex_t *ix, const char *id, uint32_t *idx)
{
    uint32_t i = ix ? eg__smap_get(ix, &ix->doc_by_id, id) : EG_MINDEX_NONE;

    if (i == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    if (idx)
        *idx = i;
    return 0;
}

size_t eg_mindex_doc_units(const eg_mindex_t *ix, uint32_t doc, uint32_t *out, size_t max)
{
    const eg__doc_t *d;

    if (!eg_mindex_doc(ix, doc))
        return 0;
    d = &ix->docs[doc];
    if (out)
        memcpy(out, d->units.a, EG_MIN(max, d->units.n) * sizeof(uint32_t));
    return d->units.n;
}

/* ---- entities ------------------------------------------------------------------------------ */

int eg_mindex_put_entity(eg_mindex_t *ix, const eg_mem_entity_t *e)
{
    size_t idlen = e && e->id ? strlen(e->id) : 0;
    uint32_t idx;
    eg__ent_t *x;
    char *folded;

    if (!ix || idlen == 0 || idlen > EG_MEM_UUID_LEN || !e->canonical_name)
        return EG_EINVAL;
    eg__mx_changed(ix);
    folded = eg_mem_entity_fold(&ix->scratch, e->canonical_name);
    idx = eg__smap_get(ix, &ix->ent_by_id, e->id);
    if (idx == EG_MINDEX_NONE) {
        if (ix->nent_free) {
            idx = ix->ent_free[--ix->nent_free];
        } else {
            if (ix->nents == ix->ents_cap) {
                size_t ncap = ix->ents_cap < 16 ? 16 : ix->ents_cap + ix->ents_cap / 2;
                ix->ents = eg__mx_realloc(ix, ix->ents, ix->ents_cap * sizeof(eg__ent_t),
                                          ncap * sizeof(eg__ent_t));
                ix->ents_cap = ncap;
            }
            idx = (uint32_t)ix->nents++;
        }
        x = &ix->ents[idx];
        memset(x, 0, sizeof(*x));
        memcpy(x->pub.id, e->id, idlen + 1);
        x->pub.name = eg__mx_strdup(ix, e->canonical_name);
        x->pub.folded = eg__mx_strdup(ix, folded);
        x->live = true;
        eg__smap_put(ix, &ix->ent_by_id, idx);
        eg__smap_put(ix, &ix->ent_by_folded, idx);
        eg__mx_names_add(ix, idx);
    } else {
        x = &ix->ents[idx];
        if (strcmp(x->pub.name, e->canonical_name) != 0) {
            eg__mx_names_remove(ix, idx);
            eg__mx_strfree(ix, x->pub.name);
            x->pub.name = eg__mx_strdup(ix, e->canonical_name);
            eg__mx_names_add(ix, idx);
        }
        if (strcmp(x->pub.folded, folded) != 0) {
            eg__smap_del(ix, &ix->ent_by_folded, idx);
            eg__mx_strfree(ix, x->pub.folded);
            x->pub.folded = eg__mx_strdup(ix, folded);
            eg__smap_put(ix, &ix->ent_by_folded, idx);
        }
    }
    x->pub.mention_count = e->mention_count;
    x->pub.first_seen = e->first_seen;
    x->pub.last_seen = e->last_seen;
    eg_arena_reset(&ix->scratch);
    return 0;
}

/* Take entity idx out of a unit's entity list (the block shrinks to fit). */
static void unit_drop_entity(eg_mindex_t *ix, eg_mindex_unit_t *u, uint32_t idx)
{
    size_t old = ((size_t)u->ntags + u->nents) * sizeof(uint32_t);
    uint16_t k = 0;
    uint32_t *blk;

    for (uint16_t j = 0; j < u->nents; j++)
        if (u->ents[j] != idx)
            u->ents[k++] = u->ents[j];
    if (k == u->nents)
        return;
    u->nents = k;
    blk = eg__mx_realloc(ix, u->tags, old, ((size_t)u->ntags + k) * sizeof(uint32_t));
    u->tags = blk;
    u->ents = blk ? blk + u->ntags : NULL;
}

int eg_mindex_remove_entity(eg_mindex_t *ix, const char *entity_id)
{
    uint32_t idx = ix ? eg__smap_get(ix, &ix->ent_by_id, entity_id) : EG_MINDEX_NONE;
    eg__ent_t *x;

    if (idx == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    eg__mx_changed(ix);
    x = &ix->ents[idx];
    eg__mx_names_remove(ix, idx);
    for (uint32_t i = 0; i < x->pub.nslots; i++)
        unit_drop_entity(ix, &ix->units[x->pub.slots[i]], idx);
    eg__smap_del(ix, &ix->ent_by_id, idx);
    eg__smap_del(ix, &ix->ent_by_folded, idx);
    eg__mx_strfree(ix, x->pub.name);
    eg__mx_strfree(ix, x->pub.folded);
    eg__mx_free(ix, x->pub.slots, x->cap * sizeof(uint32_t));
    memset(x, 0, sizeof(*x));
    if (ix->nent_free == ix->ent_free_cap) {
        size_t ncap = ix->ent_free_cap < 16 ? 16 : ix->ent_free_cap * 2;
        ix->ent_free = eg__mx_realloc(ix, ix->ent_free, ix->ent_free_cap * sizeof(uint32_t),
                                      ncap * sizeof(uint32_t));
        ix->ent_free_cap = ncap;
    }
    ix->ent_free[ix->nent_free++] = idx;
    return 0;
}

int eg__mx_entity_stat(eg_mindex_t *ix, const char *entity_id, char field, int64_t v)
{
    uint32_t idx = eg__smap_get(ix, &ix->ent_by_id, entity_id);

    if (idx == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    eg__mx_changed(ix);
    if (field == 'n')
        ix->ents[idx].pub.mention_count = v;
    else if (field == 'f')
        ix->ents[idx].pub.first_seen = v;
    else if (field == 'l')
        ix->ents[idx].pub.last_seen = v;
    else
        return EG_EINVAL;
    return 0;
}

size_t eg_mindex_entities(const eg_mindex_t *ix)
{
    return ix ? ix->nents : 0;
}

const eg_mindex_entity_t *eg_mindex_entity(const eg_mindex_t *ix, uint32_t idx)
{
    return ix && idx < ix->nents && ix->ents[idx].live ? &ix->ents[idx].pub : NULL;
}

int eg_mindex_entity_by_id(const eg_mindex_t *ix, const char *id, uint32_t *idx)
{
    uint32_t i = ix ? eg__smap_get(ix, &ix->ent_by_id, id) : EG_MINDEX_NONE;

    if (i == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    if (idx)
        *idx = i;
    return 0;
}

int eg_mindex_entity_by_folded(const eg_mindex_t *ix, const char *folded, uint32_t *idx)
{
    uint32_t i = ix ? eg__smap_get(ix, &ix->ent_by_folded, folded) : EG_MINDEX_NONE;

    if (i == EG_MINDEX_NONE)
        return EG_ENOTFOUND;
    if (idx)
        *idx = i;
    return 0;
}

/* ---- memberships ------------------------------------------------------------------------------
 */

void eg__mx_unit_attach(eg_mindex_t *ix, uint32_t slot)
{
    eg_mindex_unit_t *u = &ix->units[slot];

    for (uint16_t i = 0; i < u->ntags; i++)
        eg__mx_tag_count(ix, u->tags[i], false, 1);
    for (uint16_t i = 0; i < u->nents; i++) {
        eg__ent_t *x = &ix->ents[u->ents[i]];
        eg__slots_add(ix, &x->pub.slots, &x->pub.nslots, &x->cap, slot);
    }
    if (u->doc != EG_MINDEX_NONE) {
        eg__doc_t *d = &ix->docs[u->doc];
        eg__slots_add(ix, &d->units.a, &d->units.n, &d->units.cap, slot);
        d->pub.nunits = d->units.n;
    }
}

void eg__mx_unit_detach(eg_mindex_t *ix, uint32_t slot)
{
    eg_mindex_unit_t *u = &ix->units[slot];

    for (uint16_t i = 0; i < u->ntags; i++)
        eg__mx_tag_count(ix, u->tags[i], false, -1);
    for (uint16_t i = 0; i < u->nents; i++) {
        eg__ent_t *x = &ix->ents[u->ents[i]];
        eg__slots_del(ix, &x->pub.slots, &x->pub.nslots, &x->cap, slot);
    }
    eg__mx_free(ix, u->tags, ((size_t)u->ntags + u->nents) * sizeof(uint32_t));
    u->tags = u->ents = NULL;
    u->ntags = u->nents = 0;
    if (u->doc != EG_MINDEX_NONE) {
        eg__doc_t *d = &ix->docs[u->doc];
        eg__slots_del(ix, &d->units.a, &d->units.n, &d->units.cap, slot);
        d->pub.nunits = d->units.n;
        /* A stub exists only for its units. */
        if (d->stub && d->units.n == 0)
            doc_drop(ix, u->doc);
        u->doc = EG_MINDEX_NONE;
    }
}

void eg__mx_graph_free(eg_mindex_t *ix)
{
    for (size_t i = 0; i < ix->nents; i++) {
        free(ix->ents[i].pub.name);
        free(ix->ents[i].pub.folded);
        free(ix->ents[i].pub.slots);
    }
    for (size_t i = 0; i < ix->ndocs; i++) {
        free(ix->docs[i].pub.id);
        free(ix->docs[i].pub.tags);
        free(ix->docs[i].units.a);
    }
    free(ix->ents);
    free(ix->ent_free);
    free(ix->docs);
    free(ix->doc_free);
    free(ix->pend);
    free(ix->has_pend);
    free(ix->ent_by_id.t);
    free(ix->ent_by_folded.t);
    free(ix->doc_by_id.t);
    free(ix->pend_by_target.t);
}
