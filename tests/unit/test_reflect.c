/* Reflect's pure parts (src/memory/reflect_prompt.c): tool names and definitions, argument
 * parsing, the turn schedule (forced order, iteration limits, context cap), the system prompt
 * (directives first and last, disposition, mission) and the builtin and fallback answers. */
#include <string.h>

#include <criterion/criterion.h>

#include "engram/error.h"
#include "engram/text.h"
#include "memory/reflect_int.h"

static eg_arena_t A;

static void setup(void)
{
    eg_arena_init(&A);
}

static void teardown(void)
{
    eg_arena_destroy(&A);
}

TestSuite(reflect, .init = setup, .fini = teardown);

/* ---- tool names ----------------------------------------------------------------------------- */

Test(reflect, tool_names_tolerate_model_prefixes)
{
    cr_assert_eq(eg__reflect_tool_parse("done"), EG__RT_DONE);
    cr_assert_eq(eg__reflect_tool_parse("functions.recall"), EG__RT_RECALL);
    cr_assert_eq(eg__reflect_tool_parse("call=functions.expand"), EG__RT_EXPAND);
    cr_assert_eq(eg__reflect_tool_parse("call=search_observations"), EG__RT_SEARCH_OBSERVATIONS);
    cr_assert_eq(eg__reflect_tool_parse("done<|channel|>commentary"), EG__RT_DONE);
    cr_assert_eq(eg__reflect_tool_parse("search_mental_models"), EG__RT_SEARCH_MENTAL_MODELS);
    cr_assert_eq(eg__reflect_tool_parse("learn"), EG__RT_UNKNOWN);
    cr_assert_eq(eg__reflect_tool_parse("recal"), EG__RT_UNKNOWN);
    cr_assert_eq(eg__reflect_tool_parse("recallx"), EG__RT_UNKNOWN);
    cr_assert_eq(eg__reflect_tool_parse(NULL), EG__RT_UNKNOWN);
    cr_assert_str_eq(eg__reflect_tool_name(EG__RT_SEARCH_OBSERVATIONS), "search_observations");
}

/* ---- iterations and the turn schedule ------------------------------------------------------- */

Test(reflect, iterations_per_budget)
{
    cr_assert_eq(eg_reflect_max_iterations(EG_RECALL_BUDGET_LOW), 5);
    cr_assert_eq(eg_reflect_max_iterations(EG_RECALL_BUDGET_MID), 10);
    cr_assert_eq(eg_reflect_max_iterations(EG_RECALL_BUDGET_HIGH), 20);
}

Test(reflect, first_turns_force_mental_models_observations_recall_then_auto_then_done)
{
    eg__rturn_t t;

    t = eg__reflect_turn(1, 5, true, 0);
    cr_assert_eq(t.choice, EG_LLM_TOOLS_NAMED);
    cr_assert_eq(t.named, EG__RT_SEARCH_MENTAL_MODELS);
    cr_assert_not(t.final);
    t = eg__reflect_turn(2, 5, true, 0);
    cr_assert_eq(t.named, EG__RT_SEARCH_OBSERVATIONS);
    t = eg__reflect_turn(3, 5, true, 0);
    cr_assert_eq(t.named, EG__RT_RECALL);
    t = eg__reflect_turn(4, 5, true, 0);
    cr_assert_eq(t.choice, EG_LLM_TOOLS_AUTO);
    cr_assert_not(t.final);
    t = eg__reflect_turn(5, 5, true, 0);
    cr_assert_eq(t.choice, EG_LLM_TOOLS_NAMED);
    cr_assert_eq(t.named, EG__RT_DONE);
    cr_assert(t.final);
}

Test(reflect, without_mental_models_the_order_starts_at_observations)
{
    cr_assert_eq(eg__reflect_turn(1, 10, false, 0).named, EG__RT_SEARCH_OBSERVATIONS);
    cr_assert_eq(eg__reflect_turn(2, 10, false, 0).named, EG__RT_RECALL);
    cr_assert_eq(eg__reflect_turn(3, 10, false, 0).choice, EG_LLM_TOOLS_AUTO);
    cr_assert(eg__reflect_turn(10, 10, false, 0).final);
    cr_assert_not(eg__reflect_turn(9, 10, false, 0).final);
}

