/* The LLM extractor: prompts and schema per mode, the lenient reading of model answers, and the
 * extractor over a scripted chat model (no HTTP). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/extract.h"
#include "engram/llm.h"
#include "engram/text.h"

static eg_arena_t A;

static void setup(void)
{
    eg_arena_init(&A);
}

static void teardown(void)
{
    eg_arena_destroy(&A);
}

TestSuite(extract_llm, .init = setup, .fini = teardown);

static int64_t iso(const char *s)
{
    int64_t us;
    cr_assert_eq(eg_text_parse_iso(s, strlen(s), &us), 0, "bad test time %s", s);
    return us;
}

static eg_extract_config_t cfg_of(eg_extract_mode_t mode, bool causal)
{
    eg_extract_config_t c;
    memset(&c, 0, sizeof(c));
    c.mode = mode;
    c.causal_links = causal;
    return c;
}

static eg_extract_input_t input(const char *text, int64_t ts, const eg_extract_config_t *cfg)
{
    eg_extract_input_t in;
    memset(&in, 0, sizeof(in));
    in.text = text;
    in.len = strlen(text);
    in.nchunks = 1;
    in.timestamp = ts;
    in.cfg = cfg;
    return in;
}

/* Parse answer (JSON text) for in; asserts it parses. */
static eg_extract_result_t parse(const eg_extract_input_t *in, const char *answer)
{
    eg_extract_result_t r;
    cJSON *j = cJSON_Parse(answer);
    cr_assert_not_null(j, "bad test JSON %s", answer);
    cr_assert_eq(eg_extract_llm_parse(&A, in, j, &r), 0);
    cJSON_Delete(j);
    return r;
}

/* ---- prompts and schema -----------------------------------------------------------------------
 */

Test(extract_llm, system_prompt_per_mode)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    c.mission = "Only retain facts about the user's travel plans.";
    char *p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "SELECTIVE"));
    cr_assert(strstr(p, "FOCUS"));
    cr_assert(strstr(p, c.mission));
    cr_assert(strstr(p, "CAUSAL RELATIONSHIPS"));
    cr_assert(strstr(p, "Event Date"));
    cr_assert(strstr(p, "language of the input"));

    c.causal_links = false;
    c.mission = NULL;
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert_null(strstr(p, "CAUSAL RELATIONSHIPS"));
    cr_assert_null(strstr(p, "FOCUS"));

    c.mode = EG_EXTRACT_VERBOSE;
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "EXTREMELY detailed"));
    cr_assert_null(strstr(p, "SELECTIVITY"));

    /* custom: the instructions replace the concise guidelines; without any, it is concise */
    c.mode = EG_EXTRACT_CUSTOM;
    c.custom_instructions = "Extract only medication changes.";
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "Extract only medication changes."));
    cr_assert_null(strstr(p, "SELECTIVITY"));
    c.custom_instructions = "";
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "SELECTIVITY"));

    c.mode = EG_EXTRACT_VERBATIM;
    c.causal_links = true;
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "VERBATIM"));
    cr_assert_null(strstr(p, "CAUSAL RELATIONSHIPS"));

    c.mode = EG_EXTRACT_CONCISE;
    c.output_language = "French";
    c.no_free_form_entities = true;
    p = eg_extract_llm_system_prompt(&A, &c);
    cr_assert(strstr(p, "in French"));
    cr_assert(strstr(p, "leave entities empty"));
}

