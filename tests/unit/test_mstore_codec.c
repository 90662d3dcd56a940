/* Memory store codecs (src/memory/mstore_codec.c): record JSON round trips, malformed records,
 * link lists, chunk ids, folded entity names and type names. No Redis. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/mstore.h"

static char *print(cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);

    cJSON_Delete(j);
    cr_assert_not_null(s);
    return s;
}

/* ---- names ---------------------------------------------------------------------------------- */

Test(mstore_codec, fact_types)
{
    eg_fact_type_t t;

    for (int i = 0; i < EG_FACT_NTYPES; i++) {
        cr_assert_eq(eg_fact_type_parse(eg_fact_type_name((eg_fact_type_t)i), &t), 0);
        cr_assert_eq((int)t, i);
    }
    cr_assert_str_eq(eg_fact_type_name(EG_FACT_WORLD), "world");
    cr_assert_str_eq(eg_fact_type_name(EG_FACT_EXPERIENCE), "experience");
    cr_assert_str_eq(eg_fact_type_name(EG_FACT_OBSERVATION), "observation");
    cr_assert_eq(eg_fact_type_parse("opinion", &t), EG_EINVAL);
    cr_assert_eq(eg_fact_type_parse("World", &t), EG_EINVAL);
    cr_assert_eq(eg_fact_type_parse(NULL, &t), EG_EINVAL);
    cr_assert_str_eq(eg_fact_type_name((eg_fact_type_t)7), "unknown");
}

Test(mstore_codec, link_types)
{
    const char *names[] = {"temporal", "semantic", "causes", "caused_by", "enables", "prevents"};

    for (int i = 0; i < EG_LINK_NTYPES; i++)
        cr_assert_str_eq(eg_link_type_name((eg_link_type_t)i), names[i]);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_CAUSES), EG_LINK_CAUSED_BY);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_CAUSED_BY), EG_LINK_CAUSES);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_TEMPORAL), EG_LINK_TEMPORAL);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_SEMANTIC), EG_LINK_SEMANTIC);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_ENABLES), EG_LINK_ENABLES);
    cr_assert_eq(eg_link_type_reverse(EG_LINK_PREVENTS), EG_LINK_PREVENTS);
}

/* ---- units ---------------------------------------------------------------------------------- */

Test(mstore_codec, unit_round_trip)
{
    static const char *tags[] = {"user:1", "t\"q"};
    static const char *ents[] = {"0b8a4c1e-2f4d-4a8e-9c3b-1d2e3f4a5b6c",
                                 "1c9b5d2f-3a5e-4b9f-8d4c-2e3f4a5b6c7d"};
    static const char *srcs[] = {"2d0c6e3a-4b6f-4c0a-9e5d-3f4a5b6c7d8e"};
    cJSON *meta = cJSON_Parse("{\"k\":\"v\",\"fact_type\":\"world\"}");
    eg_mem_unit_t u = {
        .id = "9f1e2d3c-4b5a-4697-8877-665544332211",
        .text = "Alice moved to Paris on 2024-05-01.\nShe \"loves\" it",
        .context = "chat",
        .type = EG_FACT_EXPERIENCE,
        .occurred_start = INT64_C(1714521600000000),
        .occurred_end = INT64_C(1714607999999999),
        .mentioned_at = INT64_C(1714600000123456),
        .created_at = INT64_C(1714600001000001),
        .updated_at = INT64_C(1714600002000002),
        .tags = tags,
        .ntags = 2,
        .metadata = meta,
        .entity_ids = ents,
        .nentities = 2,
        .document_id = "doc, with comma",
        .chunk_id = "b_doc, with comma_0",
        .invalidated = true,
        .invalidation_reason = "wrong",
        .invalidated_at = INT64_C(1714600003000003),
        .edited_at = EG_MEM_TIME_NONE,
        .proof_count = 3,
        .source_ids = srcs,
        .nsources = 1,
    };
    eg_arena_t a;
    eg_mem_unit_t b;
    char *s = print(eg_mem_unit_json(&u));

    eg_arena_init(&a);
    /* times are integer literals, and fact_type comes right after id */
    cr_assert_not_null(strstr(s, "\"occurred_end\":1714607999999999"), "%s", s);
    cr_assert_not_null(strstr(s, "\"edited_at\":null"), "%s", s);
    cr_assert_eq(strncmp(s, "{\"id\":\"9f1e2d3c-4b5a-4697-8877-665544332211\",\"fact_type\":", 56),
                 0, "%s", s);
    cr_assert_eq(eg_mem_unit_parse(&a, s, strlen(s), &b), 0);
    cr_assert_str_eq(b.id, u.id);
    cr_assert_str_eq(b.text, u.text);
    cr_assert_str_eq(b.context, "chat");
    cr_assert_eq(b.type, EG_FACT_EXPERIENCE);
    cr_assert_eq(b.occurred_start, u.occurred_start);
    cr_assert_eq(b.occurred_end, u.occurred_end);
    cr_assert_eq(b.mentioned_at, u.mentioned_at);
    cr_assert_eq(b.created_at, u.created_at);
    cr_assert_eq(b.updated_at, u.updated_at);
    cr_assert_eq(b.ntags, 2);
    cr_assert_str_eq(b.tags[0], "user:1");
    cr_assert_str_eq(b.tags[1], "t\"q");
    cr_assert_eq(b.nentities, 2);
    cr_assert_str_eq(b.entity_ids[1], ents[1]);
    cr_assert_str_eq(b.document_id, "doc, with comma");
    cr_assert_str_eq(b.chunk_id, "b_doc, with comma_0");
    cr_assert(b.invalidated);
    cr_assert_str_eq(b.invalidation_reason, "wrong");
    cr_assert_eq(b.invalidated_at, u.invalidated_at);
    cr_assert_eq(b.edited_at, EG_MEM_TIME_NONE);
    cr_assert_eq(b.proof_count, 3);
    cr_assert_eq(b.nsources, 1);
    cr_assert_str_eq(b.source_ids[0], srcs[0]);
    cr_assert(cJSON_Compare(b.metadata, meta, true));
    /* and the same bytes again */
    {
        char *s2 = print(eg_mem_unit_json(&b));
        cr_assert_str_eq(s2, s);
        free(s2);
    }
    free(s);
    cJSON_Delete(meta);
    eg_arena_destroy(&a);
}

