/* Memory store against a real Redis, part 1: retain's write and the reads — write then read back
 * units, vectors, links, the document, chunks, entities and the counters; the change entry;
 * replace; the concurrent new-entity merge; skipped links; write_key replay; the embedding check;
 * a missing bank; Redis down and timing out. Part 2 (deletes, documents, tags, clears, bank
 * delete) is test_mstore_docs.c. After every write t_check() recomputes the bank's counters and
 * cross-references from its raw keys.
 *
 * ENGRAM_TEST_REDIS_URL names a shared server; without it, or for the tests that stop Redis, a
 * private redis-server is started (redis_fixture.h). */
#include "mstore_harness.h"

TestSuite(mstore, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* Three units: A and B name Alice, C names Paris. Links: A-B semantic (given from both sides,
 * stored once), A causes C, C to a unit that does not exist (skipped), A to itself (ignored). */
typedef struct t_fix_s {
    const char *a, *b, *c, *missing, *alice, *paris;
    const char *ents_ab[1], *ents_c[1];
    eg_mem_link_t la[3], lb[1], lc[1];
    eg_mem_new_unit_t units[3];
    eg_mem_entity_ref_t refs[2];
} t_fix_t;

static void t_fixture(t_fix_t *f)
{
    f->a = t_uuid();
    f->b = t_uuid();
    f->c = t_uuid();
    f->missing = t_uuid();
    f->alice = t_uuid();
    f->paris = t_uuid();
    f->ents_ab[0] = f->alice;
    f->ents_c[0] = f->paris;
    t_unit(&f->units[0], f->a, "Alice likes tea.", EG_FACT_WORLD, f->ents_ab, 1, 0.1f);
    t_unit(&f->units[1], f->b, "Alice drinks tea daily.", EG_FACT_EXPERIENCE, f->ents_ab, 1, 0.2f);
    t_unit(&f->units[2], f->c, "Paris is rainy.", EG_FACT_WORLD, f->ents_c, 1, 0.3f);
    f->la[0] = (eg_mem_link_t){f->b, EG_LINK_SEMANTIC, 0.9f};
    f->la[1] = (eg_mem_link_t){f->c, EG_LINK_CAUSES, 0.7f};
    f->la[2] = (eg_mem_link_t){f->a, EG_LINK_SEMANTIC, 1.0f};
    f->lb[0] = (eg_mem_link_t){f->a, EG_LINK_SEMANTIC, 0.9f};
    f->lc[0] = (eg_mem_link_t){f->missing, EG_LINK_TEMPORAL, 0.5f};
    f->units[0].links = f->la;
    f->units[0].nlinks = 3;
    f->units[1].links = f->lb;
    f->units[1].nlinks = 1;
    f->units[2].links = f->lc;
    f->units[2].nlinks = 1;
    f->refs[0] = (eg_mem_entity_ref_t){f->alice, "Alice", true, 2, INT64_C(1714600000123456)};
    f->refs[1] = (eg_mem_entity_ref_t){f->paris, "Paris", true, 1, INT64_C(1714500000000000)};
}

typedef struct t_ents_s {
    int done, err;
    size_t n;
    int64_t count[4], first[4], last[4];
    const char *name[4];
} t_ents_t;

static void t_ents_done(void *udata, int err, const eg_mem_entity_t *const *ents, size_t n)
{
    t_ents_t *o = udata;

    o->err = err;
    o->n = n;
    for (size_t i = 0; err == 0 && i < n && i < 4; i++) {
        o->count[i] = ents[i] ? ents[i]->mention_count : -1;
        o->first[i] = ents[i] ? ents[i]->first_seen : 0;
        o->last[i] = ents[i] ? ents[i]->last_seen : 0;
        o->name[i] = ents[i] ? t_dup(ents[i]->canonical_name) : NULL;
    }
    o->done = 1;
}

static void t_entities(const char *const *ids, size_t n, t_ents_t *o)
{
    memset(o, 0, sizeof(*o));
    cr_assert_eq(eg_mem_entities_get(T.ws, T.bank, ids, n, t_ents_done, o), 0);
    t_wait(&o->done);
    cr_assert_eq(o->err, 0);
}

typedef struct t_chunks_s {
    int done, err;
    size_t n;
    const char *text[4];
    size_t index[4];
} t_chunks_t;

static void t_chunks_done(void *udata, int err, const eg_mem_chunk_t *const *c, size_t n)
{
    t_chunks_t *o = udata;

    o->err = err;
    o->n = n;
    for (size_t i = 0; err == 0 && i < n && i < 4; i++) {
        o->text[i] = c[i] ? t_dup(c[i]->text) : NULL;
        o->index[i] = c[i] ? c[i]->chunk_index : 99;
    }
    o->done = 1;
}

typedef struct t_plain_s {
    int done, err;
    size_t n;
    const char *text[4];
} t_plain_t;

static void t_plain_done(void *udata, int err, const eg_mem_unit_t *const *units, size_t n)
{
    t_plain_t *o = udata;

    o->err = err;
    o->n = n;
    for (size_t i = 0; err == 0 && i < n && i < 4; i++)
        o->text[i] = units[i] ? t_dup(units[i]->text) : NULL;
    o->done = 1;
}

Test(mstore, write_then_read_back)
{
    t_fix_t f;
    t_wres_t w;
    eg_mem_write_t b;
    t_units_t got;
    t_doc_t doc;
    t_ents_t ents;
    t_chunks_t ch = {0};
    const char *ids[4];
    const char *chunk_ids[3];
    redisReply *x, *vec;
    const eg_mem_link_t *lk;

    t_env_start();
    t_fixture(&f);
    b = t_batch("doc-1", f.units, 3, f.refs, 2);
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_not(w.r.replayed);
    cr_assert_eq(w.r.units_written, 3);
    cr_assert_eq(w.r.units_replaced, 0);
    cr_assert_eq(w.r.links_written, 2, "A-B once, A causes C; the missing end and self skipped");
    cr_assert_eq(w.r.entities_created, 2);
    cr_assert_eq(w.r.n_map, 0);
    t_check();

    /* units and their links, both directions */
    ids[0] = f.a;
    ids[1] = f.b;
    ids[2] = f.c;
    ids[3] = f.missing;
    cr_assert_eq(t_units_get_links(ids, 4, &got), 0);
    cr_assert_eq(got.n, 4);
    cr_assert_null(got.u[3]);
    cr_assert_str_eq(got.u[0]->text, "Alice likes tea.");
    cr_assert_eq(got.u[1]->type, EG_FACT_EXPERIENCE);
    cr_assert_str_eq(got.u[0]->document_id, "doc-1");
    cr_assert_eq(got.u[0]->occurred_end, INT64_C(1714607999999999));
    cr_assert_eq(got.u[0]->mentioned_at, INT64_C(1714600000123456));
    cr_assert_eq(got.u[0]->nentities, 1);
    cr_assert_str_eq(got.u[0]->entity_ids[0], f.alice);
    cr_assert_eq(got.nlinks[0], 2);
    lk = t_find_link(&got, 0, f.b, EG_LINK_SEMANTIC);
    cr_assert(lk != NULL && lk->weight > 0.899f && lk->weight < 0.901f);
    cr_assert_not_null(t_find_link(&got, 0, f.c, EG_LINK_CAUSES));
    cr_assert_eq(got.nlinks[1], 1);
    cr_assert_not_null(t_find_link(&got, 1, f.a, EG_LINK_SEMANTIC));
    cr_assert_eq(got.nlinks[2], 1);
    cr_assert_not_null(t_find_link(&got, 2, f.a, EG_LINK_CAUSED_BY));
    cr_assert_eq(got.nlinks[3], 0);

    /* units without links, and an empty request (answered from the loop too) */
    {
        t_plain_t p = {0};

        cr_assert_eq(eg_mem_units_get(T.ws, T.bank, ids + 2, 2, t_plain_done, &p), 0);
        t_wait(&p.done);
        cr_assert_eq(p.err, 0);
        cr_assert_eq(p.n, 2);
        cr_assert_str_eq(p.text[0], "Paris is rainy.");
        cr_assert_null(p.text[1]);
        memset(&p, 0, sizeof(p));
        cr_assert_eq(eg_mem_units_get(T.ws, T.bank, NULL, 0, t_plain_done, &p), 0);
        cr_assert_eq(p.done, 0);
        t_wait(&p.done);
        cr_assert_eq(p.err, 0);
        cr_assert_eq(p.n, 0);
        cr_assert_eq(eg_mem_units_get(T.ws, T.bank, (const char *[]){"no"}, 1, t_plain_done, &p),
                     EG_EINVAL);
    }

    /* the vector, float32 little-endian */
    vec = t_cmd("HGET %s %s", t_key("v"), f.b);
    cr_assert_eq(vec->len, 4 * T_DIM);
    for (int i = 0; i < T_DIM; i++) {
        const unsigned char *p = (const unsigned char *)vec->str + 4 * i;
        uint32_t bits =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float fv;

        memcpy(&fv, &bits, 4);
        cr_assert_eq(fv, f.units[1].vec[i]);
    }

    /* the document and its chunks */
    cr_assert_eq(t_doc_get("doc-1", &doc), 0);
    cr_assert_str_eq(doc.d.id, "doc-1");
    cr_assert_str_eq(doc.d.original_text, "first chunk second chunk");
    cr_assert_eq(doc.d.nunits, 3);
    cr_assert(t_has(doc.d.unit_ids, 3, f.a) && t_has(doc.d.unit_ids, 3, f.c));
    cr_assert_eq(doc.d.nchunks, 2);
    cr_assert_eq(doc.d.created_at, INT64_C(1714600000000000));
    cr_assert_eq(t_doc_get("nope", &doc), EG_ENOTFOUND);
    chunk_ids[0] = eg_mem_chunk_id(&T.a, T.bank, "doc-1", 1);
    chunk_ids[1] = eg_mem_chunk_id(&T.a, T.bank, "doc-1", 0);
    chunk_ids[2] = "none";
    cr_assert_eq(eg_mem_chunks_get(T.ws, T.bank, chunk_ids, 3, t_chunks_done, &ch), 0);
    t_wait(&ch.done);
    cr_assert_eq(ch.err, 0);
    cr_assert_str_eq(ch.text[0], "second chunk");
    cr_assert_eq(ch.index[0], 1);
    cr_assert_str_eq(ch.text[1], "first chunk");
    cr_assert_null(ch.text[2]);

    /* entities with their counts and times */
    ids[0] = f.alice;
    ids[1] = f.paris;
    ids[2] = f.a; /* not an entity */
    t_entities(ids, 3, &ents);
    cr_assert_str_eq(ents.name[0], "Alice");
    cr_assert_eq(ents.count[0], 2);
    cr_assert_eq(ents.first[0], INT64_C(1714600000123456));
    cr_assert_eq(ents.last[0], INT64_C(1714600000123456));
    cr_assert_eq(ents.count[1], 1);
    cr_assert_eq(ents.count[2], -1);
    cr_assert_str_eq(t_cmd("HGET %s %s", t_key("en"), "alice")->str, f.alice);

    /* the bank's counters and embedding */
    cr_assert_eq(t_bank_int("fact_count"), 3);
    cr_assert_eq(t_bank_int("document_count"), 1);
    cr_assert_eq(t_bank_int("chunk_count"), 2);
    cr_assert_eq(t_bank_int("link_count"), 2);
    cr_assert_gt(t_bank_int("last_document_at"), 1700000000000);
    cr_assert_gt(t_bank_int("last_write_at"), 1700000000000);
    cr_assert_eq(t_bank_int("embed_dim"), T_DIM);
    cr_assert_str_eq(t_cmd("HGET %s embed_model", t_key("bank"))->str, "test-model");

    /* exactly one change entry, naming what changed */
    x = t_stream();
    cr_assert_eq(x->elements, 1);
    cr_assert_not_null(strstr(t_entry_field(x, 0, "u"), f.a));
    cr_assert_not_null(strstr(t_entry_field(x, 0, "u"), f.c));
    cr_assert_eq(strlen(t_entry_field(x, 0, "u")), 3 * 36 + 2);
    cr_assert_eq(strlen(t_entry_field(x, 0, "e")), 2 * 36 + 1);
    cr_assert_str_eq(t_entry_field(x, 0, "d"), "doc-1");
    cr_assert_null(t_entry_field(x, 0, "reset"));
    t_env_stop();
}

Test(mstore, replace_drops_the_old_document)
{
    t_fix_t f;
    t_wres_t w;
    eg_mem_write_t b;
    eg_mem_new_unit_t other[1], again[1];
    eg_mem_link_t to_a = {NULL, EG_LINK_TEMPORAL, 0.4f};
    const char *d2 = NULL, *n1 = NULL, *ents_n[1], *ids[2];
    t_units_t got;
    t_doc_t doc;
    redisReply *x;

    t_env_start();
    t_fixture(&f);
    b = t_batch("doc-1", f.units, 3, f.refs, 2);
    cr_assert_eq(t_write(&b, &w), 0);

    /* another document with a unit linked to A and naming Alice */
    d2 = t_uuid();
    to_a.other_id = f.a;
    t_unit(&other[0], d2, "Alice met Bob.", EG_FACT_WORLD, f.ents_ab, 1, 0.5f);
    other[0].links = &to_a;
    other[0].nlinks = 1;
    b = t_batch("doc/2, with comma", other, 1, f.refs, 1);
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_eq(w.r.links_written, 1);
    cr_assert_eq(w.r.entities_created, 0);
    t_check();
    cr_assert_eq(t_bank_int("link_count"), 3);

    /* without replace an existing document is a conflict, and nothing changes */
    b.replace = false;
    cr_assert_eq(t_write(&b, &w), EG_ECONFLICT);
    cr_assert_eq(t_stream()->elements, 2);

    /* replace doc-1 with one new unit naming a new entity: A, B, C, their links and Paris go */
    n1 = t_uuid();
    ents_n[0] = t_uuid();
    t_unit(&again[0], n1, "Bob moved to Rome.", EG_FACT_WORLD, ents_n, 1, 0.7f);
    {
        eg_mem_entity_ref_t r = {ents_n[0], "Rome", true, 1, EG_MEM_TIME_NONE};
        b = t_batch("doc-1", again, 1, &r, 1);
        b.nchunks = 1;
        cr_assert_eq(t_write(&b, &w), 0);
    }
    cr_assert_eq(w.r.units_written, 1);
    cr_assert_eq(w.r.units_replaced, 3);
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 2);
    cr_assert_eq(t_bank_int("document_count"), 2);
    cr_assert_eq(t_bank_int("chunk_count"), 3);
    cr_assert_eq(t_bank_int("link_count"), 0);
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("e"), f.paris)->integer, 0, "Paris lost its units");
    cr_assert_eq(t_cmd("HEXISTS %s paris", t_key("en"))->integer, 0);
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.alice)->str, "1");
    ids[0] = d2;
    ids[1] = f.a;
    cr_assert_eq(t_units_get_links(ids, 2, &got), 0);
    cr_assert_not_null(got.u[0]);
    cr_assert_eq(got.nlinks[0], 0, "the link to the replaced unit went from the other side");
    cr_assert_null(got.u[1]);
    cr_assert_eq(t_doc_get("doc-1", &doc), 0);
    cr_assert_eq(doc.d.nunits, 1);
    cr_assert_str_eq(doc.d.unit_ids[0], n1);
    cr_assert_eq(doc.d.nchunks, 1);

    /* the replace's change entry names the old and new units, the entities and the document */
    x = t_stream();
    cr_assert_eq(x->elements, 3);
    cr_assert_not_null(strstr(t_entry_field(x, 2, "u"), f.a));
    cr_assert_not_null(strstr(t_entry_field(x, 2, "u"), n1));
    cr_assert_not_null(strstr(t_entry_field(x, 2, "e"), f.paris));
    cr_assert_not_null(strstr(t_entry_field(x, 2, "e"), ents_n[0]));
    cr_assert_str_eq(t_entry_field(x, 2, "d"), "doc-1");
    cr_assert_str_eq(t_entry_field(x, 1, "d"), "doc/2, with comma");
    t_env_stop();
}

