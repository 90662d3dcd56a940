/* Memories (engram/memories.h), part 1: the pure helpers (tag patterns, time buckets) without
 * Redis; then, against a real Redis and the real index (memories_fixture.h), the listing (order,
 * paging, every filter), one memory, and curated edits (re-embedding, entities, invalidation and
 * revert, observations refused, two concurrent edits both applied through the compare-and-set
 * retry), what edits and deletes do to observations and links, and an unknown bank. Part 2 (graphs,
 * statistics, time series, tags, entities, documents, chunks) is test_memories_views.c. */
#include "memories_fixture.h"

/* ---- pure helpers ---------------------------------------------------------------------------- */

Test(memories_pure, tag_patterns)
{
    cr_assert(eg_memories_tag_match("user:*", "user:alice"));
    cr_assert(eg_memories_tag_match("USER:*", "user:Alice"));
    cr_assert(eg_memories_tag_match("*-fred", "role-fred"));
    cr_assert(eg_memories_tag_match("tag*-2", "tag-x-y-2"));
    cr_assert(eg_memories_tag_match("*", "anything"));
    cr_assert(eg_memories_tag_match("a**b", "ab"));
    cr_assert(eg_memories_tag_match("team", "TEAM"));
    cr_assert_not(eg_memories_tag_match("team", "teams"), "without '*' the whole tag matches");
    cr_assert_not(eg_memories_tag_match("user:*", "admin:user:x"));
    cr_assert_not(eg_memories_tag_match("*-fred", "fred-x"));
    cr_assert_not(eg_memories_tag_match("a*b*c", "acb"));
}

Test(memories_pure, time_buckets)
{
    /* 2024-05-01T13:47:30.5Z */
    int64_t now = eg_text_days_from_civil(2024, 5, 1) * EG_TEXT_US_PER_DAY +
                  (13 * 3600 + 47 * 60 + 30) * EG_TEXT_US_PER_SEC + 500000;
    int64_t first, width;
    size_t n;
    eg_ts_period_t p;
    eg_ts_field_t f;

    cr_assert_str_eq(eg_ts_buckets(EG_TS_7D, now, &first, &width, &n), "day");
    cr_assert_eq(n, 7);
    cr_assert_eq(width, EG_TEXT_US_PER_DAY);
    cr_assert_eq(first, eg_text_days_from_civil(2024, 4, 25) * EG_TEXT_US_PER_DAY);
    cr_assert(first + 6 * width <= now && now < first + 7 * width, "the last bucket holds now");
    cr_assert_str_eq(eg_ts_buckets(EG_TS_1D, now, &first, &width, &n), "hour");
    cr_assert_eq(n, 24);
    cr_assert_eq(first + 23 * width, now - (47 * 60 + 30) * EG_TEXT_US_PER_SEC - 500000);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_1H, now, &first, &width, &n), "minute");
    cr_assert_eq(n, 60);
    cr_assert_eq(first % (60 * EG_TEXT_US_PER_SEC), 0);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_12H, now, &first, &width, &n), "hour");
    cr_assert_eq(n, 12);
    cr_assert_str_eq(eg_ts_buckets(EG_TS_90D, now, &first, &width, &n), "day");
    cr_assert_eq(n, 90);
    cr_assert_eq(eg_ts_period_parse("30d", &p), 0);
    cr_assert_eq(p, EG_TS_30D);
    cr_assert_str_eq(eg_ts_period_name(p), "30d");
    cr_assert_eq(eg_ts_period_parse("2w", &p), EG_EINVAL);
    cr_assert_eq(eg_ts_field_parse("occurred_start", &f), 0);
    cr_assert_eq(f, EG_TS_OCCURRED);
    cr_assert_eq(eg_ts_field_parse("updated_at", &f), EG_EINVAL);
    cr_assert_str_eq(eg_memgraph_type_name(EG_MEMGRAPH_ENTITY), "entity");
    cr_assert_str_eq(eg_memgraph_type_name(EG_LINK_CAUSED_BY), "caused_by");
}

TestSuite(memories, .init = setup, .fini = teardown, .timeout = 60);