Test(mstore_codec, unit_minimal_and_none_times)
{
    eg_mem_unit_t u = {
        .id = "9f1e2d3c-4b5a-4697-8877-665544332211",
        .text = "",
        .type = EG_FACT_WORLD,
        .occurred_start = EG_MEM_TIME_NONE,
        .occurred_end = EG_MEM_TIME_NONE,
        .mentioned_at = EG_MEM_TIME_NONE,
        .created_at = 0,
        .updated_at = -INT64_C(62135596800000000), /* year 1 */
        .invalidated_at = EG_MEM_TIME_NONE,
        .edited_at = EG_MEM_TIME_NONE,
        .proof_count = 1,
    };
    eg_arena_t a;
    eg_mem_unit_t b;
    char *s = print(eg_mem_unit_json(&u));

    eg_arena_init(&a);
    cr_assert_eq(eg_mem_unit_parse(&a, s, strlen(s), &b), 0);
    cr_assert_str_eq(b.context, "");
    cr_assert_eq(b.occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(b.mentioned_at, EG_MEM_TIME_NONE);
    cr_assert_eq(b.created_at, 0);
    cr_assert_eq(b.updated_at, u.updated_at); /* a multiple of 2^k: exact beyond 2^53 */
    cr_assert_null(b.document_id);
    cr_assert_null(b.chunk_id);
    cr_assert_null(b.invalidation_reason);
    cr_assert_not(b.invalidated);
    cr_assert_eq(b.ntags, 0);
    cr_assert_eq(b.nentities, 0);
    cr_assert_eq(b.nsources, 0);
    cr_assert_not_null(b.metadata); /* {} */
    cr_assert(cJSON_IsObject(b.metadata));
    free(s);
    eg_arena_destroy(&a);
}

Test(mstore_codec, unit_malformed)
{
    static const char *bad[] = {
        "",
        "not json",
        "[]",
        "{\"id\":\"x\",\"text\":\"t\"}",                           /* no type */
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"opinion\"}", /* unknown type */
        "{\"id\":1,\"text\":\"t\",\"fact_type\":\"world\"}",       /* id not a string */
        "{\"id\":\"x\",\"fact_type\":\"world\"}",                  /* no text */
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"created_at\":1.5}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"created_at\":\"2024\"}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"tags\":\"a\"}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"tags\":[1]}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"metadata\":[]}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"state\":\"gone\"}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"proof_count\":-1}",
        "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\",\"document_id\":7}",
    };
    eg_arena_t a;
    eg_mem_unit_t u;

    eg_arena_init(&a);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(eg_mem_unit_parse(&a, bad[i], strlen(bad[i]), &u), EG_EINVAL, "%s", bad[i]);
    /* len is honoured: a valid record cut short is malformed */
    {
        const char *ok = "{\"id\":\"x\",\"text\":\"t\",\"fact_type\":\"world\"}";
        cr_assert_eq(eg_mem_unit_parse(&a, ok, strlen(ok), &u), 0);
        cr_assert_eq(u.proof_count, 1);
        cr_assert_eq(eg_mem_unit_parse(&a, ok, strlen(ok) - 1, &u), EG_EINVAL);
    }
    eg_arena_destroy(&a);
}

/* ---- documents, chunks, entities ------------------------------------------------------------ */

Test(mstore_codec, doc_round_trip)
{
    static const char *tags[] = {"a", "b"};
    static const char *units[] = {"9f1e2d3c-4b5a-4697-8877-665544332211"};
    cJSON *meta = cJSON_Parse("{\"source\":\"mail\"}");
    cJSON *params = cJSON_Parse("{\"context\":\"c\",\"timestamp\":\"2024-01-01T00:00:00+00:00\"}");
    eg_mem_doc_t d = {
        .id = "doc/1",
        .original_text = "Hello — world",
        .content_hash = "ab12",
        .created_at = INT64_C(1700000000000001),
        .updated_at = INT64_C(1700000000000002),
        .tags = tags,
        .ntags = 2,
        .metadata = meta,
        .retain_params = params,
        .unit_ids = units,
        .nunits = 1,
        .nchunks = 3,
        .text_length = 13,
    };
    eg_arena_t a;
    eg_mem_doc_t b;
    char *s = print(eg_mem_doc_json(&d));

    eg_arena_init(&a);
    cr_assert_null(strstr(s, units[0]), "unit ids are not part of the record: %s", s);
    cr_assert_eq(eg_mem_doc_parse(&a, s, strlen(s), &b), 0);
    cr_assert_str_eq(b.id, "doc/1");
    cr_assert_str_eq(b.original_text, d.original_text);
    cr_assert_str_eq(b.content_hash, "ab12");
    cr_assert_eq(b.created_at, d.created_at);
    cr_assert_eq(b.updated_at, d.updated_at);
    cr_assert_eq(b.ntags, 2);
    cr_assert_str_eq(b.tags[1], "b");
    cr_assert(cJSON_Compare(b.metadata, meta, true));
    cr_assert(cJSON_Compare(b.retain_params, params, true));
    cr_assert_eq(b.nchunks, 3);
    cr_assert_eq(b.text_length, 13);
    cr_assert_eq(b.nunits, 0);
    free(s);

    /* nothing stored: nulls */
    d.original_text = d.content_hash = NULL;
    d.metadata = d.retain_params = NULL;
    s = print(eg_mem_doc_json(&d));
    cr_assert_eq(eg_mem_doc_parse(&a, s, strlen(s), &b), 0);
    cr_assert_null(b.original_text);
    cr_assert_null(b.content_hash);
    cr_assert_null(b.metadata);
    cr_assert_null(b.retain_params);
    free(s);

    cr_assert_eq(eg_mem_doc_parse(&a, "{}", 2, &b), EG_EINVAL);
    cr_assert_eq(eg_mem_doc_parse(&a, "{\"id\":\"d\",\"chunk_count\":-1}", 27, &b), EG_EINVAL);
    cr_assert_eq(eg_mem_doc_parse(&a, "{\"id\":\"d\",\"tags\":{}}", 20, &b), EG_EINVAL);
    cJSON_Delete(meta);
    cJSON_Delete(params);
    eg_arena_destroy(&a);
}

Test(mstore_codec, chunk_round_trip)
{
    eg_arena_t a;
    eg_mem_chunk_t c, b;
    char *s;

    eg_arena_init(&a);
    c = (eg_mem_chunk_t){eg_mem_chunk_id(&a, "bank", "doc", 12), "doc", 12, "some text",
                         INT64_C(1700000000123456)};
    cr_assert_str_eq(c.id, "bank_doc_12");
    s = print(eg_mem_chunk_json(&c));
    cr_assert_eq(eg_mem_chunk_parse(&a, s, strlen(s), &b), 0);
    cr_assert_str_eq(b.id, "bank_doc_12");
    cr_assert_str_eq(b.document_id, "doc");
    cr_assert_eq(b.chunk_index, 12);
    cr_assert_str_eq(b.text, "some text");
    cr_assert_eq(b.created_at, c.created_at);
    free(s);
    cr_assert_eq(
        eg_mem_chunk_parse(&a, "{\"id\":\"x\",\"document_id\":\"d\",\"text\":\"t\"}", 40, &b),
        EG_EINVAL); /* no index */
    cr_assert_eq(eg_mem_chunk_parse(&a, "{\"id\":\"x\",\"chunk_index\":0,\"text\":\"t\"}", 37, &b),
                 EG_EINVAL); /* no document */
    cr_assert_str_eq(eg_mem_chunk_id(&a, "b_1", "d_2", 0), "b_1_d_2_0");
    eg_arena_destroy(&a);
}

Test(mstore_codec, entity_round_trip)
{
    cJSON *meta = cJSON_Parse("{\"type\":\"PERSON\"}");
    eg_mem_entity_t e = {"0b8a4c1e-2f4d-4a8e-9c3b-1d2e3f4a5b6c", "Dr. Alice O'Neil", 5, 1, 2, meta};
    eg_arena_t a;
    eg_mem_entity_t b;
    char *s = print(eg_mem_entity_json(&e));

    eg_arena_init(&a);
    cr_assert_not_null(strstr(s, "\"folded\":\"dr alice oneil\""), "%s", s);
    cr_assert_null(strstr(s, "mention"), "counts live in :es: %s", s);
    cr_assert_eq(eg_mem_entity_parse(&a, s, strlen(s), &b), 0);
    cr_assert_str_eq(b.id, e.id);
    cr_assert_str_eq(b.canonical_name, "Dr. Alice O'Neil");
    cr_assert(cJSON_Compare(b.metadata, meta, true));
    cr_assert_eq(b.mention_count, 0);
    cr_assert_eq(b.first_seen, EG_MEM_TIME_NONE);
    cr_assert_eq(b.last_seen, EG_MEM_TIME_NONE);
    free(s);
    cr_assert_eq(eg_mem_entity_parse(&a, "{\"id\":\"x\"}", 10, &b), EG_EINVAL);
    cr_assert_eq(
        eg_mem_entity_parse(&a, "{\"id\":\"x\",\"canonical_name\":\"n\",\"metadata\":1}", 45, &b),
        EG_EINVAL);
    cJSON_Delete(meta);
    eg_arena_destroy(&a);
}

/* ---- links, folding ------------------------------------------------------------------------- */

Test(mstore_codec, links_parse)
{
    const char *s = "0b8a4c1e-2f4d-4a8e-9c3b-1d2e3f4a5b6c semantic 0.85;"
                    "1c9b5d2f-3a5e-4b9f-8d4c-2e3f4a5b6c7d caused_by 1;"
                    "2d0c6e3a-4b6f-4c0a-9e5d-3f4a5b6c7d8e temporal 0.3;";
    eg_arena_t a;
    eg_mem_link_t *l;
    size_t n;

    eg_arena_init(&a);
    cr_assert_eq(eg_mem_links_parse(&a, s, strlen(s), &l, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(l[0].other_id, "0b8a4c1e-2f4d-4a8e-9c3b-1d2e3f4a5b6c");
    cr_assert_eq(l[0].type, EG_LINK_SEMANTIC);
    cr_assert_float_eq(l[0].weight, 0.85f, 1e-6);
    cr_assert_eq(l[1].type, EG_LINK_CAUSED_BY);
    cr_assert_float_eq(l[1].weight, 1.0f, 1e-6);
    cr_assert_eq(l[2].type, EG_LINK_TEMPORAL);
    cr_assert_eq(eg_mem_links_parse(&a, "", 0, &l, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(l);
    /* a prefix of the list is honoured by len */
    cr_assert_eq(eg_mem_links_parse(&a, s, 51, &l, &n), 0);
    cr_assert_eq(n, 1);

    static const char *bad[] = {
        "x semantic 0.5",         /* no ';' */
        "x semantic;",            /* no weight */
        "x sideways 0.5;",        /* unknown type */
        " semantic 0.5;",         /* no id */
        "x semantic abc;",        /* not a number */
        "x semantic 0.5x;",       /* trailing garbage */
        "x semantic nan;",        /* not finite */
        "x semantic 0.5;garbage", /* a partial entry */
        "x  semantic 0.5;",       /* empty type */
        ";",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(eg_mem_links_parse(&a, bad[i], strlen(bad[i]), &l, &n), EG_EINVAL, "%s",
                     bad[i]);
    eg_arena_destroy(&a);
}

Test(mstore_codec, entity_fold)
{
    eg_arena_t a;

    eg_arena_init(&a);
    cr_assert_str_eq(eg_mem_entity_fold(&a, "Dr.  Alice O'Neil"), "dr alice oneil");
    cr_assert_str_eq(eg_mem_entity_fold(&a, "The Beatles"), "the beatles");     /* no stopwords */
    cr_assert_str_eq(eg_mem_entity_fold(&a, "Running Shoes"), "running shoes"); /* no stems */
    cr_assert_str_eq(eg_mem_entity_fold(&a, "José  Straße"), "jose strasse");
    cr_assert_str_eq(eg_mem_entity_fold(&a, "Alice's"), "alice");
    cr_assert_str_eq(eg_mem_entity_fold(&a, "ß"), "ss"); /* longer than its source */
    cr_assert_str_eq(eg_mem_entity_fold(&a, "  ...  "), "");
    cr_assert_str_eq(eg_mem_entity_fold(&a, ""), "");
    eg_arena_destroy(&a);
}
