/* Reflect's pure parts: the tool names and definitions, argument parsing, the turn schedule,
 * the system prompt and the builtin extractive answer. Nothing here does I/O. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/text.h"
#include "memory/reflect_int.h"

static const char *const tool_names[EG__RT_NTOOLS] = {
    "search_mental_models", "search_observations", "recall", "expand", "done",
};

const char *eg__reflect_tool_name(eg__rtool_t t)
{
    return t >= 0 && t < EG__RT_NTOOLS ? tool_names[t] : "unknown";
}

eg__rtool_t eg__reflect_tool_parse(const char *name)
{
    size_t n;

    if (!name)
        return EG__RT_UNKNOWN;
    if (!strncmp(name, "call=", 5))
        name += 5;
    if (!strncmp(name, "functions.", 10))
        name += 10;
    n = strlen(name);
    const char *junk = strstr(name, "<|");
    if (junk)
        n = (size_t)(junk - name);
    for (int t = 0; t < EG__RT_NTOOLS; t++)
        if (strlen(tool_names[t]) == n && !memcmp(tool_names[t], name, n))
            return (eg__rtool_t)t;
    return EG__RT_UNKNOWN;
}

int eg_reflect_max_iterations(eg_recall_budget_t b)
{
    switch (b) {
    case EG_RECALL_BUDGET_LOW:
        return EG_REFLECT_ITERATIONS_BASE / 2;
    case EG_RECALL_BUDGET_HIGH:
        return EG_REFLECT_ITERATIONS_BASE * 2;
    default:
        return EG_REFLECT_ITERATIONS_BASE;
    }
}

void eg_reflect_req_init(eg_reflect_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->query = "";
    r->budget = EG_RECALL_BUDGET_LOW;
    r->max_tokens = EG_REFLECT_MAX_TOKENS;
    r->tags_match = EG_TAGS_ANY;
}

/* ---- the turn schedule ---------------------------------------------------------------------- */

eg__rturn_t eg__reflect_turn(int it, int max_iter, bool has_mm, size_t ctx_tokens)
{
    static const eg__rtool_t order[] = {EG__RT_SEARCH_MENTAL_MODELS, EG__RT_SEARCH_OBSERVATIONS,
                                        EG__RT_RECALL};
    eg__rturn_t t = {EG_LLM_TOOLS_AUTO, EG__RT_UNKNOWN, false};
    int k = it - 1 + (has_mm ? 0 : 1); /* position in the forced order */

    if (it >= max_iter || ctx_tokens > EG_REFLECT_CONTEXT_TOKENS) {
        t.choice = EG_LLM_TOOLS_NAMED;
        t.named = EG__RT_DONE;
        t.final = true;
        return t;
    }
    if (k >= 0 && k < (int)(sizeof(order) / sizeof(order[0]))) {
        t.choice = EG_LLM_TOOLS_NAMED;
        t.named = order[k];
    }
    return t;
}

/* ---- tool definitions ----------------------------------------------------------------------- */

#define REASON_PROP                                                                                \
    "\"reason\":{\"type\":\"string\",\"description\":\"Why you are making this call: what you "    \
    "expect to learn and how it helps answer the question.\"}"