Test(extract_llm, user_message)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    eg_extract_input_t in =
        input("Alice moved to Berlin yesterday.", iso("2024-06-10T09:30:00Z"), &c);
    const char *ents[] = {"Alice", "Berlin"};
    in.chunk_index = 1;
    in.nchunks = 3;
    in.context = "a chat with Alice";
    in.entities = ents;
    in.nentities = 2;
    cJSON *meta = cJSON_Parse("{\"source\":\"slack\",\"n\":3,\"channel\":\"#family\"}");
    in.metadata = meta;
    char *m = eg_extract_llm_user_message(&A, &in);
    cr_assert(strstr(m, "Context: a chat with Alice\nMetadata:\n  source: slack\n  channel: "
                        "#family\nKnown entities:"),
              "%s", m);
    cJSON_Delete(meta);
    in.metadata = NULL;
    cr_assert(strstr(m, "Chunk: 2/3\n"), "%s", m);
    cr_assert(strstr(m, "Event Date: Monday, June 10, 2024 (2024-06-10T09:30:00+00:00)\n"), "%s",
              m);
    cr_assert(strstr(m, "Context: a chat with Alice\n"), "%s", m);
    cr_assert(strstr(m, "Known entities: Alice, Berlin\n"), "%s", m);
    cr_assert(strstr(m, "Text:\nAlice moved to Berlin yesterday."), "%s", m);

    in.timestamp = EG_MEM_TIME_NONE;
    in.context = NULL;
    in.nentities = 0;
    m = eg_extract_llm_user_message(&A, &in);
    cr_assert(strstr(m, "Event Date: Unknown\nContext: none\n\nText:\n"), "%s", m);

    /* a date before 1970 gets the right weekday */
    in.timestamp = iso("1969-12-31T23:00:00Z");
    m = eg_extract_llm_user_message(&A, &in);
    cr_assert(strstr(m, "Wednesday, December 31, 1969"), "%s", m);
}

Test(extract_llm, schema)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    cJSON *s = cJSON_Parse(eg_extract_llm_schema(&A, &c));
    cr_assert_not_null(s);
    const cJSON *facts = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "properties"), "facts");
    cr_assert_str_eq(cJSON_GetObjectItem(facts, "type")->valuestring, "array");
    const cJSON *item = cJSON_GetObjectItem(facts, "items");
    const cJSON *props = cJSON_GetObjectItem(item, "properties");
    static const char *const names[] = {"what",      "when",      "where",           "who",
                                        "why",       "fact_kind", "occurred_start",  "occurred_end",
                                        "fact_type", "entities",  "causal_relations"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_not_null(cJSON_GetObjectItem(props, names[i]), "%s missing", names[i]);
    const cJSON *ft = cJSON_GetObjectItem(cJSON_GetObjectItem(props, "fact_type"), "enum");
    cr_assert_eq(cJSON_GetArraySize(ft), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(ft, 1)->valuestring, "assistant");
    const cJSON *rel = cJSON_GetObjectItem(cJSON_GetObjectItem(props, "causal_relations"), "items");
    cr_assert_str_eq(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(rel, "properties"), "target_index"), "type")
            ->valuestring,
        "integer");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(item, "required")), 6);
    cJSON_Delete(s);

    c.causal_links = false;
    s = cJSON_Parse(eg_extract_llm_schema(&A, &c));
    props = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "properties"), "facts"),
                            "items"),
        "properties");
    cr_assert_null(cJSON_GetObjectItem(props, "causal_relations"));
    cJSON_Delete(s);

    c = cfg_of(EG_EXTRACT_VERBATIM, true);
    s = cJSON_Parse(eg_extract_llm_schema(&A, &c));
    item = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "properties"), "facts"),
                               "items");
    props = cJSON_GetObjectItem(item, "properties");
    cr_assert_null(cJSON_GetObjectItem(props, "what"));
    cr_assert_null(cJSON_GetObjectItem(props, "why"));
    cr_assert_null(cJSON_GetObjectItem(props, "causal_relations"));
    cr_assert_not_null(cJSON_GetObjectItem(props, "entities"));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(item, "required")), 4);
    cJSON_Delete(s);
}

/* ---- reading answers --------------------------------------------------------------------------
 */