Test(reflect, the_last_turn_and_a_full_context_force_done)
{
    /* A budget shorter than the forced order still ends with done. */
    eg__rturn_t t = eg__reflect_turn(2, 2, true, 0);

    cr_assert(t.final);
    cr_assert_eq(t.named, EG__RT_DONE);
    t = eg__reflect_turn(4, 20, true, EG_REFLECT_CONTEXT_TOKENS + 1);
    cr_assert(t.final);
    cr_assert_eq(t.named, EG__RT_DONE);
    t = eg__reflect_turn(4, 20, true, EG_REFLECT_CONTEXT_TOKENS);
    cr_assert_not(t.final);
}

/* ---- argument parsing ----------------------------------------------------------------------- */

Test(reflect, recall_arguments_with_defaults)
{
    eg__rargs_t a;
    char err[256];

    cr_assert_eq(eg__reflect_parse_args(&A, "recall", "{\"query\":\"alice job\",\"reason\":\"r\"}",
                                        false, &a, err, sizeof(err)),
                 0);
    cr_assert_eq(a.tool, EG__RT_RECALL);
    cr_assert_str_eq(a.query, "alice job");
    cr_assert_str_eq(a.reason, "r");
    cr_assert_eq(a.max_tokens, 2048);
    cr_assert_eq(a.max_chunk_tokens, 1000);
    cr_assert_str_eq(cJSON_GetObjectItem(a.input, "query")->valuestring, "alice job");

    cr_assert_eq(eg__reflect_parse_args(&A, "search_observations",
                                        "{\"query\":\"q\",\"reason\":\"r\"}", false, &a, err,
                                        sizeof(err)),
                 0);
    cr_assert_eq(a.max_tokens, 5000);
    cr_assert_eq(eg__reflect_parse_args(&A, "search_mental_models",
                                        "{\"query\":\"q\",\"reason\":\"r\",\"max_results\":3}",
                                        false, &a, err, sizeof(err)),
                 0);
    cr_assert_eq(a.max_results, 3);
}

Test(reflect, retrieval_tools_require_query_and_reason)
{
    eg__rargs_t a;
    char err[256];

    cr_assert_eq(
        eg__reflect_parse_args(&A, "recall", "{\"query\":\"q\"}", false, &a, err, sizeof(err)),
        EG_EINVAL);
    cr_assert(strstr(err, "reason"), "%s", err);
    cr_assert_eq(eg__reflect_parse_args(&A, "search_observations", "{\"reason\":\"r\"}", false, &a,
                                        err, sizeof(err)),
                 EG_EINVAL);
    cr_assert(strstr(err, "query"), "%s", err);
    cr_assert_eq(eg__reflect_parse_args(&A, "recall",
                                        "{\"query\":\"q\",\"reason\":\"r\",\"max_tokens\":-3}",
                                        false, &a, err, sizeof(err)),
                 EG_EINVAL);
    cr_assert(strstr(err, "max_tokens"), "%s", err);
}

Test(reflect, malformed_json_and_unknown_tools_are_errors_for_the_model)
{
    eg__rargs_t a;
    char err[256];

    cr_assert_eq(eg__reflect_parse_args(&A, "recall", "{\"query\": \"unterminated", false, &a, err,
                                        sizeof(err)),
                 EG_EINVAL);
    cr_assert(strstr(err, "Invalid arguments for recall"), "%s", err);
    cr_assert_str_eq(cJSON_GetObjectItem(a.input, "raw")->valuestring,
                     "{\"query\": \"unterminated");
    cr_assert_eq(eg__reflect_parse_args(&A, "recall", "[1,2]", false, &a, err, sizeof(err)),
                 EG_EINVAL);
    cr_assert_eq(eg__reflect_parse_args(&A, "learn", "{}", false, &a, err, sizeof(err)), EG_EINVAL);
    cr_assert_eq(a.tool, EG__RT_UNKNOWN);
    cr_assert(strstr(err, "Unknown tool: learn"), "%s", err);
}