size_t eg__reflect_tools(eg_arena_t *a, bool has_mm, bool directives, eg_llm_tool_t *out)
{
    size_t n = 0;

    if (has_mm)
        out[n++] = (eg_llm_tool_t){
            "search_mental_models",
            "Search the bank's mental models: curated, up-to-date summaries written for recurring "
            "questions. The highest-quality source; check it first.",
            "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"description\":"
            "\"What to look for.\"},\"max_results\":{\"type\":\"integer\",\"minimum\":1,"
            "\"maximum\":50,\"default\":5}," REASON_PROP "},\"required\":[\"query\",\"reason\"]}",
        };
    out[n++] = (eg_llm_tool_t){
        "search_observations",
        "Search observations: knowledge consolidated from many facts (patterns, preferences, "
        "summaries), each with how many facts support it.",
        "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"description\":"
        "\"What to look for.\"},\"max_tokens\":{\"type\":\"integer\",\"minimum\":1,"
        "\"default\":5000}," REASON_PROP "},\"required\":[\"query\",\"reason\"]}",
    };
    out[n++] = (eg_llm_tool_t){
        "recall",
        "Recall raw facts (world knowledge and experiences) from memory: the ground truth, with "
        "dates. Use it for details the summaries lack or to verify them.",
        "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"description\":"
        "\"What to search for; rephrase to find indirect connections.\"},\"max_tokens\":{"
        "\"type\":\"integer\",\"minimum\":1,\"default\":2048},\"max_chunk_tokens\":{\"type\":"
        "\"integer\",\"minimum\":0,\"default\":1000}," REASON_PROP
        "},\"required\":[\"query\",\"reason\"]}",
    };
    out[n++] = (eg_llm_tool_t){
        "expand",
        "Expand memories to the source text they were extracted from: the chunk around each, or "
        "the whole document.",
        "{\"type\":\"object\",\"properties\":{\"memory_ids\":{\"type\":\"array\",\"items\":{"
        "\"type\":\"string\"},\"minItems\":1,\"description\":\"Ids of memories returned by "
        "recall or search_observations.\"},\"depth\":{\"type\":\"string\",\"enum\":[\"chunk\","
        "\"document\"],\"default\":\"chunk\"}," REASON_PROP
        "},\"required\":[\"memory_ids\",\"reason\"]}",
    };
    out[n++] = (eg_llm_tool_t){
        "done",
        directives ? "Finish with the final answer, the ids of the sources it is based on, and "
                     "how it complies with every directive."
                   : "Finish with the final answer and the ids of the sources it is based on.",
        eg_arena_printf(
            a,
            "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\",\"description\":"
            "\"The answer in markdown. Do not list ids in it.\"},\"memory_ids\":{\"type\":"
            "\"array\",\"items\":{\"type\":\"string\"},\"description\":\"Ids of the memories "
            "(from recall) the answer uses.\"},\"mental_model_ids\":{\"type\":\"array\","
            "\"items\":{\"type\":\"string\"}},\"observation_ids\":{\"type\":\"array\",\"items\":{"
            "\"type\":\"string\"}}%s},\"required\":[\"answer\"%s]}",
            directives ? ",\"directive_compliance\":{\"type\":\"string\",\"description\":\"How the "
                         "answer follows each directive.\"}"
                       : "",
            directives ? ",\"directive_compliance\"" : ""),
    };
    return n;
}

/* ---- argument parsing ----------------------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *fmt, const char *a1, const char *a2)
{
    snprintf(err, errlen, fmt, a1, a2);
    return EG_EINVAL;
}

/* A required non-empty string member. */
static bool req_str(const cJSON *o, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsString(v) || !v->valuestring[0])
        return false;
    *out = v->valuestring;
    return true;
}

/* An optional integer member in [min, max]; absent or null keep *out. */
static bool opt_int(const cJSON *o, const char *key, size_t min, size_t max, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)min || v->valuedouble > (double)max)
        return false;
    *out = (size_t)v->valuedouble;
    return true;
}

/* An optional list of strings (absent or null: empty). */
static bool opt_ids(eg_arena_t *a, const cJSON *o, const char *key, const char ***out, size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    const char **ids;

    *out = NULL;
    *n = 0;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsArray(v))
        return false;
    ids = eg_arena_alloc(a, ((size_t)cJSON_GetArraySize(v) + 1) * sizeof(*ids));
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e))
            return false;
        ids[(*n)++] = e->valuestring;
    }
    *out = ids;
    return true;
}

