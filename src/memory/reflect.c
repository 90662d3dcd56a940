/* Reflect: the entry point, the agent loop over a chat model and the builtin extractive path.
 *
 * A run reads the bank (profile and retrieval switches; an unknown bank has the defaults and is
 * not created), then either path. The loop is a conversation: system prompt and question, then
 * per model turn one chat call with the tools (tool_choice from eg__reflect_turn), whose tool
 * calls are run one after the other and answered as tool messages, until done is accepted. The
 * run holds exactly one thing in flight at a time (a store read, a model call or a tool), so its
 * state needs no locking and a timeout only has to wait for that one thing: it answers at once
 * with EG_EUPTIMEOUT, cancels a model call, and the run is freed when the thing in flight
 * returns. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/directives.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/text.h"
#include "engram/util.h"
#include "memory/reflect_int.h"

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* s without leading and trailing whitespace, in the arena. */
static char *trim_dup(eg_arena_t *a, const char *s)
{
    const char *e = s + strlen(s);

    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    return eg_arena_strndup(a, s, (size_t)(e - s));
}

/* ---- growing arrays in the arena ------------------------------------------------------------ */

#define GROW(a, v, n, cap)                                                                         \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            size_t c_ = (cap) ? (cap)*2 : 16;                                                      \
            void *p_ = eg_arena_alloc((a), c_ * sizeof(*(v)));                                     \
            if (n)                                                                                 \
                memcpy(p_, (v), (n) * sizeof(*(v)));                                               \
            (v) = p_;                                                                              \
            (cap) = c_;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- ending a run --------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    eg__reflect_t *s = h->data;

    eg_arena_destroy(&s->arena);
    free(s);
}

