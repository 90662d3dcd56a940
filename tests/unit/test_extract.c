/* The builtin extractor (statements, filler, entities, dates, fact types, conversations, causal
 * markers, modes), the extractor vtable, and chunking by structure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/extract.h"
#include "engram/text.h"

static eg_arena_t arena;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(extract, .init = setup, .fini = teardown);

static int64_t iso(const char *s)
{
    int64_t us;
    cr_assert_eq(eg_text_parse_iso(s, strlen(s), &us), 0, "bad test time %s", s);
    return us;
}

static eg_extract_config_t cfg_concise = {EG_EXTRACT_CONCISE, NULL, NULL, true, NULL, false};

static eg_extract_result_t run(const char *text, int64_t ts, const eg_extract_config_t *cfg)
{
    eg_extract_input_t in = {.text = text,
                             .len = strlen(text),
                             .chunk_index = 0,
                             .nchunks = 1,
                             .context = "",
                             .timestamp = ts,
                             .cfg = cfg ? cfg : &cfg_concise};
    eg_extract_result_t r;
    eg_extract_builtin_run(&arena, &in, &r);
    return r;
}

static const char *ents(const eg_extract_fact_t *f)
{
    char *out = eg_arena_alloc(&arena, 1024);
    out[0] = '\0';
    for (size_t i = 0; i < f->nentities; i++) {
        if (i)
            strcat(out, " | ");
        strcat(out, f->entities[i]);
    }
    return out;
}

Test(extract, statements_filler_questions)
{
    eg_extract_result_t r = run("Hi there! Alice moved to Berlin in 2019. What do you think? "
                                "Thanks! Congratulations! The Berlin office has 40 engineers.",
                                iso("2024-03-15T10:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 2);
    cr_assert_str_eq(r.facts[0].text, "Alice moved to Berlin in 2019.");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);
    cr_assert_str_eq(ents(&r.facts[0]), "Alice | Berlin");
    cr_assert_eq(r.facts[0].occurred_start, iso("2019-01-01"));
    cr_assert_eq(r.facts[0].occurred_end, iso("2019-12-31T23:59:59.999999"));
    cr_assert_str_eq(r.facts[1].text, "The Berlin office has 40 engineers.");
    cr_assert_eq(r.facts[1].occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[1].occurred_end, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[1].ncauses, 0);
    cr_assert_eq(r.usage.total_tokens, 0);
}

Test(extract, first_person_plain_text_is_experience)
{
    eg_extract_result_t r = run("I started a new job at Google yesterday.\nMy manager is Priya.\n"
                                "Google was founded in 1998.",
                                iso("2024-03-15T10:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 3);
    cr_assert_eq(r.facts[0].type, EG_FACT_EXPERIENCE);
    cr_assert_str_eq(ents(&r.facts[0]), "Google");
    cr_assert_eq(r.facts[0].occurred_start, iso("2024-03-14"));
    cr_assert_eq(r.facts[0].occurred_end, iso("2024-03-14T23:59:59.999999"));
    cr_assert_eq(r.facts[1].type, EG_FACT_EXPERIENCE);
    cr_assert_eq(r.facts[2].type, EG_FACT_WORLD);
}

Test(extract, unset_timestamp_keeps_only_absolute_dates)
{
    eg_extract_result_t r = run("We met on 2023-05-30 in Lisbon. We met again yesterday. "
                                "The launch was on May 5, 2021.",
                                EG_MEM_TIME_NONE, NULL);

    cr_assert_eq(r.nfacts, 3);
    cr_assert_eq(r.facts[0].occurred_start, iso("2023-05-30"));
    cr_assert_eq(r.facts[1].occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[2].occurred_start, iso("2021-05-05"));
}

Test(extract, list_markers_dropped)
{
    eg_extract_result_t r = run("- Alice likes green tea\n* Bob likes coffee\n2. Carol likes juice",
                                iso("2024-01-01"), NULL);

    cr_assert_eq(r.nfacts, 3);
    cr_assert_str_eq(r.facts[0].text, "Alice likes green tea");
    cr_assert_str_eq(r.facts[1].text, "Bob likes coffee");
    cr_assert_str_eq(r.facts[2].text, "Carol likes juice");
}

Test(extract, json_conversation)
{
    const char *conv =
        "[{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"},"
        " {\"role\": \"user\", \"content\": \"Hi! I adopted a dog named Rex last week.\"},"
        " {\"role\": \"assistant\", \"content\": \"Congratulations! I recommended the Bark Park "
        "in Austin to you. Dogs need daily walks.\"},"
        " {\"role\": \"user\", \"name\": \"Dana\", \"content\": [{\"type\": \"text\", \"text\": "
        "\"My sister lives in Denver.\"}], \"timestamp\": \"2024-02-01T12:00:00Z\"}]";
    eg_extract_result_t r = run(conv, iso("2024-03-15T10:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 4);
    cr_assert_str_eq(r.facts[0].text, "User: I adopted a dog named Rex last week.");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD); /* the user's life is world */
    cr_assert_str_eq(ents(&r.facts[0]), "Rex");
    cr_assert_eq(r.facts[0].occurred_start, iso("2024-03-04"));
    cr_assert_eq(r.facts[0].occurred_end, iso("2024-03-10T23:59:59.999999"));
    cr_assert_str_eq(r.facts[1].text, "Assistant: I recommended the Bark Park in Austin to you.");
    cr_assert_eq(r.facts[1].type, EG_FACT_EXPERIENCE);
    cr_assert_str_eq(ents(&r.facts[1]), "Bark Park | Austin");
    cr_assert_str_eq(r.facts[2].text, "Assistant: Dogs need daily walks.");
    cr_assert_eq(r.facts[2].type, EG_FACT_WORLD); /* not about the assistant itself */
    /* A named user is a person: an entity of the fact, and world. */
    cr_assert_str_eq(r.facts[3].text, "Dana: My sister lives in Denver.");
    cr_assert_eq(r.facts[3].type, EG_FACT_WORLD);
    cr_assert_str_eq(ents(&r.facts[3]), "Dana | Denver");
}