Test(memories, list_order_paging_and_filters)
{
    lst_t l = list((eg_memories_query_t){0});

    cr_assert_str_eq(letters(l), "CABD", "mentioned_at descending, the undated last");
    cr_assert_eq(l.total, 4);
    cr_assert_str_eq(l.names[2], "Alice,Bob,Paris");
    l = list((eg_memories_query_t){.limit = 2, .offset = 1});
    cr_assert_str_eq(letters(l), "AB");
    cr_assert_eq(l.total, 4);
    l = list((eg_memories_query_t){.limit = 5, .offset = 9});
    cr_assert_eq(l.n, 0);
    cr_assert_eq(l.total, 4);

    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.types = 1u << EG_FACT_WORLD}))),
                     "CA");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.none = true}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "TEA"}))), "AD");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "bob hiking"}))), "B",
                     "every word, stemmed");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "the"}))), "CABD",
                     "stopwords only filter nothing");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "zebra"}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.document_id = "d2"}))), "D");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.document_id = "nope"}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.entity_id = E.bob}))), "CB");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.entity_id = uuid()}))), "");
    cr_assert_str_eq(
        letters((l = list((eg_memories_query_t){.consolidation = EG_MEM_CONSOLIDATION_PENDING}))),
        "CAB");
    cr_assert_str_eq(
        letters((l = list((eg_memories_query_t){.consolidation = EG_MEM_CONSOLIDATION_DONE}))), "");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){
                                  .chunk_id = eg_mem_chunk_id(&E.a, E.bank, "d1", 0)}))),
                     "AB");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.chunk_id = "other_d1_0"}))), "");
}