Test(extract_llm, valid_facts_text_types_dates)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r = parse(
        &in, "{\"facts\":["
             "{\"what\":\"Alice lost her job\",\"when\":\"June 3, 2024\",\"where\":\"Berlin\","
             "\"who\":\"Alice (user's sister)\",\"why\":\"the startup folded\","
             "\"fact_kind\":\"event\",\"occurred_start\":\"2024-06-03\",\"occurred_end\":null,"
             "\"fact_type\":\"world\",\"entities\":[\"Alice\",\"Berlin\"]},"
             "{\"what\":\"The assistant suggested a CV template\",\"when\":\"N/A\","
             "\"where\":\"N/A\",\"who\":\"n/a\",\"why\":\"\",\"fact_kind\":\"conversation\","
             "\"occurred_start\":\"2024-06-10\",\"fact_type\":\"assistant\","
             "\"entities\":[\"CV\"],"
             "\"causal_relations\":[{\"target_index\":0,\"relation_type\":\"caused_by\"}]}]}");
    cr_assert_eq(r.nfacts, 2);
    cr_assert_str_eq(r.facts[0].text, "Alice lost her job | When: June 3, 2024 | Involving: Alice "
                                      "(user's sister) | the startup folded");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);
    cr_assert_eq(r.facts[0].occurred_start, iso("2024-06-03"));
    cr_assert_eq(r.facts[0].occurred_end, iso("2024-06-03")); /* a point event */
    cr_assert_eq(r.facts[0].nentities, 2);
    cr_assert_str_eq(r.facts[0].entities[1], "Berlin");
    cr_assert_eq(r.facts[0].ncauses, 0);

    cr_assert_str_eq(r.facts[1].text, "The assistant suggested a CV template");
    cr_assert_eq(r.facts[1].type, EG_FACT_EXPERIENCE);
    /* a conversation fact is not dated, whatever the model put in occurred_start */
    cr_assert_eq(r.facts[1].occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[1].occurred_end, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[1].ncauses, 1);
    cr_assert_eq(r.facts[1].causes[0], 0);
    cr_assert_eq(r.usage.input_tokens, 0);
    cr_assert_null(r.error);
}

Test(extract_llm, malformed_fields)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r = parse(
        &in, "{\"facts\":["
             "\"just a string\","                            /* 0: not an object */
             "{\"when\":\"today\",\"fact_type\":\"world\"}," /* 1: no what */
             "{\"what\":42,\"fact_type\":\"world\"},"        /* 2: what not a string */
             "{\"what\":\"   \"},"                           /* 3: blank what */
             "{\"what\":\"N/A\"},"                           /* 4: N/A what */
             "{\"what\":\" Bob adopted a dog \",\"when\":7,\"who\":[\"Bob\"],\"why\":null,"
             "\"fact_type\":\"opinion\",\"fact_kind\":\"event\",\"occurred_start\":\"not a "
             "date\",\"occurred_end\":12,"
             "\"entities\":\"Bob\"}," /* 5 -> 0 */
             "{\"what\":\"Bob named the dog Rex\",\"fact_type\":17,\"fact_kind\":\"event\","
             "\"occurred_start\":\"2024-06-08T10:00:00Z\",\"occurred_end\":\"2024-06-01\","
             "\"entities\":[\"Rex\",\"rex\",\" REX \",\"\",3,{\"text\":\"Bob\"},{\"name\":\"x\"},"
             "{\"text\":\"bob\"}],"
             "\"causal_relations\":[{\"target_index\":5,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":6,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":9,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":1,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":-1,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":0.5,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":\"5\",\"relation_type\":\"caused_by\"},"
             "{\"target_index\":5,\"relation_type\":\"enables\"},"
             "{\"target_index\":5},"
             "7]}," /* 6 -> 1 */
             "{\"what\":\"Rex chewed the sofa\",\"fact_type\":\"world\","
             "\"causal_relations\":[{\"target_index\":6,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":6,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":5,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":0,\"relation_type\":\"caused_by\"}]}," /* 7 -> 2 */
             "{\"what\":\"Too many causes\",\"fact_type\":\"fact_kind swapped\","
             "\"fact_kind\":\"assistant\",\"causal_relations\":["
             "{\"target_index\":5,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":6,\"relation_type\":\"caused_by\"},"
             "{\"target_index\":7,\"relation_type\":\"caused_by\"}]}" /* 8 -> 3 */
             "]}");
    cr_assert_eq(r.nfacts, 4);

    /* wrong-typed when/who/why are absent; an unknown fact_type is world */
    cr_assert_str_eq(r.facts[0].text, "Bob adopted a dog");
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);
    /* an event whose start is no date and whose text has none stays undated */
    cr_assert_eq(r.facts[0].occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[0].nentities, 0); /* entities not a list */

    cr_assert_eq(r.facts[1].type, EG_FACT_WORLD);
    cr_assert_eq(r.facts[1].occurred_start, iso("2024-06-08T10:00:00Z"));
    cr_assert_eq(r.facts[1].occurred_end, iso("2024-06-08T10:00:00Z")); /* end before start */
    cr_assert_eq(r.facts[1].nentities, 2); /* Rex, Bob: duplicates, blanks and junk dropped */
    cr_assert_str_eq(r.facts[1].entities[0], "Rex");
    cr_assert_str_eq(r.facts[1].entities[1], "Bob");
    /* only raw 5 (kept as 0) survives: 6 is itself, 9 is ahead, 1 was dropped, the rest bad */
    cr_assert_eq(r.facts[1].ncauses, 1);
    cr_assert_eq(r.facts[1].causes[0], 0);

    /* duplicates collapse; at most two */
    cr_assert_eq(r.facts[2].ncauses, 2);
    cr_assert_eq(r.facts[2].causes[0], 1);
    cr_assert_eq(r.facts[2].causes[1], 0);

    cr_assert_eq(r.facts[3].type, EG_FACT_EXPERIENCE); /* fact_kind "assistant" */
    cr_assert_eq(r.facts[3].ncauses, 2);
    cr_assert_eq(r.facts[3].causes[0], 0);
    cr_assert_eq(r.facts[3].causes[1], 1);
}

