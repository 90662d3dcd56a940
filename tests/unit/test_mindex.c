/* The detached memory index: units (put, replace, remove, slot reuse), links on both sides and
 * pending ones, entities, documents, tags, the time orders and temporal neighbours, byte
 * accounting, and a randomised run checked against the invariants after every step. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/mindex.h"

#define DIM 8
#define H   (INT64_C(3600) * 1000000)
#define T0  (INT64_C(1700000000) * 1000000)

static char ids[512][EG_MEM_UUID_LEN + 1];

/* A deterministic UUID-shaped id for n. */
static const char *uid(int n)
{
    snprintf(ids[n], sizeof(ids[n]), "00000000-0000-4000-8000-%012d", n);
    return ids[n];
}

static char eids[64][EG_MEM_UUID_LEN + 1];

static const char *eid(int n)
{
    snprintf(eids[n], sizeof(eids[n]), "e0000000-0000-4000-8000-%012d", n);
    return eids[n];
}

static void vec_of(int n, float *v)
{
    for (int i = 0; i < DIM; i++)
        v[i] = i == n % DIM ? 1.0f : 0.0f;
}

/* A unit with text, no dates, no document. */
static eg_mem_unit_t unit(int n, const char *text)
{
    eg_mem_unit_t u;

    memset(&u, 0, sizeof(u));
    u.id = uid(n);
    u.text = text;
    u.context = "";
    u.type = EG_FACT_WORLD;
    u.occurred_start = u.occurred_end = u.mentioned_at = EG_MEM_TIME_NONE;
    u.created_at = T0 + n;
    u.updated_at = T0 + n;
    u.invalidated_at = u.edited_at = EG_MEM_TIME_NONE;
    u.proof_count = 1;
    return u;
}

static void put(eg_mindex_t *ix, const eg_mem_unit_t *u, const eg_mem_link_t *l, size_t nl)
{
    float v[DIM];
    int n = atoi(u->id + 24);

    vec_of(n, v);
    cr_assert_eq(eg_mindex_put_unit(ix, u, v, l, nl), 0);
}

static uint32_t slot_of(eg_mindex_t *ix, int n)
{
    uint32_t s;
    cr_assert_eq(eg_mindex_find(ix, uid(n), &s), 0, "unit %d not found", n);
    return s;
}

/* True when holder has a link of type to other. */
static bool has_link(eg_mindex_t *ix, uint32_t holder, uint32_t other, uint8_t type)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(ix, holder);

    for (uint32_t i = 0; u && i < u->nlinks; i++)
        if (u->links[i].slot == other && u->links[i].type == type)
            return true;
    return false;
}

/* The link holder has to other (NULL when none). */
static const eg_mindex_link_t *link_to(eg_mindex_t *ix, uint32_t holder, uint32_t other)
{
    const eg_mindex_unit_t *u = eg_mindex_unit(ix, holder);

    for (uint32_t i = 0; u && i < u->nlinks; i++)
        if (u->links[i].slot == other)
            return &u->links[i];
    return NULL;
}