Test(memories, list_tag_filters)
{
    const char *u1[] = {"user:1"}, *both[] = {"user:1", "team"}, *none[] = {"nobody"};
    lst_t l;

    l = list((eg_memories_query_t){.tags = u1, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_str_eq(letters(l), "A");
    l = list((eg_memories_query_t){.tags = u1, .ntags = 1, .tags_match = EG_TAGS_ANY});
    cr_assert_str_eq(letters(l), "CAD", "any includes the untagged");
    l = list((eg_memories_query_t){.tags = both, .ntags = 2, .tags_match = EG_TAGS_ALL_STRICT});
    cr_assert_str_eq(letters(l), "A");
    l = list((eg_memories_query_t){.tags = none, .ntags = 1, .tags_match = EG_TAGS_ANY_STRICT});
    cr_assert_str_eq(letters(l), "");
    l = list((eg_memories_query_t){.tags_match = EG_TAGS_EXACT});
    cr_assert_str_eq(letters(l), "CD", "exact with no tags: the untagged");
}

/* ---- one memory and curated edits ------------------------------------------------------------ */

typedef struct {
    int done, err;
    char why[320];
    const char *id, *text, *reason;
    eg_fact_type_t type;
    bool invalidated;
    int64_t edited, invalidated_at, occurred_start;
    size_t nsources;
    const char *names;
} one_t;

static void keep(one_t *o, const eg_memory_t *m, size_t nsources)
{
    eg_buf_t b = EG_BUF_INIT;

    o->id = eg_arena_strdup(&E.a, m->unit->id);
    o->text = eg_arena_strdup(&E.a, m->unit->text);
    o->reason = eg_arena_strdup(&E.a, m->unit->invalidation_reason);
    o->type = m->unit->type;
    o->invalidated = m->unit->invalidated;
    o->edited = m->unit->edited_at;
    o->invalidated_at = m->unit->invalidated_at;
    o->occurred_start = m->unit->occurred_start;
    o->nsources = nsources;
    for (size_t k = 0; k < m->nentity_names; k++)
        eg_buf_printf(&b, "%s%s", k ? "," : "", m->entity_names[k]);
    eg_buf_puts(&b, "");
    o->names = eg_arena_strdup(&E.a, b.data);
    eg_buf_free(&b);
}

static void on_get(void *udata, int err, const eg_memory_t *m, const eg_memory_t *sources,
                   size_t nsources)
{
    one_t *o = udata;

    o->err = err;
    if (err == 0) {
        keep(o, m, nsources);
        if (nsources)
            cr_assert_str_eq(sources[0].unit->id, E.A);
    }
    o->done = 1;
}

static one_t get(const char *id)
{
    one_t o = {0};

    cr_assert_eq(eg_memories_get(E.ws, E.bank, id, on_get, &o), 0);
    wait_for(&o.done);
    return o;
}

static void on_patch(void *udata, int err, const char *why, const eg_memory_t *m)
{
    one_t *o = udata;

    o->err = err;
    snprintf(o->why, sizeof(o->why), "%s", why ? why : "");
    if (err == 0)
        keep(o, m, 0);
    o->done++;
}

static one_t patch(const char *id, eg_memory_patch_t p)
{
    one_t o = {0};

    cr_assert_eq(eg_memories_patch(E.ws, E.bank, id, &p, on_patch, &o), 0);
    wait_for(&o.done);
    return o;
}

Test(memories, get_one)
{
    one_t o = get(E.B);

    cr_assert_eq(o.err, 0);
    cr_assert_str_eq(o.names, "Alice,Bob,Paris");
    cr_assert_eq(o.type, EG_FACT_EXPERIENCE);
    o = get(E.D);
    cr_assert_eq(o.err, 0);
    cr_assert_eq(o.nsources, 1, "an observation comes with its source facts");
    cr_assert_eq(get(uuid()).err, EG_ENOTFOUND);
}

Test(memories, patch_edits_and_curation)
{
    const char *paris[] = {"  PARIS!! ", "paris"}, *ghost[] = {"Nobody Known"};
    const char *near[] = {"Nobody Knowns", "paris"};
    one_t o;
    lst_t l;

    o = patch(E.C, (eg_memory_patch_t){.text = "Bob repairs the laser printer.",
                                       .set_occurred_start = true,
                                       .occurred_start = E.m,
                                       .set_type = true,
                                       .type = EG_FACT_EXPERIENCE});
    cr_assert_eq(o.err, 0, "%s %s", eg_strerror(o.err), o.why);
    cr_assert_str_eq(o.text, "Bob repairs the laser printer.");
    cr_assert_eq(o.type, EG_FACT_EXPERIENCE);
    cr_assert_eq(o.occurred_start, E.m);
    cr_assert_neq(o.edited, EG_MEM_TIME_NONE);
    /* The new text is what the keyword index now finds. */
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "laser"}))), "C");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.text = "fixes"}))), "");

    o = patch(E.C, (eg_memory_patch_t){.set_entities = true, .entities = paris, .nentities = 2});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "Paris", "folded names, duplicates once");
    o = patch(E.C, (eg_memory_patch_t){.set_entities = true, .entities = ghost, .nentities = 1});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "Nobody Known", "a name the bank does not have is a new entity");
    /* A near spelling resolves to that entity as retain would; literal names do not. */
    o = patch(E.B, (eg_memory_patch_t){.set_entities = true, .entities = near, .nentities = 2});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "Nobody Known,Paris");
    o = patch(
        E.B, (eg_memory_patch_t){
                 .set_entities = true, .entities = near, .nentities = 1, .literal_entities = true});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "Nobody Knowns");
    o = patch(E.B, (eg_memory_patch_t){.set_entities = true, .entities = near + 1, .nentities = 1});
    cr_assert_eq(o.err, 0, "%s", o.why);
    cr_assert_str_eq(o.names, "paris", "Paris went with its last mention: a new entity");
    o = patch(E.B, (eg_memory_patch_t){.set_entities = true, .entities = near, .nentities = 1});
    cr_assert_str_eq(o.names, "Nobody Known", "Nobody Knowns went with its last mention");

    o = patch(E.D, (eg_memory_patch_t){.context = "x"});
    cr_assert_eq(o.err, EG_EINVAL);
    cr_assert(strstr(o.why, "only world/experience facts can be curated") != NULL, "%s", o.why);

    o = patch(E.A, (eg_memory_patch_t){.set_state = true, .invalidated = true, .reason = "old"});
    cr_assert_eq(o.err, 0);
    cr_assert(o.invalidated);
    cr_assert_str_eq(o.reason, "old");
    cr_assert_neq(o.invalidated_at, EG_MEM_TIME_NONE);
    cr_assert_eq(o.edited, EG_MEM_TIME_NONE, "a state change is no content edit");
    /* Invalidation prunes the observations made from the fact: D, from A alone, is gone. */
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){0}))), "CB");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.state = EG_MEM_STATE_INVALIDATED}))),
                     "A");
    o = patch(E.A, (eg_memory_patch_t){.set_state = true, .invalidated = false});
    cr_assert_eq(o.err, 0);
    cr_assert_not(o.invalidated);
    cr_assert_null(o.reason);
    cr_assert_eq(o.invalidated_at, EG_MEM_TIME_NONE);

    cr_assert_eq(patch(uuid(), (eg_memory_patch_t){.context = "x"}).err, EG_ENOTFOUND);
    cr_assert_eq(
        eg_memories_patch(E.ws, E.bank, E.A, &(eg_memory_patch_t){.text = ""}, on_patch, &o),
        EG_EINVAL);
}