Test(reflect, expand_arguments)
{
    eg__rargs_t a;
    char err[256];

    cr_assert_eq(eg__reflect_parse_args(&A, "expand",
                                        "{\"memory_ids\":[\"a\",\"b\"],\"depth\":\"document\","
                                        "\"reason\":\"r\"}",
                                        false, &a, err, sizeof(err)),
                 0);
    cr_assert_eq(a.nids, 2);
    cr_assert_str_eq(a.ids[1], "b");
    cr_assert(a.document);
    cr_assert_eq(eg__reflect_parse_args(&A, "expand", "{\"memory_ids\":[\"a\"],\"reason\":\"r\"}",
                                        false, &a, err, sizeof(err)),
                 0);
    cr_assert_not(a.document);
    cr_assert_eq(eg__reflect_parse_args(&A, "expand", "{\"memory_ids\":[],\"reason\":\"r\"}", false,
                                        &a, err, sizeof(err)),
                 EG_EINVAL);
    cr_assert_eq(eg__reflect_parse_args(&A, "expand",
                                        "{\"memory_ids\":[\"a\"],\"depth\":\"page\","
                                        "\"reason\":\"r\"}",
                                        false, &a, err, sizeof(err)),
                 EG_EINVAL);
    cr_assert(strstr(err, "depth"), "%s", err);
    cr_assert_eq(eg__reflect_parse_args(&A, "expand", "{\"memory_ids\":[1],\"reason\":\"r\"}",
                                        false, &a, err, sizeof(err)),
                 EG_EINVAL);
}

Test(reflect, done_arguments_and_directive_compliance)
{
    eg__rargs_t a;
    char err[256];
    const char *ok = "{\"answer\":\"Alice works at Google.\",\"memory_ids\":[\"m1\"],"
                     "\"mental_model_ids\":[],\"observation_ids\":[\"o1\",\"o2\"]}";

    cr_assert_eq(eg__reflect_parse_args(&A, "done", ok, false, &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.answer, "Alice works at Google.");
    cr_assert_eq(a.nids, 1);
    cr_assert_eq(a.nmm_ids, 0);
    cr_assert_eq(a.nobs_ids, 2);
    cr_assert_null(a.directive_compliance);
    /* With directives, done must say how it complies. */
    cr_assert_eq(eg__reflect_parse_args(&A, "done", ok, true, &a, err, sizeof(err)), EG_EINVAL);
    cr_assert(strstr(err, "directive_compliance"), "%s", err);
    cr_assert_eq(eg__reflect_parse_args(&A, "done",
                                        "{\"answer\":\"x\",\"directive_compliance\":\"in French\"}",
                                        true, &a, err, sizeof(err)),
                 0);
    cr_assert_str_eq(a.directive_compliance, "in French");
    cr_assert_eq(
        eg__reflect_parse_args(&A, "done", "{\"memory_ids\":[]}", false, &a, err, sizeof(err)),
        EG_EINVAL);
    cr_assert_eq(eg__reflect_parse_args(&A, "done", "{\"answer\":\"x\",\"memory_ids\":\"m1\"}",
                                        false, &a, err, sizeof(err)),
                 EG_EINVAL);
}

/* ---- tool definitions ----------------------------------------------------------------------- */

static const eg_llm_tool_t *find_tool(const eg_llm_tool_t *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static bool requires(const eg_llm_tool_t *t, const char *field)
{
    cJSON *p = cJSON_Parse(t->parameters), *e;
    bool found = false;

    cr_assert_not_null(p, "%s: %s", t->name, t->parameters);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(p, "required"))
    {
        found |= !strcmp(e->valuestring, field);
    }
    cJSON_Delete(p);
    return found;
}

Test(reflect, tool_definitions)
{
    eg_llm_tool_t t[EG__RT_NTOOLS];
    size_t n = eg__reflect_tools(&A, true, false, t);

    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, "done"))
            cr_assert(requires(&t[i], "reason"), "%s must require a reason", t[i].name);
    }
    cr_assert(requires(find_tool(t, n, "done"), "answer"));
    cr_assert_not(requires(find_tool(t, n, "done"), "directive_compliance"));
    cr_assert_null(strstr(find_tool(t, n, "done")->parameters, "directive_compliance"));

    n = eg__reflect_tools(&A, false, true, t);
    cr_assert_eq(n, 4);
    cr_assert_null(find_tool(t, n, "search_mental_models"));
    cr_assert(requires(find_tool(t, n, "done"), "directive_compliance"));
    cr_assert(requires(find_tool(t, n, "recall"), "query"));
    cr_assert(requires(find_tool(t, n, "expand"), "memory_ids"));
}

/* ---- the system prompt ---------------------------------------------------------------------- */