Test(mindex, put_find_replace_remove)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mem_unit_t u = unit(1, "Alice adopted a cat named Whiskers.");
    const eg_mindex_unit_t *mu;
    const char **q = (const char *[]){"whisker"};
    eg_bm25_hit_t hits[4];
    eg_bm25_query_t bq = {.k = 4};
    float got[DIM];
    uint32_t s;

    cr_assert_eq(eg_mindex_dim(ix), DIM);
    cr_assert_null(eg_mindex_new(0));
    u.context = "pets and hobbies";
    u.type = EG_FACT_EXPERIENCE;
    u.mentioned_at = T0;
    u.chunk_id = "bank_doc1_3";
    u.document_id = "doc1";
    put(ix, &u, NULL, 0);
    cr_assert_eq(eg_mindex_count(ix), 1);
    s = slot_of(ix, 1);
    mu = eg_mindex_unit(ix, s);
    cr_assert_str_eq(mu->id, uid(1));
    cr_assert_eq(mu->type, EG_FACT_EXPERIENCE);
    cr_assert_eq(mu->tokens, eg_text_estimate_tokens(u.text, strlen(u.text)));
    cr_assert_eq(mu->mentioned_at, T0);
    cr_assert_eq(mu->occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(mu->chunk, 3);
    cr_assert_neq(mu->doc, EG_MINDEX_NONE);
    /* BM25 covers text and context, stemmed like queries. */
    cr_assert_eq(eg_bm25_search(eg_mindex_bm25(ix), q, 1, &bq, hits), 1);
    cr_assert_eq(hits[0].doc, s);
    q[0] = "hobby"; /* "hobbies", stemmed */
    cr_assert_eq(eg_bm25_search(eg_mindex_bm25(ix), q, 1, &bq, hits), 1);
    cr_assert_eq(eg_vindex_get(eg_mindex_vectors(ix), s, got), 0);
    cr_assert_float_eq(got[1], 1.0f, 1e-2);

    /* Replace: same slot, new text and metadata; vector NULL keeps the old one. */
    u = unit(1, "Bob repaired the bicycle.");
    cr_assert_eq(eg_mindex_put_unit(ix, &u, NULL, NULL, 0), 0);
    cr_assert_eq(eg_mindex_count(ix), 1);
    cr_assert_eq(slot_of(ix, 1), s);
    q[0] = "whisker";
    cr_assert_eq(eg_bm25_search(eg_mindex_bm25(ix), q, 1, &bq, hits), 0);
    q[0] = "bicycl";
    cr_assert_eq(eg_bm25_search(eg_mindex_bm25(ix), q, 1, &bq, hits), 1);
    cr_assert_eq(eg_mindex_unit(ix, s)->doc, EG_MINDEX_NONE);
    cr_assert_eq(eg_mindex_unit(ix, s)->chunk, EG_MINDEX_NONE);
    cr_assert_eq(eg_vindex_get(eg_mindex_vectors(ix), s, got), 0);
    cr_assert_float_eq(got[1], 1.0f, 1e-2);
    /* The stub document went with its last unit. */
    cr_assert_eq(eg_mindex_doc_by_id(ix, "doc1", NULL), EG_ENOTFOUND);

    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), 0);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_count(ix), 0);
    cr_assert_null(eg_mindex_unit(ix, s));
    cr_assert_eq(eg_mindex_find(ix, uid(1), NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_bm25_count(eg_mindex_bm25(ix)), 0);
    cr_assert_eq(eg_vindex_count(eg_mindex_vectors(ix)), 0);

    /* Bad input. */
    u = unit(2, "x");
    u.id = "";
    cr_assert_eq(eg_mindex_put_unit(ix, &u, NULL, NULL, 0), EG_EINVAL);
    u.id = "0123456789012345678901234567890123456789";
    cr_assert_eq(eg_mindex_put_unit(ix, &u, NULL, NULL, 0), EG_EINVAL);
    u = unit(2, "x");
    u.text = NULL;
    cr_assert_eq(eg_mindex_put_unit(ix, &u, NULL, NULL, 0), EG_EINVAL);
    cr_assert_eq(eg_mindex_put_unit(ix, NULL, NULL, NULL, 0), EG_EINVAL);
    eg_mindex_free(ix);
}

Test(mindex, slots_are_reused)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mem_unit_t u;
    uint32_t s2;

    for (int i = 0; i < 5; i++) {
        u = unit(i, "some fact");
        put(ix, &u, NULL, 0);
    }
    cr_assert_eq(eg_mindex_slots(ix), 5);
    s2 = slot_of(ix, 2);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(2)), 0);
    cr_assert_eq(eg_mindex_slots(ix), 5);
    u = unit(7, "a new fact");
    put(ix, &u, NULL, 0);
    cr_assert_eq(slot_of(ix, 7), s2);
    cr_assert_eq(eg_mindex_count(ix), 5);
    /* Removing the highest slots shrinks the slot range. */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(4)), 0);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(3)), 0);
    cr_assert_eq(eg_mindex_slots(ix), 3);
    eg_mindex_free(ix);
}