Test(extract, json_lines)
{
    const char *conv = "{\"speaker\": \"Maria\", \"text\": \"I booked flights to Tokyo.\"}\n"
                       "{\"role\": \"assistant\", \"content\": \"I found a hotel in Shinjuku.\"}\n";
    eg_extract_result_t r = run(conv, iso("2024-03-15T10:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 2);
    cr_assert_str_eq(r.facts[0].text, "Maria: I booked flights to Tokyo.");
    cr_assert_str_eq(ents(&r.facts[0]), "Maria | Tokyo");
    cr_assert_eq(r.facts[1].type, EG_FACT_EXPERIENCE);
}

Test(extract, json_records_without_content)
{
    eg_extract_result_t r =
        run("[{\"city\": \"Oslo\", \"population\": 709000}]", iso("2024-03-15T10:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, "city: Oslo, population: 709000");
}

Test(extract, speaker_lines)
{
    const char *conv = "Alice (2024-03-15T09:00:00Z): I got promoted yesterday!\n"
                       "Bob (2024-03-15T09:05:00Z): Congrats, that is great news.\n"
                       "Alice: We are celebrating at Luigi's tonight.\n"
                       "It is the Italian place on Main Street.\n";
    eg_extract_result_t r = run(conv, iso("2024-04-20T18:00:00Z"), NULL);

    cr_assert_eq(r.nfacts, 4);
    cr_assert_str_eq(r.facts[0].text, "Alice: I got promoted yesterday!");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);
    cr_assert_str_eq(ents(&r.facts[0]), "Alice");
    /* Resolved against the line's own time, not the item's. */
    cr_assert_eq(r.facts[0].occurred_start, iso("2024-03-14"));
    cr_assert_str_eq(r.facts[1].text, "Bob: Congrats, that is great news.");
    cr_assert_str_eq(r.facts[2].text, "Alice: We are celebrating at Luigi's tonight.");
    cr_assert_str_eq(ents(&r.facts[2]), "Alice | Luigi");
    cr_assert_eq(r.facts[2].occurred_start, iso("2024-04-20T18:00:00Z"));
    /* A line without a speaker continues the message before it. */
    cr_assert_str_eq(r.facts[3].text, "Alice: It is the Italian place on Main Street.");
}

Test(extract, speaker_line_rules)
{
    /* One line with a role word is a conversation; one "Note:" line is not. */
    eg_extract_result_t r = run("User: I love spicy ramen.", iso("2024-01-01"), NULL);
    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, "User: I love spicy ramen.");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);

    r = run("Note: I moved the meeting to Friday.", iso("2024-01-01"), NULL);
    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, "Note: I moved the meeting to Friday.");
    cr_assert_eq(r.facts[0].type, EG_FACT_EXPERIENCE);

    /* Times and URLs are not speakers; a single named line is not a transcript. */
    r = run("Meeting at 10:30 went well.\nSee https://example.com for the notes.",
            iso("2024-01-01"), NULL);
    cr_assert_eq(r.nfacts, 2);
    cr_assert_str_eq(r.facts[0].text, "Meeting at 10:30 went well.");
    r = run("Alice: the deploy is done.", iso("2024-01-01"), NULL);
    cr_assert_str_eq(r.facts[0].text, "Alice: the deploy is done.");
    cr_assert_eq(r.facts[0].nentities, 1); /* "Alice" from the recogniser, not as a speaker */
}

