/* Recall's record decoder (src/memory/recall_record.c) against the store's own parser: every
 * record, as eg_mem_unit_json writes it or hand-written with escapes, nulls, unknown members and
 * odd spacing, must decode to what eg_mem_unit_parse gives, and what the parser refuses the
 * decoder refuses too. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/mstore.h"
#include "memory/recall_int.h"

static void same_strv(const char *const *a, size_t na, const char *const *b, size_t nb,
                      const char *what)
{
    cr_assert_eq(na, nb, "%s: %zu vs %zu entries", what, na, nb);
    for (size_t i = 0; i < na; i++)
        cr_assert_str_eq(a[i], b[i], "%s[%zu]", what, i);
}

static void same_str(const char *a, const char *b, const char *what)
{
    if (!a || !b)
        cr_assert(a == b, "%s: %s vs %s", what, a ? a : "NULL", b ? b : "NULL");
    else
        cr_assert_str_eq(a, b, "%s", what);
}

/* An empty metadata object and none render the same ({}). */
static bool meta_empty(const cJSON *m)
{
    return !m || (cJSON_IsObject(m) && !m->child);
}

static void same_unit(const eg_mem_unit_t *a, const eg_mem_unit_t *b)
{
    same_str(a->id, b->id, "id");
    same_str(a->text, b->text, "text");
    same_str(a->context, b->context, "context");
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->occurred_start, b->occurred_start);
    cr_assert_eq(a->occurred_end, b->occurred_end);
    cr_assert_eq(a->mentioned_at, b->mentioned_at);
    cr_assert_eq(a->created_at, b->created_at);
    cr_assert_eq(a->updated_at, b->updated_at);
    same_strv(a->tags, a->ntags, b->tags, b->ntags, "tags");
    same_strv(a->entity_ids, a->nentities, b->entity_ids, b->nentities, "entity_ids");
    same_str(a->document_id, b->document_id, "document_id");
    same_str(a->chunk_id, b->chunk_id, "chunk_id");
    cr_assert_eq(a->invalidated, b->invalidated);
    same_str(a->invalidation_reason, b->invalidation_reason, "invalidation_reason");
    cr_assert_eq(a->invalidated_at, b->invalidated_at);
    cr_assert_eq(a->edited_at, b->edited_at);
    cr_assert_eq(a->proof_count, b->proof_count);
    same_strv(a->source_ids, a->nsources, b->source_ids, b->nsources, "source_ids");
    if (meta_empty(a->metadata) || meta_empty(b->metadata))
        cr_assert(meta_empty(a->metadata) && meta_empty(b->metadata), "metadata");
    else
        cr_assert(cJSON_Compare(a->metadata, b->metadata, true), "metadata");
}

/* Decode json both ways and compare; returns the decoder's code. */
static int both(const char *json)
{
    eg_arena_t a;
    eg_mem_unit_t want, got;
    int rw, rg;

    eg_arena_init(&a);
    rw = eg_mem_unit_parse(&a, json, strlen(json), &want);
    rg = eg__recall_unit_decode(&a, json, strlen(json), &got);
    cr_assert_eq(rg, rw, "decoder %d, parser %d on %s", rg, rw, json);
    if (rw == 0)
        same_unit(&got, &want);
    eg_arena_destroy(&a);
    return rg;
}