Test(extract_llm, causal_links_off)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, false);
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r =
        parse(&in, "{\"facts\":[{\"what\":\"A\"},{\"what\":\"B\",\"causal_relations\":"
                   "[{\"target_index\":0,\"relation_type\":\"caused_by\"}]}]}");
    cr_assert_eq(r.nfacts, 2);
    cr_assert_eq(r.facts[1].ncauses, 0);
}

Test(extract_llm, dates_relative_and_unset)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    /* an event without a usable start takes the first date expression of its own text */
    eg_extract_result_t r =
        parse(&in, "{\"facts\":[{\"what\":\"User went hiking yesterday\",\"fact_kind\":\"event\"},"
                   "{\"what\":\"User flew home\",\"fact_kind\":\"event\","
                   "\"occurred_start\":\"June 5, 2024\"},"
                   "{\"what\":\"User rested\",\"fact_kind\":\"event\","
                   "\"occurred_start\":\"2024-06-07T08:00:00+02:00\","
                   "\"occurred_end\":\"2024-06-07T20:00:00+02:00\"}]}");
    cr_assert_eq(r.nfacts, 3);
    cr_assert_eq(r.facts[0].occurred_start, iso("2024-06-09"));
    cr_assert_eq(r.facts[0].occurred_end, iso("2024-06-09"));
    cr_assert_eq(r.facts[1].occurred_start, iso("2024-06-05"));
    cr_assert_eq(r.facts[2].occurred_start, iso("2024-06-07T06:00:00Z"));
    cr_assert_eq(r.facts[2].occurred_end, iso("2024-06-07T18:00:00Z"));

    /* no timestamp: only ISO dates count, nothing relative is resolved */
    in.timestamp = EG_MEM_TIME_NONE;
    r = parse(&in, "{\"facts\":[{\"what\":\"User went hiking yesterday\",\"fact_kind\":\"event\"},"
                   "{\"what\":\"User flew\",\"fact_kind\":\"event\","
                   "\"occurred_start\":\"2024-06-05\"}]}");
    cr_assert_eq(r.facts[0].occurred_start, EG_MEM_TIME_NONE);
    cr_assert_eq(r.facts[1].occurred_start, iso("2024-06-05"));
}