Test(mstore, new_entity_merges_into_one_created_meanwhile)
{
    eg_mem_new_unit_t u1[1], u2[2];
    const char *bob = NULL, *bob2 = NULL, *e1[1], *e2[1];
    eg_mem_entity_ref_t r1, r2;
    eg_mem_write_t b;
    t_wres_t w;
    t_units_t got;
    const char *ids[2];

    t_env_start();
    bob = t_uuid();
    e1[0] = bob;
    r1 = (eg_mem_entity_ref_t){bob, "Bob Smith", true, 1, INT64_C(1714000000000000)};
    t_unit(&u1[0], t_uuid(), "Bob Smith runs.", EG_FACT_WORLD, e1, 1, 0.1f);
    b = t_batch("d1", u1, 1, &r1, 1);
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_eq(w.r.entities_created, 1);

    /* A second writer resolved "bob  smith" before the first write landed: a fresh id. */
    bob2 = t_uuid();
    e2[0] = bob2;
    r2 = (eg_mem_entity_ref_t){bob2, "bob  SMITH", true, 2, INT64_C(1715000000000000)};
    t_unit(&u2[0], t_uuid(), "Bob Smith swims.", EG_FACT_WORLD, e2, 1, 0.2f);
    t_unit(&u2[1], t_uuid(), "Bob Smith reads.", EG_FACT_WORLD, e2, 1, 0.3f);
    b = t_batch("d2", u2, 2, &r2, 1);
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_eq(w.r.entities_created, 0);
    cr_assert_eq(w.r.n_map, 1);
    cr_assert_str_eq(w.map[0][0], bob2);
    cr_assert_str_eq(w.map[0][1], bob);
    t_check(); /* includes: every unit's entity exists, mention counts match */
    ids[0] = u2[0].unit.id;
    ids[1] = u2[1].unit.id;
    cr_assert_eq(t_units_get_links(ids, 2, &got), 0);
    cr_assert_str_eq(got.u[0]->entity_ids[0], bob);
    cr_assert_str_eq(got.u[1]->entity_ids[0], bob);
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), bob)->str, "3");
    cr_assert_str_eq(t_cmd("HGET %s %s:f", t_key("es"), bob)->str, "1714000000000000");
    cr_assert_str_eq(t_cmd("HGET %s %s:l", t_key("es"), bob)->str, "1715000000000000");
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("e"), bob2)->integer, 0);
    t_env_stop();
}