static const eg_reflect_directive_t dirs[] = {
    {"d1", "French", "Always answer in French."},
    {"d2", "Brief", "Keep answers under three sentences."},
};

Test(reflect, directives_open_and_close_the_system_prompt)
{
    eg__rprompt_t p = {.bank_name = "team",
                       .mission = "Help the support team remember customers.",
                       .skepticism = 5,
                       .literalism = 2,
                       .empathy = 4,
                       .directives = dirs,
                       .ndirectives = 2,
                       .has_mm = true,
                       .budget = EG_RECALL_BUDGET_MID,
                       .max_iter = 10,
                       .max_tokens = 4096};
    char *s = eg__reflect_system_prompt(&A, &p);
    const char *first = strstr(s, "Always answer in French.");
    const char *last = first ? strstr(first + 1, "Always answer in French.") : NULL;
    const char *answering = strstr(s, "## Answering");

    cr_assert(!strncmp(s, "## DIRECTIVES (MANDATORY)", 25), "%s", s);
    cr_assert_not_null(first);
    cr_assert_not_null(last, "directives must appear twice:\n%s", s);
    cr_assert_not_null(answering);
    cr_assert(first < answering && last > answering, "first and last:\n%s", s);
    /* Priority order is kept: d1 before d2 in both blocks. */
    cr_assert(strstr(s, "Keep answers under three sentences.") > first);
    cr_assert(strstr(last, "Keep answers under three sentences.") > last);
    cr_assert(strstr(last, "directive_compliance"));
    cr_assert(strstr(s, "Disposition: skepticism=5, literalism=2, empathy=4\n"), "%s", s);
    cr_assert(strstr(s, "Mission: Help the support team remember customers.\n"));
    cr_assert(strstr(s, "\"team\""));
    cr_assert(strstr(s, "1. search_mental_models"));
    cr_assert(strstr(s, "at most 10 turns"));
}

Test(reflect, system_prompt_without_directives_or_mental_models)
{
    eg__rprompt_t p = {.bank_name = "b",
                       .mission = "",
                       .skepticism = 3,
                       .literalism = 3,
                       .empathy = 3,
                       .has_mm = false,
                       .budget = EG_RECALL_BUDGET_LOW,
                       .max_iter = 5};
    char *s = eg__reflect_system_prompt(&A, &p);

    cr_assert_null(strstr(s, "DIRECTIVES"));
    cr_assert_null(strstr(s, "Mission:"));
    cr_assert_null(strstr(s, "search_mental_models"));
    cr_assert(strstr(s, "1. search_observations"));
    cr_assert(strstr(s, "Disposition: skepticism=3, literalism=3, empathy=3\n"));
    cr_assert(!strncmp(s, "You are the reflection agent", 28), "%s", s);
}

/* ---- the builtin answer --------------------------------------------------------------------- */

static eg_reflect_fact_t fact(const char *id, const char *text, int64_t when)
{
    return (eg_reflect_fact_t){
        id, text, "", EG_FACT_WORLD, when, EG_MEM_TIME_NONE, EG_MEM_TIME_NONE};
}

Test(reflect, builtin_answer_lists_the_best_facts_and_says_no_model)
{
    int64_t t;
    eg_reflect_fact_t f[3];
    size_t shown = 0;
    char *s, *again;

    eg_text_parse_iso("2024-03-01T09:00:00Z", 20, &t);
    f[0] = fact("a", "Alice works at Google in Zurich.", t);
    f[1] = fact("b", "Alice moved to Zurich in 2021.", EG_MEM_TIME_NONE);
    f[2] = fact("c", "Bob likes tea.", EG_MEM_TIME_NONE);
    f[2].type = EG_FACT_OBSERVATION;
    s = eg__reflect_builtin_text(&A, "Where does Alice work?", f, 3, NULL, 0, 4096, false, &shown);
    cr_assert_eq(shown, 3);
    cr_assert(strstr(s, "without a language model"), "%s", s);
    cr_assert(strstr(s, "\"Where does Alice work?\""));
    cr_assert(strstr(s, "1. Alice works at Google in Zurich. (2024-03-01)\n"), "%s", s);
    cr_assert(strstr(s, "2. Alice moved to Zurich in 2021.\n"), "%s", s);
    cr_assert(strstr(s, "3. Bob likes tea. [observation]"), "%s", s);
    cr_assert_null(strstr(s, "response_schema"));
    again =
        eg__reflect_builtin_text(&A, "Where does Alice work?", f, 3, NULL, 0, 4096, false, NULL);
    cr_assert_str_eq(s, again, "deterministic");
}