Test(extract_llm, free_form_entities_off)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    c.no_free_form_entities = true;
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r = parse(&in, "{\"facts\":[{\"what\":\"A met B\",\"entities\":[\"A\"]}]}");
    cr_assert_eq(r.nfacts, 1);
    cr_assert_eq(r.facts[0].nentities, 0);
}

Test(extract_llm, verbatim)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_VERBATIM, true);
    const char *text = "Alice met Bob in Paris on 2022-06-05.";
    eg_extract_input_t in = input(text, iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r = parse(
        &in,
        "{\"facts\":[{\"when\":\"June 5, 2022\",\"where\":\"Paris\",\"who\":\"Alice, Bob\","
        "\"fact_kind\":\"event\",\"occurred_start\":\"2022-06-05\",\"fact_type\":\"assistant\","
        "\"entities\":[\"Alice\",\"Bob\"]},"
        "{\"fact_type\":\"world\",\"entities\":[\"bob\",\"Paris\"]}]}");
    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, text);
    cr_assert_eq(r.facts[0].type, EG_FACT_EXPERIENCE);
    cr_assert_eq(r.facts[0].occurred_start, iso("2022-06-05"));
    cr_assert_eq(r.facts[0].nentities, 3);
    cr_assert_str_eq(r.facts[0].entities[2], "Paris");

    /* no entry: the chunk is still the fact */
    r = parse(&in, "{\"facts\":[]}");
    cr_assert_eq(r.nfacts, 1);
    cr_assert_str_eq(r.facts[0].text, text);
    cr_assert_eq(r.facts[0].type, EG_FACT_WORLD);
    cr_assert_eq(r.facts[0].occurred_start, EG_MEM_TIME_NONE);
}

Test(extract_llm, not_an_answer)
{
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    eg_extract_input_t in = input("...", iso("2024-06-10T09:00:00Z"), &c);
    eg_extract_result_t r;
    cJSON *j = cJSON_Parse("[1,2]");
    cr_assert_eq(eg_extract_llm_parse(&A, &in, j, &r), EG_EUPSTREAM);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"facts\":\"none\"}");
    cr_assert_eq(eg_extract_llm_parse(&A, &in, j, &r), EG_EUPSTREAM);
    cJSON_Delete(j);
    cr_assert_eq(eg_extract_llm_parse(&A, &in, NULL, &r), EG_EUPSTREAM);
    r = parse(&in, "{\"other\":1}");
    cr_assert_eq(r.nfacts, 0);
}

/* ---- the extractor over a scripted model ---------------------------------------------------- */

typedef struct {
    int calls;
    eg_llm_req_t req; /* the last request (pointers valid until the extraction completes) */
    char *system, *user;
    int chat_rc; /* returned by chat (no done) when non-zero */
    int err;     /* done's err */
    const char *answer;
    const char *error;
    size_t cut_over;  /* > 0: a text longer than this is "cut at the token limit" */
    size_t texts[16]; /* lengths of the texts asked about, in order */
} fake_t;

static fake_t F;

static int fake_chat(eg_llm_t *llm, const eg_llm_req_t *req, eg_llm_done_fn done, void *udata,
                     eg_llm_call_t **out)
{
    eg_llm_resp_t resp;

    (void)llm;
    (void)out;
    F.calls++;
    if (F.chat_rc)
        return F.chat_rc;
    F.req = *req;
    cr_assert_eq(req->nmsgs, 2);
    free(F.system);
    free(F.user);
    F.system = strdup(req->msgs[0].content);
    F.user = strdup(req->msgs[1].content);
    memset(&resp, 0, sizeof(resp));
    resp.usage.input_tokens = 120;
    resp.usage.output_tokens = 30;
    resp.usage.total_tokens = 150;
    resp.error = F.error;
    resp.finish_reason = "stop";
    int err = F.err;
    const char *answer = F.answer;
    char buf[256];
    if (F.cut_over) {
        const char *text = strstr(req->msgs[1].content, "\n\nText:\n") + 8;
        size_t len = strlen(text);
        if (F.calls <= 16)
            F.texts[F.calls - 1] = len;
        if (len > F.cut_over) {
            err = EG_EINVAL;
            resp.finish_reason = "length";
            resp.error = "the answer stayed invalid after a repair";
            answer = NULL;
        } else {
            snprintf(buf, sizeof(buf),
                     "{\"facts\":[{\"what\":\"piece of %zu\"},{\"what\":\"%.12s\","
                     "\"causal_relations\":[{\"target_index\":0,\"relation_type\":"
                     "\"caused_by\"}]}]}",
                     len, text);
            answer = buf;
        }
    }
    cJSON *j = answer ? cJSON_Parse(answer) : NULL;
    resp.json = j;
    resp.content = answer ? answer : "";
    resp.content_len = strlen(resp.content);
    /* A real provider calls done on a later loop turn; calling it here is enough for the
     * extractor, which owns no loop state. */
    done(udata, err, &resp);
    cJSON_Delete(j);
    return 0;
}