/* Free the run once nothing is in flight and the caller has its answer. */
static void release(eg__reflect_t *s)
{
    if (s->closing || s->busy || !s->answered)
        return;
    s->closing = true;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void count_types(const eg__rfacts_t *fs, size_t out[EG_FACT_NTYPES])
{
    for (size_t i = 0; i < fs->n; i++)
        if (fs->v[i].type < EG_FACT_NTYPES)
            out[fs->v[i].type]++;
}

static void deliver(eg__reflect_t *s, int err)
{
    eg_reflect_result_t res;

    if (s->answered)
        return;
    s->answered = true;
    uv_timer_stop(&s->timer);
    memset(&res, 0, sizeof(res));
    if (err == 0) {
        res.text = s->answer ? s->answer : "";
        res.structured_output = s->structured;
        res.llm = s->llm != NULL;
        res.facts = s->used.v;
        res.nfacts = s->used.n;
        res.mental_models = s->used_mm;
        res.nmental_models = s->nused_mm;
        res.directives = s->llm ? s->dirs : NULL;
        res.ndirectives = s->llm ? s->ndirs : 0;
        res.usage = s->usage;
        res.tool_calls = s->tcalls;
        res.ntool_calls = s->ntcalls;
        res.llm_calls = s->lcalls;
        res.nllm_calls = s->nlcalls;
        res.iterations = s->it;
        count_types(&s->seen_facts, res.retrieved);
        count_types(&s->seen_obs, res.retrieved);
        count_types(&s->used, res.used);
        res.duration_ms = now_ms() - s->t0;
    }
    s->cb(s->udata, err, err == 0 ? &res : NULL);
    release(s);
}

static void on_timeout(uv_timer_t *t)
{
    eg__reflect_t *s = t->data;

    eg_log_warn("reflect on bank %s timed out after %llu ms", s->bank,
                (unsigned long long)(now_ms() - s->t0));
    if (s->call && s->llm)
        eg_llm_cancel(s->llm, s->call);
    deliver(s, EG_EUPTIMEOUT);
}

/* ---- the builtin path ----------------------------------------------------------------------- */

static void on_builtin_facts(eg__reflect_t *s, int err, const eg_reflect_fact_t *facts, size_t n)
{
    size_t shown = 0;

    s->busy = false;
    if (s->answered) {
        release(s);
        return;
    }
    if (err) {
        deliver(s, err);
        return;
    }
    s->answer = eg__reflect_builtin_text(&s->arena, s->req.query, facts, n, s->used_mm, s->nused_mm,
                                         s->req.max_tokens, s->req.response_schema != NULL, &shown);
    for (size_t i = 0; i < n; i++) {
        eg__rfacts_add(&s->arena,
                       facts[i].type == EG_FACT_OBSERVATION ? &s->seen_obs : &s->seen_facts,
                       &facts[i]);
        if (i < shown)
            eg__rfacts_add(&s->arena, &s->used, &facts[i]);
    }
    deliver(s, 0);
}

static void builtin_recall(eg__reflect_t *s)
{
    int rc;

    s->busy = true;
    rc = eg__reflect_builtin_recall(s, on_builtin_facts);
    if (rc)
        on_builtin_facts(s, rc, NULL, 0);
}

static void on_builtin_mms(eg__reflect_t *s, const eg_reflect_mm_t *mms, size_t n)
{
    s->busy = false;
    if (s->answered) {
        release(s);
        return;
    }
    s->used_mm = (eg_reflect_mm_t *)mms;
    s->nused_mm = n;
    builtin_recall(s);
}

static void builtin(eg__reflect_t *s)
{
    if (!s->req.exclude_mental_models) {
        s->busy = true;
        if (eg__reflect_builtin_mms(s, on_builtin_mms) == 0)
            return;
        s->busy = false;
    }
    builtin_recall(s);
}

/* ---- the conversation ----------------------------------------------------------------------- */

static void push_msg(eg__reflect_t *s, eg_llm_msg_t m)
{
    GROW(&s->arena, s->msgs, s->nmsgs, s->capmsgs);
    s->msgs[s->nmsgs++] = m;
    if (m.content)
        s->ctx_tokens += eg_text_estimate_tokens(m.content, strlen(m.content));
    for (size_t i = 0; i < m.ntool_calls; i++)
        s->ctx_tokens +=
            eg_text_estimate_tokens(m.tool_calls[i].arguments, strlen(m.tool_calls[i].arguments)) +
            8;
}

static void trace_llm(eg__reflect_t *s, const char *scope, uint64_t t0)
{
    GROW(&s->arena, s->lcalls, s->nlcalls, s->caplcalls);
    s->lcalls[s->nlcalls++] = (eg_reflect_llm_call_t){scope, now_ms() - t0};
}

/* Record a tool call and answer it in the conversation; output is adopted. */
static void tool_answer(eg__reflect_t *s, const eg_llm_tool_call_t *tc, cJSON *output, size_t count,
                        uint64_t duration_ms)
{
    char *text = cJSON_PrintUnformatted(output);
    eg_reflect_tool_call_t *t;

    eg_arena_defer(&s->arena, (void (*)(void *))cJSON_Delete, output);
    GROW(&s->arena, s->tcalls, s->ntcalls, s->captcalls);
    t = &s->tcalls[s->ntcalls++];
    t->tool = s->args.tool != EG__RT_UNKNOWN ? eg__reflect_tool_name(s->args.tool)
                                             : eg_arena_strdup(&s->arena, tc->name);
    t->reason = s->args.reason;
    t->input = s->args.input;
    t->output = output;
    t->duration_ms = duration_ms;
    t->iteration = s->it;
    t->result_count = count;
    push_msg(s, (eg_llm_msg_t){.role = EG_LLM_TOOL,
                               .content = eg_arena_strdup(&s->arena, text ? text : "{}"),
                               .tool_call_id = tc->id});
    cJSON_free(text);
}

static void next_turn(eg__reflect_t *s);
static void next_call(eg__reflect_t *s);
static void finish_answer(eg__reflect_t *s);

/* The model ended without a usable done: answer with what it found. */
static void fallback(eg__reflect_t *s, const char *content)
{
    if (content && content[0])
        s->answer = content;
    else
        s->answer = eg__reflect_fallback_text(&s->arena, s->seen_facts.v, s->seen_facts.n,
                                              s->req.max_tokens);
    finish_answer(s);
}

static void cite(eg__reflect_t *s, const char *const *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const eg_reflect_fact_t *f = eg__rfacts_find(&s->seen_facts, ids[i]);

        if (!f)
            f = eg__rfacts_find(&s->seen_obs, ids[i]);
        /* An id no tool returned is not cited (it may be made up). */
        if (f)
            eg__rfacts_add(&s->arena, &s->used, f);
    }
}