int eg__reflect_parse_args(eg_arena_t *a, const char *name, const char *json, bool directives,
                           eg__rargs_t *out, char *err, size_t errlen)
{
    cJSON *o;
    const char *tn;

    memset(out, 0, sizeof(*out));
    out->tool = eg__reflect_tool_parse(name);
    out->max_tokens = out->tool == EG__RT_RECALL ? EG_REFLECT_RECALL_TOKENS : EG_REFLECT_OBS_TOKENS;
    out->max_chunk_tokens = EG_REFLECT_RECALL_CHUNKS;
    out->max_results = EG_REFLECT_MM_RESULTS;
    o = cJSON_Parse(json && json[0] ? json : "{}");
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        out->input = cJSON_CreateObject();
        cJSON_AddStringToObject(out->input, "raw", json ? json : "");
        eg_arena_defer(a, (void (*)(void *))cJSON_Delete, out->input);
        return bad(err, errlen,
                   "Invalid arguments for %s: not a JSON object. Call the tool again with valid "
                   "JSON arguments.%s",
                   name ? name : "?", "");
    }
    out->input = o;
    eg_arena_defer(a, (void (*)(void *))cJSON_Delete, o);
    if (out->tool == EG__RT_UNKNOWN)
        return bad(err, errlen,
                   "Unknown tool: %s. Available tools: search_mental_models, "
                   "search_observations, recall, expand, done.%s",
                   name ? name : "?", "");
    tn = tool_names[out->tool];
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reason");
    if (cJSON_IsString(r) && r->valuestring[0])
        out->reason = r->valuestring;

    switch (out->tool) {
    case EG__RT_SEARCH_MENTAL_MODELS:
    case EG__RT_SEARCH_OBSERVATIONS:
    case EG__RT_RECALL:
        if (!req_str(o, "query", &out->query))
            return bad(err, errlen, "%s requires 'query' (a non-empty string).%s", tn, "");
        if (!out->reason)
            return bad(err, errlen, "%s requires 'reason' (why you are making this call).%s", tn,
                       "");
        if (!opt_int(o, "max_tokens", 1, 1000000, &out->max_tokens))
            return bad(err, errlen, "%s: 'max_tokens' must be a positive integer.%s", tn, "");
        if (!opt_int(o, "max_chunk_tokens", 0, 1000000, &out->max_chunk_tokens))
            return bad(err, errlen, "%s: 'max_chunk_tokens' must be an integer >= 0.%s", tn, "");
        if (!opt_int(o, "max_results", 1, 50, &out->max_results))
            return bad(err, errlen, "%s: 'max_results' must be an integer from 1 to 50.%s", tn, "");
        return 0;
    case EG__RT_EXPAND: {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "depth");

        if (!opt_ids(a, o, "memory_ids", &out->ids, &out->nids) || out->nids == 0)
            return bad(err, errlen, "%s requires 'memory_ids' (a non-empty list of ids).%s", tn,
                       "");
        if (out->nids > EG_REFLECT_EXPAND_IDS_MAX)
            return bad(err, errlen, "%s: at most 50 memory_ids per call.%s", tn, "");
        if (!out->reason)
            return bad(err, errlen, "%s requires 'reason' (why you are making this call).%s", tn,
                       "");
        if (d && !cJSON_IsNull(d)) {
            if (!cJSON_IsString(d) ||
                (strcmp(d->valuestring, "chunk") && strcmp(d->valuestring, "document")))
                return bad(err, errlen, "%s: 'depth' must be \"chunk\" or \"document\".%s", tn, "");
            out->document = !strcmp(d->valuestring, "document");
        }
        return 0;
    }
    case EG__RT_DONE:
        if (!req_str(o, "answer", &out->answer))
            return bad(err, errlen, "done requires 'answer' (a non-empty string).%s%s", "", "");
        if (!opt_ids(a, o, "memory_ids", &out->ids, &out->nids) ||
            !opt_ids(a, o, "mental_model_ids", &out->mm_ids, &out->nmm_ids) ||
            !opt_ids(a, o, "observation_ids", &out->obs_ids, &out->nobs_ids))
            return bad(err, errlen,
                       "done: memory_ids, mental_model_ids and observation_ids must be lists of "
                       "strings.%s%s",
                       "", "");
        {
            const cJSON *dc = cJSON_GetObjectItemCaseSensitive(o, "directive_compliance");

            if (cJSON_IsString(dc) && dc->valuestring[0])
                out->directive_compliance = dc->valuestring;
        }
        if (directives && !out->directive_compliance)
            return bad(err, errlen,
                       "done requires 'directive_compliance': state how the answer follows each "
                       "directive, then call done again.%s%s",
                       "", "");
        return 0;
    default:
        return EG_EINVAL;
    }
}

/* ---- the system prompt ---------------------------------------------------------------------- */

static void directives_block(eg_buf_t *b, const eg__rprompt_t *p, bool first)
{
    eg_buf_puts(b, first ? "## DIRECTIVES (MANDATORY)\n\nThese rules come before everything "
                           "else in this prompt. Follow every one of them in your answer, even "
                           "when the memories or the question pull the other way:\n\n"
                         : "## DIRECTIVES (REMINDER)\n\nBefore you call done, check your answer "
                           "against every directive once more:\n\n");
    for (size_t i = 0; i < p->ndirectives; i++)
        eg_buf_printf(b, "%zu. **%s**: %s\n", i + 1, p->directives[i].name,
                      p->directives[i].content);
    if (!first)
        eg_buf_puts(b, "\nYour done call must include directive_compliance: how the answer "
                       "follows each directive above.\n");
}