static eg_llm_t fake_llm = {.provider = "fake", .model = "fake-model", .chat = fake_chat};

typedef struct {
    int calls, status;
    eg_extract_result_t res;
    bool has_res;
} got_t;

static void on_done(eg_extractor_t *x, int status, const eg_extract_result_t *res, void *udata)
{
    got_t *g = udata;
    (void)x;
    g->calls++;
    g->status = status;
    g->has_res = res != NULL;
    if (res)
        g->res = *res;
}

static void reset_fake(void)
{
    free(F.system);
    free(F.user);
    memset(&F, 0, sizeof(F));
}

Test(extract_llm, extractor_call)
{
    eg_extractor_t *x = eg_extract_llm_new(&fake_llm);
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    c.mission = "Retain the user's pets.";
    eg_extract_input_t in = input("Bob adopted Rex.", iso("2024-06-10T09:00:00Z"), &c);
    got_t g = {0};

    reset_fake();
    F.answer = "{\"facts\":[{\"what\":\"Bob adopted Rex\",\"fact_type\":\"world\","
               "\"entities\":[\"Bob\",\"Rex\"]}]}";
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(F.calls, 1);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.res.nfacts, 1);
    cr_assert_str_eq(g.res.facts[0].text, "Bob adopted Rex");
    cr_assert_eq(g.res.usage.input_tokens, 120);
    cr_assert_eq(g.res.usage.total_tokens, 150);
    cr_assert_not_null(F.req.schema);
    cr_assert_str_eq(F.req.schema_name, "facts");
    cr_assert_float_eq(F.req.temperature, 0.1, 1e-9);
    cr_assert(strstr(F.system, "Retain the user's pets."));
    cr_assert(strstr(F.user, "Bob adopted Rex."));

    /* a model error: the callback's error with the provider's reason and the usage spent */
    reset_fake();
    memset(&g, 0, sizeof(g));
    F.err = EG_EUPSTREAM;
    F.error = "HTTP 500 from the model server";
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    cr_assert(g.has_res);
    cr_assert_str_eq(g.res.error, "fact extraction failed: HTTP 500 from the model server");
    cr_assert_eq(g.res.nfacts, 0);
    cr_assert_eq(g.res.usage.input_tokens, 120);

    /* provider errors that are not the client's become EG_EUPSTREAM; a timeout stays */
    reset_fake();
    F.err = EG_EAUTH;
    F.error = "401 Unauthorized";
    eg_extract_run(x, &A, &in, on_done, &g);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    reset_fake();
    F.err = EG_EINVAL;
    eg_extract_run(x, &A, &in, on_done, &g);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    cr_assert_str_eq(g.res.error, "fact extraction failed: invalid request");
    reset_fake();
    F.err = EG_EUPTIMEOUT;
    eg_extract_run(x, &A, &in, on_done, &g);
    cr_assert_eq(g.status, EG_EUPTIMEOUT);

    /* an answer that is not an object with facts */
    reset_fake();
    F.answer = "[]";
    eg_extract_run(x, &A, &in, on_done, &g);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    cr_assert(strstr(g.res.error, "facts"));

    /* chat refusing the call at once: still one completion, with a reason */
    reset_fake();
    memset(&g, 0, sizeof(g));
    F.chat_rc = EG_EBUSY;
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    cr_assert_not_null(g.res.error);

    reset_fake();
    eg_extract_destroy(x);
}