Test(mstore, write_key_replays)
{
    eg_mem_new_unit_t u[1];
    eg_mem_write_t b;
    t_wres_t w;

    t_env_start();
    t_unit(&u[0], t_uuid(), "Once.", EG_FACT_WORLD, NULL, 0, 0.1f);
    b = t_batch("d1", u, 1, NULL, 0);
    b.write_key = "op-1:0";
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_not(w.r.replayed);
    /* the same key again: nothing written, even with other content */
    t_unit(&u[0], t_uuid(), "Twice.", EG_FACT_WORLD, NULL, 0, 0.1f);
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert(w.r.replayed);
    cr_assert_eq(w.r.units_written, 0);
    cr_assert_eq(t_bank_int("fact_count"), 1);
    cr_assert_eq(t_stream()->elements, 1);
    t_check();
    /* another key writes */
    b.write_key = "op-1:1";
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_not(w.r.replayed);
    cr_assert_eq(w.r.units_replaced, 1);
    cr_assert_eq(t_cmd("ZCARD %s", t_key("wk"))->integer, 2);
    t_check();
    t_env_stop();
}

Test(mstore, embedding_must_match)
{
    eg_mem_new_unit_t u[1];
    eg_mem_write_t b;
    t_wres_t w;
    t_count_t c = {0};
    float v8[8] = {0};
    eg_mem_unit_t first;

    t_env_start();
    t_unit(&u[0], t_uuid(), "Four dims.", EG_FACT_WORLD, NULL, 0, 0.1f);
    b = t_batch("d1", u, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), 0);
    first = u[0].unit;
    first.document_id = "d1";
    /* another dim, or another model, while the bank holds units */
    t_unit(&u[0], t_uuid(), "Eight dims.", EG_FACT_WORLD, NULL, 0, 0.1f);
    u[0].vec = v8;
    b = t_batch("d2", u, 1, NULL, 0);
    b.dim = 8;
    cr_assert_eq(t_write(&b, &w), EG_ECONFLICT);
    b.dim = T_DIM;
    b.embed_model = "other-model";
    cr_assert_eq(t_write(&b, &w), EG_ECONFLICT);
    cr_assert_eq(t_bank_int("fact_count"), 1);
    cr_assert_eq(t_bank_int("document_count"), 1, "nothing of a refused write is kept");
    /* a unit edit with a vector of another dim too */
    cr_assert_eq(t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &first, v8, 8, first.updated_at,
                                                  t_count_done, &c),
                              &c, NULL),
                 EG_ECONFLICT);
    /* an empty bank takes a new embedding */
    cr_assert_eq(t_clear(0x7, NULL), 0);
    b.dim = 8;
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_eq(t_bank_int("embed_dim"), 8);
    cr_assert_str_eq(t_cmd("HGET %s embed_model", t_key("bank"))->str, "other-model");
    t_env_stop();
}