static void accept_done(eg__reflect_t *s)
{
    const eg__rargs_t *a = &s->args;

    s->answer = trim_dup(&s->arena, a->answer);
    cite(s, a->ids, a->nids);
    cite(s, a->obs_ids, a->nobs_ids);
    for (size_t i = 0; i < a->nmm_ids; i++) {
        for (size_t k = 0; k < s->nseen_mm; k++) {
            if (strcmp(s->seen_mm[k].id, a->mm_ids[i]))
                continue;
            bool dup = false;

            for (size_t j = 0; j < s->nused_mm; j++)
                dup |= !strcmp(s->used_mm[j].id, a->mm_ids[i]);
            if (!dup) {
                if (!s->used_mm)
                    s->used_mm = eg_arena_alloc(&s->arena, (a->nmm_ids + 1) * sizeof(*s->used_mm));
                s->used_mm[s->nused_mm++] = s->seen_mm[k];
            }
        }
    }
    finish_answer(s);
}

static void on_tool_done(eg__reflect_t *s, cJSON *output, size_t count)
{
    const eg_llm_tool_call_t *tc = &s->calls[s->icall];

    s->busy = false;
    if (s->answered) {
        cJSON_Delete(output);
        release(s);
        return;
    }
    if (!cJSON_GetObjectItemCaseSensitive(output, "error"))
        s->evidence = true;
    tool_answer(s, tc, output, count, now_ms() - s->tool_t0);
    s->icall++;
    next_call(s);
}

static cJSON *error_json(const char *msg)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "error", msg);
    return o;
}

/* Answer the current turn's tool calls one after the other, then take the next turn. */
static void next_call(eg__reflect_t *s)
{
    char err[512];

    while (s->icall < s->ncalls) {
        const eg_llm_tool_call_t *tc = &s->calls[s->icall];
        int rc = eg__reflect_parse_args(&s->arena, tc->name, tc->arguments, s->ndirs > 0, &s->args,
                                        err, sizeof(err));

        if (s->args.tool == EG__RT_DONE) {
            if (rc == 0 && !s->evidence && !s->turn.final) {
                snprintf(err, sizeof(err), "%s",
                         "You must search for information first. Use search_mental_models, "
                         "search_observations or recall before giving your final answer.");
                rc = EG_EINVAL;
            }
            if (rc == 0) {
                accept_done(s);
                return;
            }
            if (s->turn.final) {
                /* No turn is left to repair a malformed done. */
                fallback(s, NULL);
                return;
            }
        } else if (rc == 0 && !s->turn.final) {
            s->busy = true;
            s->tool_t0 = now_ms();
            rc = eg__reflect_tool_run(s, on_tool_done);
            if (rc == 0)
                return;
            s->busy = false;
            snprintf(err, sizeof(err), "%s failed: %s", eg__reflect_tool_name(s->args.tool),
                     eg_strerror(rc));
        } else if (rc == 0) {
            snprintf(err, sizeof(err), "%s", "This turn must call done.");
        }
        tool_answer(s, tc, error_json(err), 0, 0);
        s->icall++;
    }
    if (s->turn.final) {
        fallback(s, NULL);
        return;
    }
    next_turn(s);
}

static void on_llm(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__reflect_t *s = udata;

    s->busy = false;
    s->call = NULL;
    trace_llm(s, s->call_scope, s->call_t0);
    if (resp)
        eg_usage_add(&s->usage, &resp->usage);
    if (s->answered) {
        release(s);
        return;
    }
    if (err) {
        eg_log_warn("reflect on bank %s: model call %s failed: %s", s->bank, s->call_scope,
                    resp && resp->error ? resp->error : eg_strerror(err));
        deliver(s, err);
        return;
    }
    if (resp->ntool_calls == 0) {
        const char *content = trim_dup(&s->arena, resp->content ? resp->content : "");

        if (content[0]) {
            s->answer = content; /* an answer without done: nothing is cited */
            finish_answer(s);
        } else if (!s->turn.final) {
            s->max_iter = s->it + 1; /* an empty turn: the next one must call done */
            next_turn(s);
        } else {
            fallback(s, NULL);
        }
        return;
    }
    s->ncalls = resp->ntool_calls;
    s->icall = 0;
    s->calls = eg_arena_alloc(&s->arena, s->ncalls * sizeof(*s->calls));
    for (size_t i = 0; i < s->ncalls; i++) {
        const eg_llm_tool_call_t *c = &resp->tool_calls[i];

        s->calls[i].id = eg_arena_strdup(&s->arena, c->id ? c->id : "");
        s->calls[i].name = eg_arena_strdup(&s->arena, c->name ? c->name : "");
        s->calls[i].arguments = eg_arena_strdup(&s->arena, c->arguments ? c->arguments : "");
    }
    push_msg(s, (eg_llm_msg_t){
                    .role = EG_LLM_ASSISTANT,
                    .content = resp->content && resp->content[0]
                                   ? eg_arena_strdup(&s->arena, resp->content)
                                   : NULL,
                    .tool_calls = s->calls,
                    .ntool_calls = s->ncalls,
                });
    next_call(s);
}