Test(memories, concurrent_edits_both_land)
{
    one_t x = {0}, y = {0};
    eg_memory_patch_t px = {.context = "zanzibar"};
    eg_memory_patch_t py = {.set_state = true, .invalidated = true, .reason = "from y"};
    lst_t l;

    /* Both read the same updated_at; the second write conflicts and is redone on a fresh read. */
    cr_assert_eq(eg_memories_patch(E.ws, E.bank, E.B, &px, on_patch, &x), 0);
    cr_assert_eq(eg_memories_patch(E.ws, E.bank, E.B, &py, on_patch, &y), 0);
    wait_for(&x.done);
    wait_for(&y.done);
    cr_assert_eq(x.err, 0, "%s", eg_strerror(x.err));
    cr_assert_eq(y.err, 0, "%s", eg_strerror(y.err));
    l = list((eg_memories_query_t){.state = EG_MEM_STATE_INVALIDATED, .text = "zanzibar"});
    cr_assert_str_eq(letters(l), "B", "the context of one edit and the state of the other");
}

/* ---- edits and deletes against consolidation ------------------------------------------------ */

typedef struct {
    int done, err;
    bool exists;
    int proof;
    size_t nlinks;
    int64_t updated, consolidated;
    char src[16]; /* source ids as letters */
} raw_t;

static const char *XF, *XG; /* the extra facts of edits_and_deletes_detach */

static char letter(const char *id)
{
    return strcmp(id, E.A) == 0        ? 'A'
           : strcmp(id, E.B) == 0      ? 'B'
           : strcmp(id, E.C) == 0      ? 'C'
           : XF && strcmp(id, XF) == 0 ? 'F'
           : XG && strcmp(id, XG) == 0 ? 'G'
                                       : '?';
}

static void on_raw(void *udata, int err, const eg_mem_unit_t *const *units,
                   const eg_mem_link_t *const *links, const size_t *nlinks, size_t n)
{
    raw_t *r = udata;

    (void)links;
    r->err = err;
    if (err == 0 && n == 1 && units[0] != NULL) {
        const eg_mem_unit_t *u = units[0];

        r->exists = true;
        r->proof = u->proof_count;
        r->nlinks = nlinks[0];
        r->updated = u->updated_at;
        r->consolidated = u->consolidated_at;
        for (size_t k = 0; k < u->nsources && k < sizeof(r->src) - 1; k++)
            r->src[k] = letter(u->source_ids[k]);
    }
    r->done = 1;
}

/* A unit's stored record and links, straight from the store. */
static raw_t raw(const char *id)
{
    raw_t r = {0};
    const char *ids[1] = {id};

    cr_assert_eq(eg_mem_units_get_links(E.ws, E.bank, ids, 1, on_raw, &r), 0);
    wait_for(&r.done);
    cr_assert_eq(r.err, 0);
    return r;
}

typedef struct {
    int done;
    int64_t n;
} count_t;

static void on_count(void *udata, int err, int64_t n)
{
    count_t *c = udata;

    cr_assert_eq(err, 0, "%s", eg_strerror(err));
    c->n = n;
    c->done = 1;
}

static int64_t delete_unit(const char *id)
{
    count_t c = {0};
    const char *ids[1] = {id};

    cr_assert_eq(eg_mem_units_delete(E.ws, E.bank, ids, 1, on_count, &c), 0);
    wait_for(&c.done);
    return c.n;
}

typedef struct {
    int done;
    int64_t facts, links;
} counters_t;