char *eg__reflect_system_prompt(eg_arena_t *a, const eg__rprompt_t *p)
{
    static const char *const budget_words[] = {
        "low: answer from the most direct evidence; a few searches are enough",
        "mid: check more than one source when the question warrants it",
        "high: explore deeply, with several phrasings of the question, to find indirect "
        "connections",
    };
    eg_buf_t b = EG_BUF_INIT;
    char *out;

    if (p->ndirectives) {
        directives_block(&b, p, true);
        eg_buf_puts(&b, "\n");
    }
    eg_buf_printf(&b,
                  "You are the reflection agent of the memory bank \"%s\". You answer the user's "
                  "question from what the bank remembers, searching it with tools, and reason "
                  "over what you find as the bank would.\n\n",
                  p->bank_name && p->bank_name[0] ? p->bank_name : "memory");
    if (p->mission && p->mission[0])
        eg_buf_printf(&b, "Mission: %s\n", p->mission);
    eg_buf_printf(&b, "Disposition: skepticism=%d, literalism=%d, empathy=%d\n", p->skepticism,
                  p->literalism, p->empathy);
    eg_buf_puts(&b,
                "(Each trait is 1 to 5. High skepticism questions weak or conflicting evidence; "
                "high literalism reads the question and the memories exactly as worded; high "
                "empathy weighs people's feelings and circumstances.)\n\n"
                "## How to search\n\n");
    if (p->has_mm)
        eg_buf_puts(&b, "1. search_mental_models: curated summaries, the best source. Check "
                        "them first.\n");
    eg_buf_printf(&b,
                  "%d. search_observations: knowledge consolidated from many facts.\n"
                  "%d. recall: the raw facts, the ground truth. Use it for specifics and to "
                  "verify summaries.\n"
                  "%d. expand: the source text around memories, when a fact needs its context.\n\n"
                  "Every search and expand call needs a short `reason`. Budget %s. You have at "
                  "most %d turns; the last one must call done.\n\n",
                  p->has_mm ? 2 : 1, p->has_mm ? 3 : 2, p->has_mm ? 4 : 3,
                  budget_words[p->budget <= EG_RECALL_BUDGET_HIGH ? p->budget : 0], p->max_iter);
    eg_buf_printf(&b,
                  "## Answering\n\n"
                  "When you have enough evidence, call done with the answer (markdown, at most "
                  "about %zu tokens) and the ids of the memories, mental models and observations "
                  "it is based on. Cite only ids that a tool returned. Use only what the memories "
                  "say: do not invent facts, and if they do not hold the answer, say so plainly. "
                  "Prefer newer information when memories conflict, and mention the conflict.\n",
                  p->max_tokens ? p->max_tokens : (size_t)EG_REFLECT_MAX_TOKENS);
    if (p->ndirectives) {
        eg_buf_puts(&b, "\n");
        directives_block(&b, p, false);
    }
    out = eg_arena_strndup(a, b.data ? b.data : "", b.len);
    eg_buf_free(&b);
    return out;
}

char *eg__reflect_structured_prompt(eg_arena_t *a, const char *answer, const char *schema)
{
    return eg_arena_printf(
        a,
        "Extract the information the JSON Schema below asks for from this "
        "answer and return it as one JSON object that satisfies the schema. "
        "Use the answer's actual content; for arrays return JSON arrays, not "
        "strings. Return only the JSON object.\n\nANSWER:\n\"\"\"\n%s\n\"\"\"\n\n"
        "JSON Schema:\n%s\n",
        answer, schema);
}

/* ---- the builtin answer ---------------------------------------------------------------------- */

/* The date a fact is about (occurred_start, else mentioned_at) as YYYY-MM-DD; false if none. */
static bool fact_date(const eg_reflect_fact_t *f, char out[EG_TEXT_ISO_MAX])
{
    int64_t t = f->occurred_start != EG_MEM_TIME_NONE ? f->occurred_start : f->mentioned_at;

    if (t == EG_MEM_TIME_NONE)
        return false;
    eg_text_format_iso(t, out);
    out[10] = '\0';
    return true;
}