static void next_turn(eg__reflect_t *s)
{
    eg_llm_req_t r;
    int rc;

    s->it++;
    s->turn = eg__reflect_turn(s->it, s->max_iter, s->has_mm, s->ctx_tokens);
    memset(&r, 0, sizeof(r));
    r.msgs = s->msgs;
    r.nmsgs = s->nmsgs;
    r.tools = s->tools;
    r.ntools = s->ntools;
    r.tool_choice = s->turn.choice;
    r.tool_choice_name =
        s->turn.choice == EG_LLM_TOOLS_NAMED ? eg__reflect_tool_name(s->turn.named) : NULL;
    r.temperature = EG_REFLECT_TEMPERATURE;
    r.max_tokens = (int)s->req.max_tokens;
    r.scope = "reflect";
    s->call_scope = s->turn.final ? "final" : eg_arena_printf(&s->arena, "agent_%d", s->it);
    s->call_t0 = now_ms();
    s->busy = true;
    rc = eg_llm_chat(s->llm, &r, on_llm, s, &s->call);
    if (rc) {
        s->busy = false;
        deliver(s, rc);
    }
}

/* ---- the structured output and the end ------------------------------------------------------ */

static void on_structured(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__reflect_t *s = udata;

    s->busy = false;
    s->call = NULL;
    trace_llm(s, "structured", s->call_t0);
    if (resp)
        eg_usage_add(&s->usage, &resp->usage);
    if (s->answered) {
        release(s);
        return;
    }
    if (err == 0 && resp->json) {
        s->structured = cJSON_Duplicate(resp->json, true);
        eg_arena_defer(&s->arena, (void (*)(void *))cJSON_Delete, s->structured);
    } else {
        /* As Hindsight does, the answer stands without structured_output. */
        eg_log_warn("reflect on bank %s: structured output failed: %s", s->bank,
                    resp && resp->error ? resp->error : eg_strerror(err));
    }
    deliver(s, 0);
}

static void finish_answer(eg__reflect_t *s)
{
    eg_llm_req_t r;
    eg_llm_msg_t *m;
    int rc;

    if (!s->req.response_schema || !s->answer || !s->answer[0]) {
        deliver(s, 0);
        return;
    }
    m = eg_arena_alloc(&s->arena, 2 * sizeof(*m));
    m[0] = (eg_llm_msg_t){.role = EG_LLM_SYSTEM,
                          .content = "You are a precise data extraction assistant. Extract "
                                     "information from text and return it as valid JSON "
                                     "matching the provided schema."};
    m[1] = (eg_llm_msg_t){
        .role = EG_LLM_USER,
        .content = eg__reflect_structured_prompt(&s->arena, s->answer, s->req.response_schema)};
    memset(&r, 0, sizeof(r));
    r.msgs = m;
    r.nmsgs = 2;
    r.schema = s->req.response_schema;
    r.schema_name = "reflect_response";
    r.temperature = -1;
    r.scope = "reflect";
    s->call_t0 = now_ms();
    s->busy = true;
    rc = eg_llm_chat(s->llm, &r, on_structured, s, &s->call);
    if (rc) {
        s->busy = false;
        deliver(s, 0);
    }
}

static void start_loop(eg__reflect_t *s)
{
    eg__rprompt_t p = {
        .bank_name = s->profile.name,
        .mission = s->profile.mission,
        .skepticism = s->profile.skepticism,
        .literalism = s->profile.literalism,
        .empathy = s->profile.empathy,
        .directives = s->dirs,
        .ndirectives = s->ndirs,
        .has_mm = s->has_mm,
        .budget = s->req.budget,
        .max_iter = s->max_iter,
        .max_tokens = s->req.max_tokens,
    };

    s->ntools = eg__reflect_tools(&s->arena, s->has_mm, s->ndirs > 0, s->tools);
    for (size_t i = 0; i < s->ntools; i++)
        s->ctx_tokens +=
            eg_text_estimate_tokens(s->tools[i].parameters, strlen(s->tools[i].parameters)) +
            eg_text_estimate_tokens(s->tools[i].description, strlen(s->tools[i].description));
    push_msg(s, (eg_llm_msg_t){.role = EG_LLM_SYSTEM,
                               .content = eg__reflect_system_prompt(&s->arena, &p)});
    push_msg(s, (eg_llm_msg_t){.role = EG_LLM_USER, .content = s->req.query});
    next_turn(s);
}