Test(extract, causal_markers)
{
    const char *text = "I lost my job in March. So I moved back to Ohio. As a result, I sold my "
                       "car. So far the move has gone well.";
    eg_extract_result_t r = run(text, iso("2024-06-01"), NULL);

    cr_assert_eq(r.nfacts, 4);
    cr_assert_eq(r.facts[0].ncauses, 0);
    cr_assert_eq(r.facts[1].ncauses, 1);
    cr_assert_eq(r.facts[1].causes[0], 0);
    cr_assert_eq(r.facts[2].ncauses, 1);
    cr_assert_eq(r.facts[2].causes[0], 1);
    cr_assert_eq(r.facts[3].ncauses, 0); /* "So far" is not a consequence */

    eg_extract_config_t off = {EG_EXTRACT_CONCISE, NULL, NULL, false, NULL, false};
    r = run(text, iso("2024-06-01"), &off);
    for (size_t i = 0; i < r.nfacts; i++)
        cr_assert_eq(r.facts[i].ncauses, 0);
}

Test(extract, modes_verbatim_and_chunks)
{
    const char *text = "Hi! Alice met Bob in Paris on 2022-06-05. Thanks!\n";
    eg_extract_config_t verbatim = {EG_EXTRACT_VERBATIM, NULL, NULL, true, NULL, false};
    eg_extract_config_t chunks = {EG_EXTRACT_CHUNKS, NULL, NULL, true, NULL, false};

    eg_extract_result_t r = run(text, iso("2024-01-01"), &verbatim);
    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, "Hi! Alice met Bob in Paris on 2022-06-05. Thanks!");
    cr_assert_str_eq(ents(&r.facts[0]), "Alice | Bob | Paris");
    cr_assert_eq(r.facts[0].occurred_start, iso("2022-06-05"));

    r = run(text, iso("2024-01-01"), &chunks);
    cr_assert_eq(r.nfacts, 1);
    cr_assert_eq(r.facts[0].nentities, 0);
    cr_assert_eq(r.facts[0].occurred_start, EG_MEM_TIME_NONE);

    r = run("   \n", iso("2024-01-01"), &verbatim);
    cr_assert_eq(r.nfacts, 0);
}

Test(extract, mode_names)
{
    eg_extract_mode_t m;
    cr_assert_eq(eg_extract_mode_parse("verbatim", &m), 0);
    cr_assert_eq(m, EG_EXTRACT_VERBATIM);
    cr_assert_eq(eg_extract_mode_parse(NULL, &m), 0);
    cr_assert_eq(m, EG_EXTRACT_CONCISE);
    cr_assert_eq(eg_extract_mode_parse("chunks", &m), 0);
    cr_assert_eq(m, EG_EXTRACT_CHUNKS);
    cr_assert_eq(eg_extract_mode_parse("loud", &m), EG_EINVAL);
}

static int cb_calls;
static size_t cb_facts;

static void on_extract(eg_extractor_t *x, int status, const eg_extract_result_t *res, void *ud)
{
    cr_assert_eq(status, 0);
    cr_assert_eq(ud, &cb_calls);
    cr_assert_str_eq(x->name, "builtin-rules-v1");
    cb_calls++;
    cb_facts = res->nfacts;
}

Test(extract, vtable)
{
    eg_extractor_t *x = eg_extract_builtin_new();
    eg_extract_input_t in = {.text = "Alice lives in Rome.",
                             .len = 20,
                             .cfg = &cfg_concise,
                             .timestamp = EG_MEM_TIME_NONE};

    cb_calls = 0;
    cr_assert_eq(eg_extract_run(x, &arena, &in, on_extract, &cb_calls), 0);
    cr_assert_eq(cb_calls, 1); /* the builtin completes before returning */
    cr_assert_eq(cb_facts, 1);
    cr_assert_eq(eg_extract_run(x, &arena, &in, NULL, NULL), EG_EINVAL);
    eg_extract_destroy(x);
    eg_extract_destroy(NULL);

    eg_usage_t a = {1, 2, 3, 4, 5}, b = {10, 20, 30, 40, 50};
    eg_usage_add(&a, &b);
    cr_assert_eq(a.input_tokens, 11);
    cr_assert_eq(a.thoughts_tokens, 55);
}