static void on_bank(void *udata, int err, const eg_bank_t *b, bool created)
{
    counters_t *c = udata;

    (void)created;
    cr_assert_eq(err, 0, "%s", eg_strerror(err));
    c->facts = b->fact_count;
    c->links = b->link_count;
    c->done = 1;
}

/* The bank record's counters, which the scripts keep. */
static counters_t counters(void)
{
    counters_t c = {0};

    cr_assert_eq(eg_bank_get(E.ws, E.bank, on_bank, &c), 0);
    wait_for(&c.done);
    return c;
}

/* A text edit detaches the fact (links dropped, removed from observations' sources, pending
 * again); deleting consolidated facts removes them from the sources too, and an observation left
 * with none goes. d3: F and G (world, consolidated), O (observation from A, F, G), P (from G). */
Test(memories, edits_and_deletes_detach)
{
    eg_mem_new_unit_t *u = eg_arena_calloc(&E.a, 4 * sizeof(*u));
    const char *O = uuid(), *P = uuid();
    raw_t r, before;
    one_t o;
    lst_t l;

    XF = uuid();
    XG = uuid();
    unit(&u[0], XF, "Carol plays chess.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now, "d3", 0);
    unit(&u[1], XG, "Carol plays chess on Sundays.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now,
         "d3", 0);
    u[0].unit.consolidated_at = u[1].unit.consolidated_at = E.now;
    unit(&u[2], O, "Carol plays chess.", EG_FACT_OBSERVATION, NULL, 0, NULL, 0, E.m, E.now, "d3",
         -1);
    u[2].unit.source_ids = strs(3, E.A, XF, XG);
    u[2].unit.nsources = 3;
    u[2].unit.proof_count = 3;
    unit(&u[3], P, "Carol likes Sundays.", EG_FACT_OBSERVATION, NULL, 0, NULL, 0, E.m, E.now, "d3",
         -1);
    u[3].unit.source_ids = strs(1, XG);
    u[3].unit.nsources = 1;
    write_doc("d3", u, 4, NULL, 0, E.now, NULL, 0);
    cr_assert_eq(raw(E.B).nlinks, 1, "B holds the semantic link from A");
    before = raw(O);
    cr_assert_str_eq(before.src, "AFG");
    cr_assert_eq(counters().facts, 8);
    cr_assert_eq(counters().links, 2, "A semantic B, A causes C");

    o = patch(E.A, (eg_memory_patch_t){.text = "Alice likes jasmine tea."});
    cr_assert_eq(o.err, 0, "%s", o.why);
    r = raw(E.A);
    cr_assert_eq(r.nlinks, 0, "a new text drops the fact's links");
    cr_assert(r.consolidated <= 0, "and makes it pending");
    cr_assert_eq(raw(E.B).nlinks, 0, "on both sides");
    cr_assert_eq(raw(E.C).nlinks, 0);
    r = raw(O);
    cr_assert_str_eq(r.src, "FG", "the observation forgets the edited fact");
    cr_assert_eq(r.proof, 2);
    cr_assert_gt(r.updated, before.updated, "and is rewritten (a run's stale update conflicts)");
    cr_assert_not(raw(E.D).exists, "D, made from A alone, is gone");
    cr_assert_eq(counters().facts, 7);
    cr_assert_eq(counters().links, 0);
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.types = 1u << EG_FACT_OBSERVATION}))),
                     "??", "the index follows: O and P remain");

    cr_assert_eq(delete_unit(XF), 1);
    r = raw(O);
    cr_assert_str_eq(r.src, "G", "a deleted fact leaves the observation's sources");
    cr_assert_eq(r.proof, 1);
    cr_assert(raw(P).exists);
    cr_assert_eq(delete_unit(XG), 1);
    cr_assert_not(raw(O).exists, "an observation left with no source is deleted");
    cr_assert_not(raw(P).exists);
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.types = 1u << EG_FACT_OBSERVATION}))),
                     "");
    cr_assert_eq(counters().facts, 3,
                 "A, B, C: the deleted facts and observations are counted off");
    XF = XG = NULL;
}

/* A retain that replaces a document and a clear by type remove the facts they delete from the
 * observations too. d3: F and G (consolidated); d4: O (from A, F, G). */
