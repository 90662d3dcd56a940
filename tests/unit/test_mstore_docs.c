/* Memory store against a real Redis, part 2: unit deletes and document deletes cascading (links
 * on the other side, entity mentions, counters), curated unit edits, document tags (also racing a
 * unit edit), clears by type and of everything, and bank deletion dropping every key of the
 * bank. After each step t_check() recomputes the bank's counters and cross-references from its
 * raw keys (mstore_harness.h). */
#include "engram/ops.h"
#include "mstore_harness.h"

TestSuite(mstore_docs, .init = t_redis_setup, .fini = t_redis_teardown, .timeout = 60);

/* doc-1: A, B (Alice), C (Paris), links A-B semantic, A causes C; doc-2: D (Alice), D-A temporal.
 */
typedef struct t_two_s {
    const char *a, *b, *c, *d, *alice, *paris;
    const char *e_alice[1], *e_paris[1];
    eg_mem_link_t la[2], ld[1];
    eg_mem_new_unit_t u1[3], u2[1];
    eg_mem_entity_ref_t refs[2];
} t_two_t;

static void t_two(t_two_t *f)
{
    eg_mem_write_t b;
    t_wres_t w;

    f->a = t_uuid();
    f->b = t_uuid();
    f->c = t_uuid();
    f->d = t_uuid();
    f->alice = t_uuid();
    f->paris = t_uuid();
    f->e_alice[0] = f->alice;
    f->e_paris[0] = f->paris;
    t_unit(&f->u1[0], f->a, "Alice likes tea.", EG_FACT_WORLD, f->e_alice, 1, 0.1f);
    t_unit(&f->u1[1], f->b, "Alice drinks tea.", EG_FACT_EXPERIENCE, f->e_alice, 1, 0.2f);
    t_unit(&f->u1[2], f->c, "Paris is rainy.", EG_FACT_WORLD, f->e_paris, 1, 0.3f);
    f->la[0] = (eg_mem_link_t){f->b, EG_LINK_SEMANTIC, 0.9f};
    f->la[1] = (eg_mem_link_t){f->c, EG_LINK_CAUSES, 0.7f};
    f->u1[0].links = f->la;
    f->u1[0].nlinks = 2;
    f->refs[0] = (eg_mem_entity_ref_t){f->alice, "Alice", true, 2, INT64_C(1714600000000000)};
    f->refs[1] = (eg_mem_entity_ref_t){f->paris, "Paris", true, 1, INT64_C(1714600000000000)};
    b = t_batch("doc-1", f->u1, 3, f->refs, 2);
    cr_assert_eq(t_write(&b, &w), 0);
    t_unit(&f->u2[0], f->d, "Alice met Bob.", EG_FACT_OBSERVATION, f->e_alice, 1, 0.4f);
    f->ld[0] = (eg_mem_link_t){f->a, EG_LINK_TEMPORAL, 0.5f};
    f->u2[0].links = f->ld;
    f->u2[0].nlinks = 1;
    b = t_batch("doc-2", f->u2, 1, f->refs, 1);
    cr_assert_eq(t_write(&b, &w), 0);
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 4);
    cr_assert_eq(t_bank_int("link_count"), 3);
    cr_assert_eq(t_bank_int("chunk_count"), 4);
}