/* Every change gives a new version, unique across indexes; reads leave it alone. */
Test(mindex, version_changes_with_every_change)
{
    eg_mindex_t *a = eg_mindex_new(DIM), *b = eg_mindex_new(DIM);
    eg_mem_entity_t e = {.id = eid(1), .canonical_name = "Alice"};
    eg_mem_doc_t d = {.id = "doc-1"};
    eg_mem_unit_t u = unit(1, "a fact");
    uint64_t v;

    cr_assert_neq(eg_mindex_version(a), eg_mindex_version(b));
    v = eg_mindex_version(a);
    put(a, &u, NULL, 0);
    cr_assert_neq(eg_mindex_version(a), v);
    v = eg_mindex_version(a);
    (void)eg_mindex_unit(a, slot_of(a, 1));
    (void)eg_mindex_count(a);
    cr_assert_eq(eg_mindex_version(a), v);
    cr_assert_eq(eg_mindex_put_entity(a, &e), 0);
    cr_assert_neq(eg_mindex_version(a), v);
    v = eg_mindex_version(a);
    cr_assert_eq(eg_mindex_put_doc(a, &d), 0);
    cr_assert_neq(eg_mindex_version(a), v);
    v = eg_mindex_version(a);
    cr_assert_eq(eg_mindex_remove_entity(a, eid(1)), 0);
    cr_assert_neq(eg_mindex_version(a), v);
    v = eg_mindex_version(a);
    cr_assert_eq(eg_mindex_remove_doc(a, "doc-1"), 0);
    cr_assert_neq(eg_mindex_version(a), v);
    v = eg_mindex_version(a);
    cr_assert_eq(eg_mindex_remove_unit(a, uid(1)), 0);
    cr_assert_neq(eg_mindex_version(a), v);
    cr_assert_neq(eg_mindex_version(a), eg_mindex_version(b));
    cr_assert_eq(eg_mindex_version(NULL), 0);
    eg_mindex_free(a);
    eg_mindex_free(b);
}

Test(mindex, links_both_sides_and_pending)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mem_unit_t a = unit(1, "a"), b = unit(2, "b"), c = unit(3, "c");
    eg_mem_link_t la[] = {{uid(2), EG_LINK_CAUSES, 0.9f},
                          {uid(3), EG_LINK_SEMANTIC, 0.75f},
                          {uid(2), EG_LINK_TEMPORAL, 0.5f},  /* derived from time: not kept */
                          {uid(1), EG_LINK_SEMANTIC, 1.0f}}; /* to itself: ignored */
    const eg_mindex_link_t *l;
    uint32_t sa, sb, sc;

    put(ix, &b, NULL, 0);
    put(ix, &a, la, 4);
    sa = slot_of(ix, 1);
    sb = slot_of(ix, 2);
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 1);
    l = link_to(ix, sa, sb);
    cr_assert_not_null(l);
    cr_assert_eq(l->type, EG_LINK_CAUSES);
    cr_assert_float_eq(l->weight, 0.9f, 1e-6);
    /* The reverse side, typed from the holder's view. */
    l = link_to(ix, sb, sa);
    cr_assert_not_null(l);
    cr_assert_eq(l->type, EG_LINK_CAUSED_BY);

    /* c arrives later: the pending link resolves on both sides. */
    put(ix, &c, NULL, 0);
    sc = slot_of(ix, 3);
    l = link_to(ix, sa, sc);
    cr_assert_not_null(l);
    cr_assert_eq(l->type, EG_LINK_SEMANTIC);
    cr_assert_float_eq(l->weight, 0.75f, 1e-6);
    cr_assert_not_null(link_to(ix, sc, sa));
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 2);

    /* Removing c drops it from a; a's pending entries are gone too (c coming back is plain). */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(3)), 0);
    cr_assert_null(link_to(ix, sa, sc));
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 1);
    put(ix, &c, NULL, 0);
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 3))->nlinks, 0);

    /* Replacing a with no links drops its links on both sides. */
    put(ix, &a, NULL, 0);
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 0);
    cr_assert_eq(eg_mindex_unit(ix, sb)->nlinks, 0);

    /* A link named again with another weight is one link, re-weighted. */
    put(ix, &a, la, 1);
    put(ix, &b, (eg_mem_link_t[]){{uid(1), EG_LINK_CAUSED_BY, 0.4f}}, 1);
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 1);
    cr_assert_eq(eg_mindex_unit(ix, sb)->nlinks, 1);
    cr_assert_float_eq(link_to(ix, sa, sb)->weight, 0.4f, 1e-6);

    /* Removing b cleans a. */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(2)), 0);
    cr_assert_eq(eg_mindex_unit(ix, sa)->nlinks, 0);
    eg_mindex_free(ix);
}

Test(mindex, pending_links_of_a_removed_holder_are_dropped)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mem_unit_t a = unit(1, "a"), c = unit(3, "c");
    eg_mem_link_t la[] = {{uid(3), EG_LINK_SEMANTIC, 0.8f}};

    put(ix, &a, la, 1);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), 0);
    put(ix, &c, NULL, 0);
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 3))->nlinks, 0);
    eg_mindex_free(ix);
}