Test(recall_record, round_trips_what_the_store_writes)
{
    static const char *const tags[] = {"user:alice", "team \"red\"", "naïve"};
    static const char *const ents[] = {"11111111-1111-4111-8111-111111111111",
                                       "22222222-2222-4222-8222-222222222222"};
    static const char *const srcs[] = {"33333333-3333-4333-8333-333333333333"};
    const char *texts[] = {
        "Alice moved to Lisbon on 2023-05-04.",
        "She said \"hi\" \\ then left.\nNew line\ttab \x01 control",
        "Unicode: café, 日本語, emoji 😀, and a slash /",
        "",
    };
    cJSON *meta = cJSON_CreateObject();

    cJSON_AddStringToObject(meta, "source", "slack \"#general\"");
    cJSON_AddStringToObject(meta, "lang", "fr");
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        for (int variant = 0; variant < 4; variant++) {
            eg_mem_unit_t u = {
                .id = "9cd6dabf-9c0d-4346-9a50-b5858ccc5356",
                .text = texts[t],
                .context = variant & 1 ? "from a chat about \"work\"" : "",
                .type = (eg_fact_type_t)(variant % EG_FACT_NTYPES),
                .occurred_start = variant & 2 ? INT64_C(1610755200330000) : EG_MEM_TIME_NONE,
                .occurred_end = variant & 2 ? INT64_C(1610841600329999) : EG_MEM_TIME_NONE,
                .mentioned_at = variant == 3 ? EG_MEM_TIME_NONE : INT64_C(1610798400330000),
                .created_at = INT64_C(1795436909021675),
                .updated_at = INT64_C(1795436909021675),
                .tags = variant & 1 ? tags : NULL,
                .ntags = variant & 1 ? 3 : 0,
                .metadata = variant & 2 ? meta : NULL,
                .entity_ids = ents,
                .nentities = (size_t)(variant % 3),
                .document_id = variant ? "doc \"1\"" : NULL,
                .chunk_id = variant ? "bank_doc_3" : NULL,
                .invalidated = variant == 2,
                .invalidation_reason = variant == 2 ? "superseded" : NULL,
                .invalidated_at = variant == 2 ? INT64_C(1795436909021999) : EG_MEM_TIME_NONE,
                .edited_at = EG_MEM_TIME_NONE,
                .proof_count = variant + 1,
                .source_ids = variant == 1 ? srcs : NULL,
                .nsources = variant == 1 ? 1 : 0,
            };
            cJSON *j = eg_mem_unit_json(&u);
            char *s = cJSON_PrintUnformatted(j);
            eg_arena_t a;
            eg_mem_unit_t got;

            cr_assert_eq(both(s), 0, "%s", s);
            eg_arena_init(&a);
            cr_assert_eq(eg__recall_unit_decode(&a, s, strlen(s), &got), 0);
            same_unit(&got, &u);
            eg_arena_destroy(&a);
            cJSON_free(s);
            cJSON_Delete(j);
        }
    }
    cJSON_Delete(meta);
}

Test(recall_record, hand_written_records_decode_like_the_parser)
{
    /* Spacing, member order, unknown members of every kind, escapes (\u, surrogate pairs, \/). */
    cr_assert_eq(both(" { \"text\" : \"caf\\u00e9 \\ud83d\\ude00 a\\/b\" , \"fact_type\":\"world\","
                      " \"extra\": {\"a\": [1, {\"b\": \"}\"}], \"c\": null}, \"n\": -1.5e3,"
                      " \"flag\": true, \"id\": \"x\", \"tags\": [ \"a\" , \"b\" ] ,"
                      " \"metadata\": { } , \"proof_count\": 3 }\n"),
                 0);
    /* Nulls everywhere a value may be absent. */
    cr_assert_eq(both("{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"experience\",\"context\":null,"
                      "\"occurred_start\":null,\"tags\":null,\"entity_ids\":null,"
                      "\"source_ids\":null,\"metadata\":null,\"state\":null,"
                      "\"document_id\":null,\"proof_count\":null}"),
                 0);
    /* Shapes the decoder leaves to the parser: a whole-number float, a big integer. */
    cr_assert_eq(both("{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\","
                      "\"mentioned_at\":1.0e6}"),
                 0);
    cr_assert_eq(both("{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\","
                      "\"mentioned_at\":1234567890123456789}"),
                 0);
    cr_assert_eq(both("{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"observation\","
                      "\"state\":\"invalidated\",\"invalidation_reason\":\"old\"}"),
                 0);
}

Test(recall_record, refuses_what_the_parser_refuses)
{
    const char *bad[] = {
        "",
        "[]",
        "{",
        "{\"id\":\"x\",\"text\":\"t\"}",                           /* no type */
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"opinion\"}", /* unknown type */
        "{\"id\":\"x\",\"text\":5,\"fact_type\":\"world\"}",       /* text not a string */
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"tags\":[1]}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"mentioned_at\":1.5}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"mentioned_at\":\"1\"}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"state\":\"gone\"}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"proof_count\":-1}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"metadata\":[]}",
        "{\"id\":\"x\",\"text\":\"\\ud83d\",\"fact_type\":\"world\"}", /* lone surrogate */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(both(bad[i]), EG_EINVAL, "%s", bad[i]);
}