Test(mstore, missing_bank_and_bad_input)
{
    eg_mem_new_unit_t u[2];
    const char *e[1], *dup_e[2];
    eg_mem_entity_ref_t r[2];
    eg_mem_write_t b;
    t_wres_t w;

    t_env_start_url(t_url(), false);
    t_unit(&u[0], t_uuid(), "No bank.", EG_FACT_WORLD, NULL, 0, 0.1f);
    b = t_batch("d1", u, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), EG_ENOTFOUND);
    cr_assert_eq(t_cmd("EXISTS %s", t_key("bank"))->integer, 0, "no bank record was made");
    cr_assert_eq(t_clear(0x7, NULL), EG_ENOTFOUND);
    t_bank_put();

    /* refused before anything is sent */
    memset(&w, 0, sizeof(w));
    b.doc.id = "bad\nid";
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    b.doc.id = "d1";
    u[0].unit.id = "not-a-uuid";
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    u[0].unit.id = t_uuid();
    e[0] = t_uuid(); /* names an entity that is not among the refs */
    u[0].unit.entity_ids = e;
    u[0].unit.nentities = 1;
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    /* two refs with one folded name */
    dup_e[0] = e[0];
    dup_e[1] = t_uuid();
    u[0].unit.entity_ids = dup_e;
    u[0].unit.nentities = 2;
    r[0] = (eg_mem_entity_ref_t){dup_e[0], "Ann Lee", true, 1, EG_MEM_TIME_NONE};
    r[1] = (eg_mem_entity_ref_t){dup_e[1], "ann lee", true, 1, EG_MEM_TIME_NONE};
    b = t_batch("d1", u, 1, r, 2);
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    /* duplicate unit ids */
    t_unit(&u[0], t_uuid(), "x", EG_FACT_WORLD, NULL, 0, 0.1f);
    u[1] = u[0];
    b = t_batch("d1", u, 2, NULL, 0);
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    /* a weight out of range, a vector missing */
    {
        eg_mem_link_t l = {t_uuid(), EG_LINK_SEMANTIC, 1.5f};
        b = t_batch("d1", u, 1, NULL, 0);
        u[0].links = &l;
        u[0].nlinks = 1;
        cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
        u[0].nlinks = 0;
        u[0].vec = NULL;
        cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EINVAL);
    }
    cr_assert_eq(w.calls, 0, "no callback for a refused call");
    cr_assert_eq(t_cmd("EXISTS %s", t_key("x"))->integer, 0);
    t_env_stop();
}