Test(mstore_docs, units_delete_cascades)
{
    t_two_t f;
    const char *ids[3];
    int64_t n = -1;
    t_units_t got;
    t_doc_t doc;
    redisReply *x;

    t_env_start();
    t_two(&f);
    ids[0] = f.a;
    cr_assert_eq(t_units_delete(ids, 1, &n), 0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 3);
    cr_assert_eq(t_bank_int("link_count"), 0, "all three links touched A");
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.alice)->str, "2");
    ids[0] = f.b;
    ids[1] = f.c;
    ids[2] = f.d;
    cr_assert_eq(t_units_get_links(ids, 3, &got), 0);
    cr_assert_eq(got.nlinks[0] + got.nlinks[1] + got.nlinks[2], 0);
    cr_assert_eq(t_doc_get("doc-1", &doc), 0);
    cr_assert_eq(doc.d.nunits, 2);
    cr_assert_not(t_has(doc.d.unit_ids, 2, f.a));
    x = t_stream();
    cr_assert_eq(x->elements, 3);
    cr_assert_str_eq(t_entry_field(x, 2, "u"), f.a);
    cr_assert_str_eq(t_entry_field(x, 2, "e"), f.alice);
    cr_assert_str_eq(t_entry_field(x, 2, "d"), "doc-1");

    /* C (Paris's only unit) and an id that does not exist: Paris goes entirely */
    ids[0] = f.c;
    ids[1] = t_uuid();
    cr_assert_eq(t_units_delete(ids, 2, &n), 0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("e"), f.paris)->integer, 0);
    cr_assert_eq(t_cmd("HEXISTS %s %s:n", t_key("es"), f.paris)->integer, 0);
    cr_assert_eq(t_cmd("HEXISTS %s paris", t_key("en"))->integer, 0);
    cr_assert_eq(t_bank_int("document_count"), 2, "documents stay");

    /* nothing that exists: no change entry */
    cr_assert_eq(t_units_delete(ids + 1, 1, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(t_stream()->elements, 4);
    {
        t_count_t c = {0};
        cr_assert_eq(eg_mem_units_delete(T.ws, T.bank, (const char *[]){"x"}, 1, t_count_done, &c),
                     EG_EINVAL);
        cr_assert_eq(c.calls, 0);
    }
    t_env_stop();
}

Test(mstore_docs, doc_delete_cascades)
{
    t_two_t f;
    int64_t n = -1;
    t_units_t got;
    const char *ids[1];
    redisReply *x;

    t_env_start();
    t_two(&f);
    cr_assert_eq(t_doc_delete("doc-1", &n), 0);
    cr_assert_eq(n, 3);
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 1);
    cr_assert_eq(t_bank_int("document_count"), 1);
    cr_assert_eq(t_bank_int("chunk_count"), 2);
    cr_assert_eq(t_bank_int("link_count"), 0);
    cr_assert_eq(t_cmd("HLEN %s", t_key("c"))->integer, 2);
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("e"), f.paris)->integer, 0);
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.alice)->str, "1");
    ids[0] = f.d;
    cr_assert_eq(t_units_get_links(ids, 1, &got), 0);
    cr_assert_eq(got.nlinks[0], 0, "D's link to A is gone");
    x = t_stream();
    cr_assert_eq(x->elements, 3);
    cr_assert_str_eq(t_entry_field(x, 2, "d"), "doc-1");
    cr_assert_eq(strlen(t_entry_field(x, 2, "u")), 3 * 36 + 2);
    cr_assert_eq(t_doc_delete("doc-1", &n), EG_ENOTFOUND);
    cr_assert_eq(t_stream()->elements, 3);
    cr_assert_eq(t_doc_delete("doc-2", &n), 0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_eq(t_cmd("HLEN %s", t_key("e"))->integer, 0);
    cr_assert_eq(t_bank_int("chunk_count"), 0);
    t_env_stop();
}

/* A curated edit that names entities the bank lacks creates them in the same write; one whose
 * folded name the bank has by then (created meanwhile) is that entity instead. */