Test(mindex, entities)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mem_entity_t e1 = {.id = eid(1),
                          .canonical_name = "Dr. Alice  O'Neil",
                          .mention_count = 2,
                          .first_seen = T0,
                          .last_seen = T0 + H};
    eg_mem_entity_t e2 = {.id = eid(2),
                          .canonical_name = "Paris",
                          .mention_count = 1,
                          .first_seen = EG_MEM_TIME_NONE,
                          .last_seen = EG_MEM_TIME_NONE};
    const char *both[] = {eid(1), eid(2), eid(1), eid(9)}; /* a repeat and an unknown id */
    eg_mem_unit_t u1 = unit(1, "a"), u2 = unit(2, "b");
    const eg_mindex_entity_t *e;
    uint32_t i1, i2, f;

    cr_assert_eq(eg_mindex_put_entity(ix, &e1), 0);
    cr_assert_eq(eg_mindex_put_entity(ix, &e2), 0);
    cr_assert_eq(eg_mindex_entity_by_id(ix, eid(1), &i1), 0);
    cr_assert_eq(eg_mindex_entity_by_id(ix, eid(2), &i2), 0);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "dr alice oneil", &f), 0);
    cr_assert_eq(f, i1);
    e = eg_mindex_entity(ix, i1);
    cr_assert_str_eq(e->name, "Dr. Alice  O'Neil");
    cr_assert_eq(e->mention_count, 2);
    cr_assert_eq(e->last_seen, T0 + H);

    u1.entity_ids = both;
    u1.nentities = 4;
    u2.entity_ids = both;
    u2.nentities = 1;
    put(ix, &u2, NULL, 0);
    put(ix, &u1, NULL, 0);
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 1))->nents, 2);
    e = eg_mindex_entity(ix, i1);
    cr_assert_eq(e->nslots, 2);
    cr_assert(e->slots[0] < e->slots[1], "entity slots ascending");
    cr_assert_eq(eg_mindex_entity(ix, i2)->nslots, 1);

    /* Rename: the folded map follows. */
    e1.canonical_name = "Alice Smith";
    e1.mention_count = 3;
    cr_assert_eq(eg_mindex_put_entity(ix, &e1), 0);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "dr alice oneil", NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice smith", &f), 0);
    cr_assert_eq(f, i1);
    cr_assert_eq(eg_mindex_entity(ix, i1)->mention_count, 3);
    cr_assert_eq(eg_mindex_entity(ix, i1)->nslots, 2);

    /* A unit leaving drops its memberships. */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(2)), 0);
    cr_assert_eq(eg_mindex_entity(ix, i1)->nslots, 1);

    /* Removing an entity takes it out of its units. */
    cr_assert_eq(eg_mindex_remove_entity(ix, eid(1)), 0);
    cr_assert_eq(eg_mindex_remove_entity(ix, eid(1)), EG_ENOTFOUND);
    cr_assert_null(eg_mindex_entity(ix, i1));
    cr_assert_eq(eg_mindex_entity_by_folded(ix, "alice smith", NULL), EG_ENOTFOUND);
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 1))->nents, 1);
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 1))->ents[0], i2);
    cr_assert_eq(eg_mindex_entities(ix), 2);
    /* Its index is reused. */
    e1.id = eid(3);
    cr_assert_eq(eg_mindex_put_entity(ix, &e1), 0);
    cr_assert_eq(eg_mindex_entity_by_id(ix, eid(3), &f), 0);
    cr_assert_eq(f, i1);
    cr_assert_eq(eg_mindex_entity(ix, f)->nslots, 0);
    eg_mindex_free(ix);
}