Test(memories, replace_and_clear_detach)
{
    eg_mem_new_unit_t *u = eg_arena_calloc(&E.a, 2 * sizeof(*u));
    const char *O = uuid(), *H = uuid();
    count_t c = {0};
    raw_t r;
    lst_t l;

    XF = uuid();
    XG = uuid();
    unit(&u[0], XF, "Carol plays chess.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now, "d3", 0);
    unit(&u[1], XG, "Carol plays chess on Sundays.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now,
         "d3", 0);
    u[0].unit.consolidated_at = u[1].unit.consolidated_at = E.now;
    write_doc("d3", u, 2, NULL, 0, E.now, NULL, 0);
    u = eg_arena_calloc(&E.a, 1 * sizeof(*u));
    unit(&u[0], O, "Carol plays chess.", EG_FACT_OBSERVATION, NULL, 0, NULL, 0, E.m, E.now, "d4",
         -1);
    u[0].unit.source_ids = strs(3, E.A, XF, XG);
    u[0].unit.nsources = 3;
    u[0].unit.proof_count = 3;
    write_doc("d4", u, 1, NULL, 0, E.now, NULL, 0);
    cr_assert_str_eq(raw(O).src, "AFG");

    /* The same document again, with another fact: F and G go, and with them from O. */
    u = eg_arena_calloc(&E.a, 1 * sizeof(*u));
    unit(&u[0], H, "Carol plays go.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now, "d3", 0);
    write_doc("d3", u, 1, NULL, 0, E.now, NULL, 0);
    r = raw(O);
    cr_assert_str_eq(r.src, "A", "a replaced document's facts leave the observation");
    cr_assert_eq(r.proof, 1);
    cr_assert_eq(counters().facts, 6, "A B C D (d1, d2), H (d3), O (d4)");

    /* A is the last source of O and of D (pending in the fixture, but found through the fact ->
     * observations index all the same): a clear of the world facts deletes both. */
    cr_assert_eq(eg_mem_clear(E.ws, E.bank, 1u << EG_FACT_WORLD, on_count, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.n, 3, "A, C, H");
    cr_assert_not(raw(O).exists);
    cr_assert_not(raw(E.D).exists);

    /* Consolidated, it is. */
    XF = uuid();
    u = eg_arena_calloc(&E.a, 1 * sizeof(*u));
    unit(&u[0], XF, "Carol plays chess.", EG_FACT_WORLD, NULL, 0, NULL, 0, E.m, E.now, "d5", 0);
    u[0].unit.consolidated_at = E.now;
    write_doc("d5", u, 1, NULL, 0, E.now, NULL, 0);
    u = eg_arena_calloc(&E.a, 1 * sizeof(*u));
    unit(&u[0], O, "Carol plays chess.", EG_FACT_OBSERVATION, NULL, 0, NULL, 0, E.m, E.now, "d4",
         -1);
    u[0].unit.source_ids = strs(1, XF);
    u[0].unit.nsources = 1;
    write_doc("d4", u, 1, NULL, 0, E.now, NULL, 0);
    cr_assert_str_eq(raw(O).src, "F");
    c.done = 0;
    cr_assert_eq(eg_mem_clear(E.ws, E.bank, 1u << EG_FACT_WORLD, on_count, &c), 0);
    wait_for(&c.done);
    cr_assert_eq(c.n, 1);
    cr_assert_not(raw(O).exists, "a clear by type deletes the observations it leaves sourceless");
    cr_assert_str_eq(letters((l = list((eg_memories_query_t){.types = 1u << EG_FACT_OBSERVATION}))),
                     "", "the index reloads after the clear");
    cr_assert_eq(counters().facts, 1, "B");
    XF = XG = NULL;
}

Test(memories, unknown_bank_reads_empty)
{
    lst_t l = {0};
    eg_memories_query_t q = {.limit = 10};

    cr_assert_eq(eg_memories_list(E.ws, "no such bank", &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.err, 0);
    cr_assert_eq(l.total, 0);
    memset(&l, 0, sizeof(l));
    cr_assert_eq(eg_memories_list("other-ws", E.bank, &q, on_list, &l), 0);
    wait_for(&l.done);
    cr_assert_eq(l.total, 0, "another workspace's bank of the same name is another bank");
}