Test(mstore_docs, unit_replace_creates_entities)
{
    t_two_t f;
    eg_mem_unit_t u;
    const char *ents[2];
    int64_t n = -1;
    t_count_t c = {0};
    t_units_t got;
    eg_mem_entity_ref_t news[2];
    char berlin[37], paris2[37];

    t_env_start();
    t_two(&f);
    snprintf(berlin, sizeof(berlin), "%s", t_uuid());
    snprintf(paris2, sizeof(paris2), "%s", t_uuid());
    u = f.u1[0].unit;
    u.document_id = "doc-1";
    ents[0] = berlin;
    ents[1] = paris2;
    u.entity_ids = ents;
    u.nentities = 2;
    u.updated_at = f.u1[0].unit.updated_at + 5;
    news[0] = (eg_mem_entity_ref_t){
        .id = berlin, .name = "Berlin", .is_new = true, .mentions = 1, .seen_at = 1700000000000000};
    news[1] = (eg_mem_entity_ref_t){
        .id = paris2, .name = "PARIS", .is_new = true, .mentions = 1, .seen_at = EG_MEM_TIME_NONE};
    cr_assert_eq(
        t_count_wait(eg_mem_unit_replace_ents(T.ws, T.bank, &u, NULL, 0, f.u1[0].unit.updated_at,
                                              news, 2, t_count_done, &c),
                     &c, &n),
        0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_str_eq(t_cmd("HGET %s berlin", t_key("en"))->str, berlin);
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), berlin)->str, "1");
    cr_assert_str_eq(t_cmd("HGET %s %s:f", t_key("es"), berlin)->str, "1700000000000000");
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("e"), paris2)->integer, 0, "merged, not created");
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.paris)->str, "2");
    const char *ids[1] = {f.a};
    cr_assert_eq(t_units_get_links(ids, 1, &got), 0);
    cr_assert_eq(got.u[0]->nentities, 2);
    cr_assert_str_eq(got.u[0]->entity_ids[0], berlin);
    cr_assert_str_eq(got.u[0]->entity_ids[1], f.paris);
    t_env_stop();
}

Test(mstore_docs, unit_replace_checks_updated_at)
{
    t_two_t f;
    eg_mem_unit_t u;
    const char *ents[2], *ids[1], *bogus[1];
    int64_t n = -1;
    t_count_t c = {0};
    t_units_t got;
    float v[T_DIM] = {1, 0, 0, 0};

    t_env_start();
    t_two(&f);
    u = f.u1[0].unit;
    u.document_id = "doc-1";
    u.text = "Alice loves Paris.";
    ents[0] = f.paris;
    u.entity_ids = ents;
    u.nentities = 1;
    u.tags = (const char *[]){"edited"};
    u.ntags = 1;
    u.updated_at = f.u1[0].unit.updated_at + 5;
    u.edited_at = u.updated_at;
    cr_assert_eq(t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &u, v, T_DIM,
                                                  f.u1[0].unit.updated_at, t_count_done, &c),
                              &c, &n),
                 0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.alice)->str, "2");
    cr_assert_str_eq(t_cmd("HGET %s %s:n", t_key("es"), f.paris)->str, "2");
    ids[0] = f.a;
    cr_assert_eq(t_units_get_links(ids, 1, &got), 0);
    cr_assert_str_eq(got.u[0]->text, "Alice loves Paris.");
    cr_assert_eq(got.u[0]->updated_at, u.updated_at);
    cr_assert_eq(got.nlinks[0], 2, "links are kept (D's temporal link to A is held by D)");
    cr_assert_eq(t_cmd("HGET %s %s", t_key("v"), f.a)->str[3], 0x3f); /* 1.0f, little-endian */
    cr_assert_str_eq(t_entry_field(t_stream(), 2, "u"), f.a);

    /* the same expectation again: the record changed meanwhile */
    memset(&c, 0, sizeof(c));
    cr_assert_eq(t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &u, NULL, 0,
                                                  f.u1[0].unit.updated_at, t_count_done, &c),
                              &c, &n),
                 EG_ECONFLICT);
    /* an entity that does not exist; another document; a unit that does not exist */
    bogus[0] = t_uuid();
    u.entity_ids = bogus;
    memset(&c, 0, sizeof(c));
    cr_assert_eq(
        t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &u, NULL, 0, u.updated_at, t_count_done, &c),
                     &c, &n),
        EG_EINVAL);
    u.entity_ids = ents;
    u.document_id = "doc-2";
    memset(&c, 0, sizeof(c));
    cr_assert_eq(
        t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &u, NULL, 0, u.updated_at, t_count_done, &c),
                     &c, &n),
        EG_EINVAL);
    u.document_id = "doc-1";
    u.id = t_uuid();
    memset(&c, 0, sizeof(c));
    cr_assert_eq(
        t_count_wait(eg_mem_unit_replace(T.ws, T.bank, &u, NULL, 0, u.updated_at, t_count_done, &c),
                     &c, &n),
        EG_ENOTFOUND);
    t_check();
    cr_assert_eq(t_stream()->elements, 3, "refused edits change nothing");
    t_env_stop();
}