Test(reflect, builtin_answer_stops_at_the_first_fact_that_does_not_fit)
{
    eg_reflect_fact_t f[2] = {
        fact("a", "short fact", EG_MEM_TIME_NONE),
        fact("b", "a second fact that is somewhat longer than the first", EG_MEM_TIME_NONE)};
    size_t shown = 9, head;
    char *s = eg__reflect_builtin_text(&A, "q", f, 2, NULL, 0, 1000000, false, &shown);

    cr_assert_eq(shown, 2);
    /* Room for the preface and the first fact only. */
    head = eg_text_estimate_tokens(s, strstr(s, "\n") - s) + 2 /* "Memories:" */;
    s = eg__reflect_builtin_text(&A, "q", f, 2, NULL, 0, head + 8, false, &shown);
    cr_assert_eq(shown, 1, "%s", s);
    cr_assert(strstr(s, "1. short fact"));
    cr_assert_null(strstr(s, "second fact"));
}

Test(reflect, builtin_answer_with_no_facts_mental_models_and_a_schema)
{
    eg_reflect_mm_t mm = {"mm1", "Alice profile", "Alice is an SRE at Google."};
    size_t shown = 9;
    char *s = eg__reflect_builtin_text(&A, "Who is Carol?", NULL, 0, NULL, 0, 4096, true, &shown);

    cr_assert_eq(shown, 0);
    cr_assert(strstr(s, "I found no memories about \"Who is Carol?\""), "%s", s);
    cr_assert(strstr(s, "without a language model"));
    cr_assert(strstr(s, "no structured output"), "%s", s);
    s = eg__reflect_builtin_text(&A, "Alice?", NULL, 0, &mm, 1, 4096, false, &shown);
    cr_assert(strstr(s, "**Alice profile** (mental model):\n\nAlice is an SRE at Google."), "%s",
              s);
}

Test(reflect, fallback_answer_lists_what_the_model_found)
{
    eg_reflect_fact_t f[1] = {fact("a", "Alice works at Google.", EG_MEM_TIME_NONE)};
    char *s = eg__reflect_fallback_text(&A, f, 1, 4096);

    cr_assert(strstr(s, "did not give a final answer"), "%s", s);
    cr_assert(strstr(s, "1. Alice works at Google."));
    s = eg__reflect_fallback_text(&A, NULL, 0, 4096);
    cr_assert(strstr(s, "found no memories"), "%s", s);
}

Test(reflect, facts_are_shown_to_the_model_without_empty_fields)
{
    eg_reflect_fact_t f = fact("a", "Alice works at Google.", EG_MEM_TIME_NONE);
    cJSON *j = eg__reflect_fact_json(&f);
    char *txt = cJSON_PrintUnformatted(j);

    cr_assert_str_eq(txt, "{\"id\":\"a\",\"text\":\"Alice works at Google.\",\"type\":\"world\"}");
    cJSON_free(txt);
    cJSON_Delete(j);
}

Test(reflect, structured_prompt_carries_answer_and_schema)
{
    char *s = eg__reflect_structured_prompt(&A, "Alice is an SRE.",
                                            "{\"type\":\"object\",\"properties\":{\"role\":{"
                                            "\"type\":\"string\"}}}");

    cr_assert(strstr(s, "Alice is an SRE."));
    cr_assert(strstr(s, "\"role\""));
}

/* ---- the dry run's diff --------------------------------------------------------------------- */

Test(reflect, unified_diff_of_two_contents)
{
    cr_assert_str_eq(eg_reflect_unified_diff(&A, "same\ntext", "same\ntext"), "");
    cr_assert_str_eq(eg_reflect_unified_diff(&A, "a\nb\nc", "a\nB\nc\nd"),
                     "--- current\n+++ preview\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n");
    cr_assert_str_eq(eg_reflect_unified_diff(&A, "", "new"),
                     "--- current\n+++ preview\n@@ -0,0 +1,1 @@\n+new\n");
    cr_assert_str_eq(eg_reflect_unified_diff(&A, "old\n", ""),
                     "--- current\n+++ preview\n@@ -1,1 +0,0 @@\n-old\n");
}