/* ---- Redis down ---------------------------------------------------------------------------- */

Test(mstore, redis_down_and_timing_out)
{
    eg_mem_new_unit_t u[1];
    eg_mem_write_t b;
    t_wres_t w;
    t_count_t c = {0};
    t_units_t got;
    t_doc_t doc;
    const char *ids[1];
    const char *tags[1] = {"t"};

    t_env_start_url(t_private_url(), true);
    t_unit(&u[0], t_uuid(), "Kept.", EG_FACT_WORLD, NULL, 0, 0.1f);
    ids[0] = u[0].unit.id;
    b = t_batch("d1", u, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), 0);

    /* Writes paused: every call times out, its callback runs once with the error. */
    t_cmd("CLIENT PAUSE 20000 WRITE");
    cr_assert_eq(t_write(&b, &w), EG_ESTORETIMEOUT);
    cr_assert_eq(t_units_delete(ids, 1, NULL), EG_ESTORETIMEOUT);
    cr_assert_eq(t_set_tags("d1", tags, 1, NULL), EG_ESTORETIMEOUT);
    t_cmd("CLIENT UNPAUSE");
    t_wait_up();
    cr_assert_eq(t_doc_get("d1", &doc), 0);

    /* Redis gone: calls are refused at once (no callback) or fail in it, exactly once. */
    t_redis_kill(&t_own);
    T.deadline = uv_now(&T.loop) + 5000;
    while (eg_store_up() && uv_now(&T.loop) < T.deadline)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_not(eg_store_up());
    memset(&w, 0, sizeof(w));
    cr_assert_eq(eg_mem_write(T.ws, T.bank, &b, t_write_done, &w), EG_EUNAVAIL);
    cr_assert_eq(eg_mem_units_get_links(T.ws, T.bank, ids, 1, t_units_links_done, &got),
                 EG_EUNAVAIL);
    cr_assert_eq(eg_mem_units_delete(T.ws, T.bank, ids, 1, t_count_done, &c), EG_EUNAVAIL);
    cr_assert_eq(eg_mem_doc_get(T.ws, T.bank, "d1", t_doc_done, &doc), EG_EUNAVAIL);
    cr_assert_eq(eg_mem_doc_set_tags(T.ws, T.bank, "d1", tags, 1, t_count_done, &c), EG_EUNAVAIL);
    cr_assert_eq(eg_mem_clear(T.ws, T.bank, 1, t_count_done, &c), EG_EUNAVAIL);
    cr_assert_eq(c.calls, 0);
    cr_assert_eq(w.calls, 0);
    redisFree(T.sync);
    T.sync = NULL;
    {
        int done = 0;

        eg_store_shutdown(t_shutdown_done, &done);
        uv_close((uv_handle_t *)&T.tick, NULL);
        T.deadline = uv_now(&T.loop) + 10000;
        t_wait(&done);
        uv_run(&T.loop, UV_RUN_DEFAULT);
        eg_arena_destroy(&T.a);
        t_loop_close_checked(&T.loop);
    }
}