char *eg__reflect_builtin_text(eg_arena_t *a, const char *query, const eg_reflect_fact_t *facts,
                               size_t n, const eg_reflect_mm_t *mms, size_t nmm, size_t max_tokens,
                               bool schema, size_t *shown)
{
    eg_buf_t b = EG_BUF_INIT;
    size_t used, k = 0;
    char *out;

    if (max_tokens == 0)
        max_tokens = EG_REFLECT_MAX_TOKENS;
    if (n == 0 && nmm == 0)
        eg_buf_printf(&b,
                      "I found no memories about \"%s\" in this bank. (This answer was produced "
                      "without a language model: no model is configured for reflect, so it can "
                      "only list stored memories, and none matched.)",
                      query);
    else
        eg_buf_printf(&b,
                      "This answer was produced without a language model (none is configured "
                      "for reflect), so it is not a synthesized answer: it lists what the bank "
                      "remembers that best matches \"%s\", most relevant first.\n",
                      query);
    used = eg_text_estimate_tokens(b.data, b.len);
    for (size_t i = 0; i < nmm; i++) {
        size_t len = strlen(mms[i].content), t;

        if (!len)
            continue;
        t = eg_text_estimate_tokens(mms[i].content, len) + 8;
        if (used + t > max_tokens)
            break;
        eg_buf_printf(&b, "\n**%s** (mental model):\n\n%s\n", mms[i].name, mms[i].content);
        used += t;
    }
    if (n)
        eg_buf_puts(&b, "\nMemories:\n\n");
    for (size_t i = 0; i < n && k < EG_REFLECT_BUILTIN_FACTS; i++) {
        char day[EG_TEXT_ISO_MAX];
        size_t before = b.len, t;

        eg_buf_printf(&b, "%zu. %s", k + 1, facts[i].text);
        if (fact_date(&facts[i], day))
            eg_buf_printf(&b, " (%s)", day);
        if (facts[i].type == EG_FACT_OBSERVATION)
            eg_buf_puts(&b, " [observation]");
        eg_buf_puts(&b, "\n");
        t = eg_text_estimate_tokens(b.data + before, b.len - before);
        if (used + t > max_tokens) {
            /* Stop at the first that does not fit, as recall's token fill does. */
            b.len = before;
            b.data[b.len] = '\0';
            break;
        }
        used += t;
        k++;
    }
    if (schema)
        eg_buf_puts(&b, "\nA response_schema needs a language model, so no structured output "
                        "was produced.\n");
    while (b.len && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    if (shown)
        *shown = k;
    out = eg_arena_strndup(a, b.data, b.len);
    eg_buf_free(&b);
    return out;
}

char *eg__reflect_fallback_text(eg_arena_t *a, const eg_reflect_fact_t *facts, size_t n,
                                size_t max_tokens)
{
    eg_buf_t b = EG_BUF_INIT;
    size_t used;
    char *out;

    if (max_tokens == 0)
        max_tokens = EG_REFLECT_MAX_TOKENS;
    eg_buf_puts(&b, n ? "The model did not give a final answer within its turns. These are the "
                        "memories it found, in the order it found them:\n"
                      : "The model did not give a final answer within its turns, and it found "
                        "no memories about the question.");
    used = eg_text_estimate_tokens(b.data, b.len);
    for (size_t i = 0; i < n && i < EG_REFLECT_BUILTIN_FACTS; i++) {
        char day[EG_TEXT_ISO_MAX];
        size_t before = b.len, t;

        eg_buf_printf(&b, "\n%zu. %s", i + 1, facts[i].text);
        if (fact_date(&facts[i], day))
            eg_buf_printf(&b, " (%s)", day);
        t = eg_text_estimate_tokens(b.data + before, b.len - before);
        if (used + t > max_tokens) {
            b.len = before;
            b.data[b.len] = '\0';
            break;
        }
        used += t;
    }
    out = eg_arena_strndup(a, b.data, b.len);
    eg_buf_free(&b);
    return out;
}

/* ---- facts ---------------------------------------------------------------------------------- */

void eg__reflect_fact_from_unit(eg_arena_t *a, const eg_mem_unit_t *u, eg_reflect_fact_t *f)
{
    f->id = eg_arena_strdup(a, u->id);
    f->text = eg_arena_strdup(a, u->text);
    f->context = eg_arena_strdup(a, u->context ? u->context : "");
    f->type = u->type;
    f->occurred_start = u->occurred_start;
    f->occurred_end = u->occurred_end;
    f->mentioned_at = u->mentioned_at;
}

static void add_time(cJSON *o, const char *key, int64_t us)
{
    char iso[EG_TEXT_ISO_MAX];

    if (us == EG_MEM_TIME_NONE)
        return;
    eg_text_format_iso(us, iso);
    cJSON_AddStringToObject(o, key, iso);
}

cJSON *eg__reflect_fact_json(const eg_reflect_fact_t *f)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", f->id);
    cJSON_AddStringToObject(o, "text", f->text);
    cJSON_AddStringToObject(o, "type", eg_fact_type_name(f->type));
    if (f->context && f->context[0])
        cJSON_AddStringToObject(o, "context", f->context);
    add_time(o, "occurred_start", f->occurred_start);
    add_time(o, "occurred_end", f->occurred_end);
    add_time(o, "mentioned_at", f->mentioned_at);
    return o;
}