Test(mindex, documents_and_tags)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    const char *ut[] = {"work", "alpha", "work"}, *dt[] = {"shared", "alpha"};
    eg_mem_unit_t u1 = unit(1, "a"), u2 = unit(2, "b"), u3 = unit(3, "c");
    eg_mem_doc_t d = {.id = "doc, with comma",
                      .created_at = T0,
                      .updated_at = T0 + 1,
                      .tags = dt,
                      .ntags = 2,
                      .text_length = 42,
                      .content_hash = "abc"};
    const eg_mindex_doc_t *doc;
    uint32_t di, out[8], alpha;

    u1.document_id = u2.document_id = "doc, with comma";
    u1.tags = ut;
    u1.ntags = 3;
    put(ix, &u1, NULL, 0);
    put(ix, &u2, NULL, 0);
    put(ix, &u3, NULL, 0);
    cr_assert_eq(eg_mindex_doc_by_id(ix, "doc, with comma", &di), 0);
    doc = eg_mindex_doc(ix, di);
    cr_assert_eq(doc->nunits, 2);
    cr_assert_eq(doc->created_at, EG_MEM_TIME_NONE); /* a stub until its record arrives */
    cr_assert_eq(eg_mindex_doc_units(ix, di, out, 8), 2);
    cr_assert_eq(out[0], slot_of(ix, 1));
    cr_assert_eq(out[1], slot_of(ix, 2));
    cr_assert_eq(eg_mindex_put_doc(ix, &d), 0);
    doc = eg_mindex_doc(ix, di);
    cr_assert_eq(doc->created_at, T0);
    cr_assert_eq(doc->text_length, 42);
    cr_assert_str_eq(doc->content_hash, "abc");
    cr_assert_eq(doc->ntags, 2);

    /* Tags: interned, ascending, de-duplicated; counted per unit. */
    alpha = eg_mindex_tag(ix, "alpha");
    cr_assert_neq(alpha, EG_MINDEX_NONE);
    cr_assert_str_eq(eg_mindex_tag_name(ix, alpha), "alpha");
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 1))->ntags, 2);
    cr_assert(eg_mindex_unit(ix, slot_of(ix, 1))->tags[0] <
              eg_mindex_unit(ix, slot_of(ix, 1))->tags[1]);
    cr_assert_eq(eg_mindex_tag_units(ix, alpha), 1);
    cr_assert_eq(eg_mindex_tag_units(ix, eg_mindex_tag(ix, "shared")), 0);
    cr_assert_neq(eg_mindex_tag(ix, "shared"), EG_MINDEX_NONE); /* the document has it */
    cr_assert_eq(eg_mindex_tag(ix, "nope"), EG_MINDEX_NONE);

    /* A document with a record outlives its units. */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), 0);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(2)), 0);
    cr_assert_eq(eg_mindex_doc(ix, di)->nunits, 0);
    cr_assert_eq(eg_mindex_tag(ix, "work"), EG_MINDEX_NONE);
    cr_assert_eq(eg_mindex_ntags(ix), 3);

    /* Removing a document detaches its units. */
    put(ix, &u1, NULL, 0);
    cr_assert_eq(eg_mindex_doc(ix, di)->nunits, 1);
    cr_assert_eq(eg_mindex_remove_doc(ix, "doc, with comma"), 0);
    cr_assert_eq(eg_mindex_remove_doc(ix, "doc, with comma"), EG_ENOTFOUND);
    cr_assert_null(eg_mindex_doc(ix, di));
    cr_assert_eq(eg_mindex_unit(ix, slot_of(ix, 1))->doc, EG_MINDEX_NONE);
    cr_assert_eq(eg_mindex_tag(ix, "shared"), EG_MINDEX_NONE);
    /* Removing the unit afterwards is fine. */
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), 0);
    eg_mindex_free(ix);
}

Test(mindex, time_order)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    const uint32_t *o;
    size_t n;
    eg_mem_unit_t u;

    /* 1 and 2 have no mentioned_at (first, by created_at: 2 was created before 1). */
    u = unit(1, "a");
    u.created_at = T0 + 5;
    put(ix, &u, NULL, 0);
    u = unit(2, "b");
    u.created_at = T0 + 4;
    put(ix, &u, NULL, 0);
    u = unit(3, "c");
    u.mentioned_at = T0 + 2 * H;
    put(ix, &u, NULL, 0);
    u = unit(4, "d");
    u.mentioned_at = T0 + H;
    put(ix, &u, NULL, 0);
    o = eg_mindex_by_time(ix, &n);
    cr_assert_eq(n, 4);
    cr_assert_eq(o[0], slot_of(ix, 2));
    cr_assert_eq(o[1], slot_of(ix, 1));
    cr_assert_eq(o[2], slot_of(ix, 4));
    cr_assert_eq(o[3], slot_of(ix, 3));
    /* Changes after a build: one moved, one removed, one added. */
    u = unit(3, "c");
    u.mentioned_at = T0;
    put(ix, &u, NULL, 0);
    cr_assert_eq(eg_mindex_remove_unit(ix, uid(1)), 0);
    u = unit(5, "e");
    u.mentioned_at = T0 + 3 * H;
    put(ix, &u, NULL, 0);
    o = eg_mindex_by_time(ix, &n);
    cr_assert_eq(n, 4);
    cr_assert_eq(o[0], slot_of(ix, 2));
    cr_assert_eq(o[1], slot_of(ix, 3));
    cr_assert_eq(o[2], slot_of(ix, 4));
    cr_assert_eq(o[3], slot_of(ix, 5));
    eg_mindex_free(ix);
}