Test(mstore_docs, doc_tags)
{
    t_two_t f;
    const char *tags[2] = {"x", "y:z"}, *ids[3];
    int64_t n = -1;
    t_doc_t doc;
    t_units_t got;
    redisReply *x;

    t_env_start();
    t_two(&f);
    cr_assert_eq(t_set_tags("doc-1", tags, 2, &n), 0);
    cr_assert_eq(n, 3);
    t_check();
    cr_assert_eq(t_doc_get("doc-1", &doc), 0);
    cr_assert_eq(doc.d.ntags, 2);
    cr_assert_str_eq(doc.d.tags[1], "y:z");
    cr_assert_gt(doc.d.updated_at, INT64_C(1714600000000000));
    ids[0] = f.a;
    ids[1] = f.b;
    ids[2] = f.d;
    cr_assert_eq(t_units_get_links(ids, 3, &got), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(got.u[i]->ntags, 2);
        cr_assert_str_eq(got.u[i]->tags[0], "x");
        cr_assert_gt(got.u[i]->updated_at, f.u1[0].unit.updated_at);
        cr_assert_str_eq(got.u[i]->text, f.u1[i].unit.text, "the rest of the record is kept");
        cr_assert_eq(got.u[i]->occurred_end, f.u1[i].unit.occurred_end);
    }
    cr_assert_eq(got.u[2]->ntags, 0, "another document's unit is untouched");
    cr_assert_eq(got.nlinks[0], 2);
    x = t_stream();
    cr_assert_eq(x->elements, 3);
    cr_assert_eq(strlen(t_entry_field(x, 2, "u")), 3 * 36 + 2);
    cr_assert_str_eq(t_entry_field(x, 2, "d"), "doc-1");
    cr_assert_str_eq(t_entry_field(x, 2, "e"), "");
    cr_assert_eq(t_set_tags("doc-1", NULL, 0, &n), 0);
    cr_assert_eq(t_doc_get("doc-1", &doc), 0);
    cr_assert_eq(doc.d.ntags, 0);
    cr_assert_eq(t_set_tags("nope", tags, 1, &n), EG_ENOTFOUND);
    t_check();
    t_env_stop();
}

Test(mstore_docs, doc_tags_race_a_unit_edit)
{
    t_two_t f;
    const char *tags[1] = {"raced"}, *ids[1];
    t_count_t tc = {0}, ec = {0};
    eg_mem_unit_t u;
    t_units_t got;
    int64_t n = -1;

    t_env_start();
    t_two(&f);
    for (int round = 0; round < 5; round++) {
        cr_assert_eq(t_units_get_links((const char *[]){f.b}, 1, &got), 0);
        u = *got.u[0];
        u.text = "Alice now drinks coffee.";
        u.updated_at = got.u[0]->updated_at + 1;
        memset(&tc, 0, sizeof(tc));
        memset(&ec, 0, sizeof(ec));
        /* both in flight at once: the tag write must not lose the edit, nor the edit the tags */
        cr_assert_eq(eg_mem_doc_set_tags(T.ws, T.bank, "doc-1", tags, 1, t_count_done, &tc), 0);
        cr_assert_eq(
            eg_mem_unit_replace(T.ws, T.bank, &u, NULL, 0, got.u[0]->updated_at, t_count_done, &ec),
            0);
        t_wait(&tc.done);
        t_wait(&ec.done);
        cr_assert_eq(tc.err, 0);
        cr_assert(ec.err == 0 || ec.err == EG_ECONFLICT);
        ids[0] = f.b;
        cr_assert_eq(t_units_get_links(ids, 1, &got), 0);
        cr_assert_eq(got.u[0]->ntags, 1, "round %d", round);
        cr_assert_str_eq(got.u[0]->tags[0], "raced");
        if (ec.err == 0)
            cr_assert_str_eq(got.u[0]->text, "Alice now drinks coffee.");
        t_check();
        cr_assert_eq(t_set_tags("doc-1", NULL, 0, &n), 0);
    }
    t_env_stop();
}