/* ---- chunking ------------------------------------------------------------------------------- */

Test(extract, chunks_short_text_is_one_chunk)
{
    eg_extract_chunk_t *c;
    const char *text = "  Alice likes tea.  ";
    size_t n = eg_extract_chunks(&arena, text, strlen(text), 3000, 0, &c);

    cr_assert_eq(n, 1);
    cr_assert_str_eq(c[0].text, text);
    cr_assert_eq(eg_extract_chunks(&arena, "", 0, 0, 0, &c), 1);
    cr_assert_str_eq(c[0].text, "");
}

Test(extract, chunks_prose_on_sentences)
{
    char *text = eg_arena_alloc(&arena, 4096);
    text[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(text, "Alice planted a new rose bush in her garden today. ");
    eg_extract_chunk_t *c;
    size_t n = eg_extract_chunks(&arena, text, strlen(text), 200, 0, &c);

    cr_assert_gt(n, 5);
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(eg_text_codepoints(c[i].text, c[i].len), 200);
        cr_assert_eq(strlen(c[i].text), c[i].len);
        cr_assert_eq(c[i].text[c[i].len - 1], '.');
    }
}

Test(extract, chunks_json_conversation_at_turns)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < 30; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "role", i % 2 ? "assistant" : "user");
        char buf[128];
        snprintf(buf, sizeof(buf), "Message number %d talks about the garden and roses.", i);
        cJSON_AddStringToObject(t, "content", buf);
        cJSON_AddItemToArray(arr, t);
    }
    char *text = cJSON_Print(arr); /* formatted: whitespace and newlines between turns */
    eg_extract_chunk_t *c;
    size_t n = eg_extract_chunks(&arena, text, strlen(text), 500, 0, &c);
    size_t turns = 0;

    cr_assert_gt(n, 3);
    for (size_t i = 0; i < n; i++) {
        cJSON *p = cJSON_Parse(c[i].text);
        cr_assert(cJSON_IsArray(p), "chunk %zu is not a JSON array: %s", i, c[i].text);
        for (int k = 0; k < cJSON_GetArraySize(p); k++) {
            cJSON *t = cJSON_GetArrayItem(p, k);
            char want[128];
            snprintf(want, sizeof(want), "Message number %zu talks about the garden and roses.",
                     turns);
            cr_assert_str_eq(cJSON_GetObjectItem(t, "content")->valuestring, want);
            turns++;
        }
        cr_assert_leq(eg_text_codepoints(c[i].text, c[i].len), 500 + 16);
        cJSON_Delete(p);
    }
    cr_assert_eq(turns, 30);
    /* The structured size wins for conversations. */
    size_t n2 = eg_extract_chunks(&arena, text, strlen(text), 500, 2000, &c);
    cr_assert_lt(n2, n);
    free(text);
    cJSON_Delete(arr);
}

Test(extract, chunks_speaker_lines_at_turns)
{
    char *text = eg_arena_alloc(&arena, 8192);
    text[0] = '\0';
    for (int i = 0; i < 20; i++) {
        strcat(text, i % 2 ? "Bob: " : "Alice: ");
        strcat(text, "We talked about the trip to Lisbon again today.\n");
        if (i % 5 == 0)
            strcat(text, "And a second line that continues the message.\n");
    }
    eg_extract_chunk_t *c;
    size_t n = eg_extract_chunks(&arena, text, strlen(text), 300, 0, &c);

    cr_assert_gt(n, 2);
    for (size_t i = 0; i < n; i++) {
        /* Every chunk starts with a speaker. */
        cr_assert(strncmp(c[i].text, "Alice: ", 7) == 0 || strncmp(c[i].text, "Bob: ", 5) == 0,
                  "chunk %zu starts mid-turn: %.40s", i, c[i].text);
        eg_extract_result_t r = run(c[i].text, iso("2024-01-01"), NULL);
        for (size_t k = 0; k < r.nfacts; k++)
            cr_assert(strncmp(r.facts[k].text, "Alice: ", 7) == 0 ||
                      strncmp(r.facts[k].text, "Bob: ", 5) == 0);
    }
}

Test(extract, chunks_json_lines)
{
    char *text = eg_arena_alloc(&arena, 8192);
    text[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(text, "{\"role\": \"user\", \"content\": \"I water the tomatoes every day.\"}\n");
    eg_extract_chunk_t *c;
    size_t n = eg_extract_chunks(&arena, text, strlen(text), 400, 0, &c);

    cr_assert_gt(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(c[i].text[0], '{');
        cr_assert_eq(c[i].text[c[i].len - 1], '}');
    }
}