/* ---- start ---------------------------------------------------------------------------------- */

static void on_directives(void *udata, int err, const eg_directive_t *ds, size_t n, size_t total)
{
    eg__reflect_t *s = udata;

    (void)total;
    s->busy = false;
    if (s->answered) {
        release(s);
        return;
    }
    if (err) {
        deliver(s, err);
        return;
    }
    s->dirs = eg_arena_alloc(&s->arena, (n + 1) * sizeof(*s->dirs));
    for (size_t i = 0; i < n; i++)
        s->dirs[i] = (eg_reflect_directive_t){eg_arena_strdup(&s->arena, ds[i].id),
                                              eg_arena_strdup(&s->arena, ds[i].name),
                                              eg_arena_strdup(&s->arena, ds[i].content)};
    s->ndirs = n;
    start_loop(s);
}

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    eg__reflect_t *s = udata;
    int rc;

    (void)created;
    s->busy = false;
    if (s->answered) {
        release(s);
        return;
    }
    if (err && err != EG_ENOTFOUND) {
        deliver(s, err);
        return;
    }
    s->profile.name = s->bank;
    s->profile.mission = "";
    s->profile.skepticism = s->profile.literalism = s->profile.empathy = EG_BANK_DISPOSITION;
    s->profile.graph = s->profile.temporal = true;
    if (err == 0) {
        cJSON *cfg = eg_bank_config_resolved(bank);

        s->profile.name = eg_arena_strdup(&s->arena, bank->name);
        s->profile.mission = eg_arena_strdup(&s->arena, bank->mission ? bank->mission : "");
        s->profile.skepticism = bank->skepticism;
        s->profile.literalism = bank->literalism;
        s->profile.empathy = bank->empathy;
        s->profile.graph =
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enable_graph_retrieval"));
        s->profile.temporal =
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enable_temporal_retrieval"));
        cJSON_Delete(cfg);
    }
    if (!s->llm) {
        builtin(s);
        return;
    }
    s->busy = true;
    rc = eg_directives_for_reflect(s->ws, s->bank, s->req.tags, s->req.ntags,
                                   s->req.apply_all_directives, on_directives, s);
    if (rc) {
        s->busy = false;
        deliver(s, rc);
    }
}

static uint64_t timeout_ms(const eg_reflect_req_t *req)
{
    const char *env = getenv("ENGRAM_REFLECT_TIMEOUT");
    uint64_t ms = EG_REFLECT_TIMEOUT_MS;

    if (req->timeout_ms)
        return req->timeout_ms;
    if (env && env[0] && (eg_parse_duration_ms(env, &ms) != 0 || ms == 0)) {
        eg_log_warn("ENGRAM_REFLECT_TIMEOUT \"%s\" is not a duration; using 300s", env);
        ms = EG_REFLECT_TIMEOUT_MS;
    }
    return ms;
}

int eg_reflect(const char *ws_id, const char *bank_id, const eg_reflect_req_t *req,
               eg_reflect_fn cb, void *udata)
{
    eg__reflect_t *s;
    uv_loop_t *loop = eg_store_loop();
    int rc;

    if (!ws_id || !bank_id || !req || !req->query || !cb || !loop ||
        !eg_bank_id_valid(bank_id, strlen(bank_id)))
        return EG_EINVAL;
    s = eg_xcalloc(1, sizeof(*s));
    eg_arena_init(&s->arena);
    s->ws = eg_arena_strdup(&s->arena, ws_id);
    s->bank = eg_arena_strdup(&s->arena, bank_id);
    s->req = *req;
    if (s->req.max_tokens == 0)
        s->req.max_tokens = EG_REFLECT_MAX_TOKENS;
    s->cb = cb;
    s->udata = udata;
    s->llm = eg_llm_for(EG_LLM_OP_REFLECT);
    s->has_mm = !req->exclude_mental_models;
    s->max_iter = eg_reflect_max_iterations(req->budget);
    s->t0 = now_ms();
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->busy = true;
    rc = eg_bank_get(ws_id, bank_id, on_bank, s);
    if (rc) {
        s->busy = false;
        s->answered = true; /* nothing was promised: free without calling back */
        release(s);
        return rc;
    }
    uv_timer_start(&s->timer, on_timeout, timeout_ms(req), 0);
    return 0;
}