Test(mstore_docs, clear_by_type_then_all)
{
    t_two_t f;
    eg_mem_new_unit_t tricky[1];
    eg_mem_write_t b;
    t_wres_t w;
    int64_t n = -1;
    cJSON *meta = cJSON_Parse("{\"fact_type\":\"world\"}");
    redisReply *x;

    t_env_start();
    t_two(&f);
    /* an experience whose text and metadata mention "fact_type":"world" */
    t_unit(&tricky[0], t_uuid(), "{\"fact_type\":\"world\"}", EG_FACT_EXPERIENCE, NULL, 0, 0.9f);
    tricky[0].unit.metadata = meta;
    b = t_batch("doc-3", tricky, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), 0);
    t_check();

    cr_assert_eq(t_clear(1u << EG_FACT_WORLD, &n), 0);
    cr_assert_eq(n, 2); /* A and C */
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 3);
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("u"), tricky[0].unit.id)->integer, 1);
    cr_assert_eq(t_bank_int("document_count"), 3, "documents stay");
    x = t_stream();
    cr_assert_str_eq(t_entry_field(x, x->elements - 1, "reset"), "1");

    cr_assert_eq(t_clear(1u << EG_FACT_OBSERVATION, &n), 0);
    cr_assert_eq(n, 1); /* D */
    t_check();
    cr_assert_eq(t_clear(1u << EG_FACT_OBSERVATION, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(t_stream()->elements, x->elements + 1, "nothing deleted: no entry");

    cr_assert_eq(t_clear(0x7, &n), 0);
    cr_assert_eq(n, 2);
    t_check();
    cr_assert_eq(t_bank_int("fact_count"), 0);
    cr_assert_eq(t_bank_int("document_count"), 0);
    cr_assert_eq(t_bank_int("chunk_count"), 0);
    cr_assert_eq(t_bank_int("link_count"), 0);
    for (const char *const *k =
             (const char *const[]){"u", "v", "l", "d", "c", "e", "es", "en", "du", NULL};
         *k; k++)
        cr_assert_eq(t_cmd("EXISTS %s", t_key(*k))->integer, 0, "%s left", *k);
    cr_assert_eq(t_cmd("EXISTS %s", t_key("bank"))->integer, 1, "the bank stays");
    x = t_stream();
    cr_assert_str_eq(t_entry_field(x, x->elements - 1, "reset"), "1");
    cr_assert_eq(t_clear(0, &n), EG_EINVAL);
    cJSON_Delete(meta);
    t_env_stop();
}

static void t_op_done(void *udata, int err, const eg_op_t *op)
{
    (void)op;
    cr_assert_eq(err, 0);
    *(int *)udata = 1;
}

static void t_deleted(void *udata, int err, bool existed, int64_t deleted)
{
    cr_assert_eq(err, 0);
    cr_assert(existed);
    cr_assert_eq(deleted, 6);
    *(int *)udata = 1;
}

Test(mstore_docs, bank_delete_drops_every_key)
{
    t_two_t f;
    eg_mem_new_unit_t u[2];
    eg_mem_write_t b;
    t_wres_t w;
    int done = 0;
    char pattern[300];
    eg_arena_t a;
    const char **keys;
    size_t nkeys;

    t_env_start();
    t_two(&f);
    t_unit(&u[0], t_uuid(), "Keyed.", EG_FACT_WORLD, NULL, 0, 0.1f);
    /* an observation made from it, for the fact -> observations index */
    t_unit(&u[1], t_uuid(), "Keyed, twice.", EG_FACT_OBSERVATION, NULL, 0, 0.2f);
    u[1].unit.source_ids = (const char *const[]){u[0].unit.id};
    u[1].unit.nsources = 1;
    b = t_batch("doc-3", u, 2, NULL, 0);
    b.write_key = "op:1";
    cr_assert_eq(t_write(&b, &w), 0);
    cr_assert_eq(eg_op_create("b", T.tag, "op-1", "retain", NULL, t_op_done, &done), 0);
    t_wait(&done);
    /* every key family of the bank exists now */
    eg_arena_init(&a);
    keys = eg_mem_bank_keys(&a, T.ws, T.bank, &nkeys);
    cr_assert_eq(nkeys, 13);
    for (size_t i = 0; i < nkeys; i++)
        cr_assert_eq(t_cmd("EXISTS %s", keys[i])->integer, 1, "%s", keys[i]);
    eg_arena_destroy(&a);
    snprintf(pattern, sizeof(pattern), "%s*", t_key(""));
    cr_assert_gt(t_cmd("KEYS %s", pattern)->elements, 12);

    done = 0;
    cr_assert_eq(eg_bank_delete(T.ws, T.bank, t_deleted, &done), 0);
    t_wait(&done);
    cr_assert_eq(t_cmd("KEYS %s", pattern)->elements, 0, "a key of the bank survived");
    t_env_stop();
}

/* A temporal link lives on its holder only: an old unit linked by many later ones keeps a short
 * list (the later ones are counted in :lr), deleting it takes those links out of link_count and
 * out of what readers see while their entries stay with the holders, and storing a unit with the
 * same id again makes them links again. t_check verifies counters and :lr after every step. */
Test(mstore_docs, temporal_links_live_on_their_holder)
{
    enum { LATER = 45 };
    eg_mem_new_unit_t old[1], later[LATER], again[1];
    eg_mem_link_t to_old[LATER];
    const char *a = NULL, *ids[LATER];
    t_wres_t w;
    eg_mem_write_t b;
    t_units_t got;
    int64_t n = -1;

    t_env_start();
    a = t_uuid();
    t_unit(&old[0], a, "The old fact.", EG_FACT_WORLD, NULL, 0, 0.1f);
    b = t_batch("doc-old", old, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), 0);
    for (int i = 0; i < LATER; i++) {
        to_old[i] = (eg_mem_link_t){a, EG_LINK_TEMPORAL, 0.5f};
        t_unit(&later[i], t_uuid(), "A later fact.", EG_FACT_WORLD, NULL, 0, 0.2f);
        later[i].links = &to_old[i];
        later[i].nlinks = 1;
        ids[i] = later[i].unit.id;
        b = t_batch(eg_arena_printf(&T.a, "doc-later-%d", i), &later[i], 1, NULL, 0);
        cr_assert_eq(t_write(&b, &w), 0);
        cr_assert_eq(w.r.links_written, 1);
    }
    t_check();
    cr_assert_eq(t_bank_int("link_count"), LATER);
    cr_assert_eq(t_cmd("HEXISTS %s %s", t_key("l"), a)->integer, 0, "the old unit holds nothing");
    cr_assert_eq(t_cmd("HGET %s %s", t_key("lr"), a)->str[0], '4');
    const char *some[2] = {ids[0], a}; /* t_units_t holds a few units */
    cr_assert_eq(t_units_get_links(some, 2, &got), 0);
    cr_assert_eq(got.nlinks[0], 1);
    cr_assert_eq(got.nlinks[1], 0);

    /* Delete the old unit: its links go from the count and from what readers see. */
    cr_assert_eq(t_units_delete(&a, 1, &n), 0);
    cr_assert_eq(n, 1);
    t_check();
    cr_assert_eq(t_bank_int("link_count"), 0);
    cr_assert_eq(t_units_get_links(ids, 8, &got), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(got.nlinks[i], 0, "holder %d still shows a link to a deleted unit", i);

    /* The same id stored again: the holders' links count again. */
    t_unit(&again[0], a, "The old fact, again.", EG_FACT_WORLD, NULL, 0, 0.1f);
    b = t_batch("doc-old", again, 1, NULL, 0);
    cr_assert_eq(t_write(&b, &w), 0);
    t_check();
    cr_assert_eq(t_bank_int("link_count"), LATER);

    /* Holders go: :lr follows and empties. */
    cr_assert_eq(t_units_delete(ids, LATER, &n), 0);
    cr_assert_eq(n, LATER);
    t_check();
    cr_assert_eq(t_bank_int("link_count"), 0);
    cr_assert_eq(t_cmd("EXISTS %s", t_key("lr"))->integer, 0);
    t_env_stop();
}