Test(mindex, time_near)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    eg_mindex_link_t out[8];
    eg_mem_unit_t u;
    size_t n;
    /* Event times relative to unit 0: occurred_start wins over mentioned_at. */
    const int64_t at[] = {0, H, -5 * H, 30 * H, 2 * H, 3 * H};

    for (int i = 0; i < 6; i++) {
        u = unit(i, "x");
        u.mentioned_at = T0 + 100 * H; /* ignored where occurred_start is set */
        u.occurred_start = T0 + at[i];
        u.invalidated = i == 4;
        put(ix, &u, NULL, 0);
    }
    u = unit(6, "no time");
    put(ix, &u, NULL, 0);
    n = eg_mindex_time_near(ix, slot_of(ix, 0), 24 * H, 8, out);
    cr_assert_eq(n, 3); /* 1 h, 3 h, -5 h; not the invalidated 2 h nor 30 h */
    cr_assert_eq(out[0].slot, slot_of(ix, 1));
    cr_assert_eq(out[0].type, EG_LINK_TEMPORAL);
    cr_assert_float_eq(out[0].weight, 1.0f - 1.0f / 24, 1e-5);
    cr_assert_eq(out[1].slot, slot_of(ix, 5));
    cr_assert_eq(out[2].slot, slot_of(ix, 2));
    cr_assert_float_eq(out[2].weight, 1.0f - 5.0f / 24, 1e-5);
    cr_assert_eq(eg_mindex_time_near(ix, slot_of(ix, 0), 24 * H, 1, out), 1);
    /* The weight floor. */
    n = eg_mindex_time_near(ix, slot_of(ix, 3), 40 * H, 8, out);
    cr_assert_eq(n, 4);
    cr_assert_eq(out[0].slot, slot_of(ix, 5));
    cr_assert_float_eq(out[3].weight, 0.3f, 1e-6);
    /* A unit without an event time has no temporal neighbours. */
    cr_assert_eq(eg_mindex_time_near(ix, slot_of(ix, 6), 24 * H, 8, out), 0);
    /* After a change the order is rebuilt. */
    u = unit(3, "x");
    u.occurred_start = T0 + 30 * 60 * 1000000LL;
    put(ix, &u, NULL, 0);
    n = eg_mindex_time_near(ix, slot_of(ix, 0), 24 * H, 8, out);
    cr_assert_eq(n, 4);
    cr_assert_eq(out[0].slot, slot_of(ix, 3));
    eg_mindex_free(ix);
}

Test(mindex, bytes)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    size_t b0 = eg_mindex_bytes(ix), b1, b2;
    eg_mem_unit_t u;
    const char *tags[] = {"t"};

    cr_assert_gt(b0, 0);
    for (int i = 0; i < 200; i++) {
        eg_mem_link_t l = {uid(i > 0 ? i - 1 : 1), EG_LINK_SEMANTIC, 0.8f};
        u = unit(i, "Carol moved to Lisbon in the spring with her two dogs.");
        u.tags = tags;
        u.ntags = 1;
        put(ix, &u, &l, 1);
    }
    b1 = eg_mindex_bytes(ix);
    cr_assert_gt(b1, b0 + 200 * (sizeof(eg_mindex_unit_t) + DIM));
    for (int i = 0; i < 200; i++)
        cr_assert_eq(eg_mindex_remove_unit(ix, uid(i)), 0);
    b2 = eg_mindex_bytes(ix);
    cr_assert_lt(b2, b1);
    eg_mindex_free(ix);
}