Test(extract_llm, extractor_chunks_mode_makes_no_call)
{
    eg_extractor_t *x = eg_extract_llm_new(&fake_llm);
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CHUNKS, true);
    eg_extract_input_t in = input("Alice met Bob.", iso("2024-06-10T09:00:00Z"), &c);
    got_t g = {0};

    reset_fake();
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(F.calls, 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.res.nfacts, 1);
    cr_assert_str_eq(g.res.facts[0].text, "Alice met Bob.");
    cr_assert_eq(g.res.facts[0].type, EG_FACT_WORLD);
    cr_assert_eq(g.res.facts[0].nentities, 0);
    cr_assert_eq(g.res.usage.total_tokens, 0);
    eg_extract_destroy(x);
    cr_assert_null(eg_extract_llm_new(NULL));
}

/* An answer cut at the token limit: the chunk is cut at a sentence end within 20% of its middle
 * (the last one there, as Hindsight's rfind) and each half extracted, recursively (Hindsight's
 * auto-split); the facts are concatenated with their causal targets moved. */
Test(extract_llm, extractor_splits_a_chunk_whose_answer_was_cut)
{
    eg_extractor_t *x = eg_extract_llm_new(&fake_llm);
    eg_extract_config_t c = cfg_of(EG_EXTRACT_CONCISE, true);
    char text[1200];
    size_t n = 0;
    got_t g = {0};

    /* 20 sentences of 49 bytes, a space between: 999 bytes */
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "%sSentence %02d is here with some filler words, okay.", i ? " " : "",
                              i);
    cr_assert_eq(n, 999);
    eg_extract_input_t in = input(text, iso("2024-06-10T09:00:00Z"), &c);

    reset_fake();
    F.cut_over = 350;
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, 0, "%s", g.res.error ? g.res.error : "");
    cr_assert_eq(F.texts[0], 999);
    /* 999 -> 649 + 349; 649 -> 449 + 199; 449 -> 299 + 149 */
    size_t want[] = {299, 149, 199, 349};
    cr_assert_eq(g.res.nfacts, 2 * 4);
    cr_assert_eq(F.calls, 4 + 3); /* each piece answered, plus the three that were cut */
    for (size_t i = 0; i < 4; i++) {
        size_t len = 0;
        cr_assert_eq(sscanf(g.res.facts[2 * i].text, "piece of %zu", &len), 1);
        cr_assert_eq(len, want[i], "piece %zu: %zu", i, len);
        cr_assert_eq(strncmp(g.res.facts[2 * i + 1].text, "Sentence ", 9), 0, "%s",
                     g.res.facts[2 * i + 1].text);
        cr_assert_eq(g.res.facts[2 * i + 1].ncauses, 1);
        cr_assert_eq(g.res.facts[2 * i + 1].causes[0], 2 * i);
    }
    cr_assert_str_eq(g.res.facts[1].text, "Sentence 00");
    cr_assert_str_eq(g.res.facts[7].text, "Sentence 13");
    cr_assert_eq(g.res.usage.input_tokens, 7 * 120);

    /* a piece that cannot be split again (depth 3, or under 400 bytes) fails the extraction with
     * the provider's reason: 999 -> 649 -> 449 -> 299, cut */
    reset_fake();
    memset(&g, 0, sizeof(g));
    F.cut_over = 100;
    cr_assert_eq(eg_extract_run(x, &A, &in, on_done, &g), 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, EG_EUPSTREAM);
    cr_assert_str_eq(g.res.error,
                     "fact extraction failed: the answer stayed invalid after a repair");
    cr_assert_eq(F.calls, 4);
    cr_assert_eq(g.res.usage.input_tokens, 4 * 120);
    reset_fake();
    eg_extract_destroy(x);
}