/* ---- randomised: every step keeps the index consistent ----------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void check_invariants(eg_mindex_t *ix)
{
    size_t live = 0, n;
    const uint32_t *o;
    int64_t prev_t = INT64_MIN;
    int prev_g = -1;

    for (uint32_t s = 0; s < eg_mindex_slots(ix); s++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, s);
        uint32_t f;
        if (!u)
            continue;
        live++;
        cr_assert_eq(eg_mindex_find(ix, u->id, &f), 0);
        cr_assert_eq(f, s);
        for (uint32_t i = 0; i < u->nlinks; i++) {
            cr_assert(
                has_link(ix, u->links[i].slot, s, (uint8_t)eg_link_type_reverse(u->links[i].type)),
                "link %u -> %u has no reverse", s, u->links[i].slot);
        }
        for (uint16_t i = 0; i < u->nents; i++) {
            const eg_mindex_entity_t *e = eg_mindex_entity(ix, u->ents[i]);
            bool found = false;
            cr_assert_not_null(e);
            for (uint32_t j = 0; j < e->nslots; j++)
                found |= e->slots[j] == s;
            cr_assert(found);
        }
        if (u->doc != EG_MINDEX_NONE) {
            uint32_t buf[512];
            size_t k = eg_mindex_doc_units(ix, u->doc, buf, 512);
            bool found = false;
            for (size_t j = 0; j < k; j++)
                found |= buf[j] == s;
            cr_assert(found);
        }
    }
    cr_assert_eq(live, eg_mindex_count(ix));
    for (uint32_t e = 0; e < eg_mindex_entities(ix); e++) {
        const eg_mindex_entity_t *x = eg_mindex_entity(ix, e);
        for (uint32_t j = 0; x && j < x->nslots; j++) {
            const eg_mindex_unit_t *u = eg_mindex_unit(ix, x->slots[j]);
            bool found = false;
            cr_assert_not_null(u);
            for (uint16_t i = 0; i < u->nents; i++)
                found |= u->ents[i] == e;
            cr_assert(found);
            if (j)
                cr_assert_lt(x->slots[j - 1], x->slots[j]);
        }
    }
    o = eg_mindex_by_time(ix, &n);
    cr_assert_eq(n, live);
    for (size_t i = 0; i < n; i++) {
        const eg_mindex_unit_t *u = eg_mindex_unit(ix, o[i]);
        int g = u->mentioned_at != EG_MEM_TIME_NONE;
        int64_t t = g ? u->mentioned_at : u->created_at;
        cr_assert_not_null(u);
        cr_assert(g > prev_g || (g == prev_g && t >= prev_t), "time order broken at %zu", i);
        prev_g = g;
        prev_t = t;
    }
}

Test(mindex, randomised_consistency)
{
    eg_mindex_t *ix = eg_mindex_new(DIM);
    const char *docs[] = {"d1", "d2", "d3"};

    for (int e = 0; e < 10; e++) {
        eg_mem_entity_t x = {.id = eid(e), .canonical_name = e % 2 ? "Alpha" : "Beta"};
        cr_assert_eq(eg_mindex_put_entity(ix, &x), 0);
    }
    for (int step = 0; step < 3000; step++) {
        int n = (int)rnd(300), op = (int)rnd(10);
        if (op < 6) {
            eg_mem_unit_t u = unit(n, "random fact about things");
            eg_mem_link_t l[4];
            const char *ents[3];
            size_t nl = rnd(5);
            for (size_t i = 0; i < nl; i++)
                l[i] =
                    (eg_mem_link_t){uid((int)rnd(300)), (eg_link_type_t)rnd(EG_LINK_NTYPES), 0.5f};
            for (int i = 0; i < 3; i++)
                ents[i] = eid((int)rnd(10));
            u.entity_ids = ents;
            u.nentities = rnd(4);
            u.document_id = rnd(2) ? docs[rnd(3)] : NULL;
            u.mentioned_at = rnd(4) ? T0 + (int64_t)rnd(1000) * H : EG_MEM_TIME_NONE;
            put(ix, &u, l, nl);
        } else if (op < 9) {
            eg_mindex_remove_unit(ix, uid(n));
        } else if (op == 9 && rnd(10) == 0) {
            int e = (int)rnd(10);
            eg_mem_entity_t x = {.id = eid(e), .canonical_name = "Gamma"};
            eg_mindex_remove_entity(ix, eid(e));
            cr_assert_eq(eg_mindex_put_entity(ix, &x), 0);
        }
        if (step % 97 == 0)
            check_invariants(ix);
    }
    check_invariants(ix);
    eg_mindex_free(ix);
}
