/* Agent task runners that answer in text: streaming and structured chat completion, memory chat
 * and exploring memories.
 *
 * Without a model (ENGRAM_AGENT_LLM_* / ENGRAM_LLM_* left at builtin) the chat completions fail
 * with a clear Error, while memory chat and explore answer extractively: they quote the best
 * passages of the memories they may read and say that no model wrote the answer. Everything the
 * model sees was read through the task's guard-rail scope (engram/library.h), so a memory outside
 * it never reaches a prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/util.h"
#include "engram/buf.h"
#include "engram/error.h"
#include "engram/log.h"
#include "runs/tasks_int.h"

#define CHAT_MEMREFS_MAX  200 /* memories explore lists to the model */
#define CHAT_EXPLORE_HITS 10  /* chunks explore searches */
#define CHAT_QUOTE_MAX    600 /* characters of one quoted passage in an offline answer */
#define MEM_LINK          "https://agent.fency.ai/mem/"

typedef struct chat_s {
    eg_buf_t text; /* the answer so far */
    int text_item; /* -1 until the first delta */
    eg_lib_chunk_t *hits;
    size_t nhits;
    eg_lib_memref_t *mems;
    size_t nmems;
    int search_item, find_item;
    const char *question;
    const cJSON *messages;
} chat_t;

static void buf_release(void *b)
{
    eg_buf_free(b);
}

static void json_release(void *j)
{
    cJSON_Delete(j);
}

static chat_t *chat_of(eg__trun_t *r)
{
    if (r->runner == NULL) {
        chat_t *c = eg_arena_calloc(&r->arena, sizeof(*c));

        c->text_item = c->search_item = c->find_item = -1;
        r->runner = c;
        /* The buffer's memory is released with the arena. */
        eg_arena_defer(&r->arena, buf_release, &c->text);
    }
    return r->runner;
}

static char *now_time(char out[EG_TASK_TIME_MAX])
{
    eg_time_iso_us(eg_now_us(), out);
    return out;
}

static double temperature(const eg__trun_t *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->request, "temperature");

    return cJSON_IsNumber(t) ? t->valuedouble : -1;
}

/* The request's topP; 0 (and absent) leave the provider's default. */
static double top_p(const eg__trun_t *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->request, "topP");

    return cJSON_IsNumber(t) ? t->valuedouble : 0;
}

static void text_progress(eg__trun_t *r)
{
    chat_t *c = chat_of(r);
    cJSON *d = cJSON_CreateObject();

    if (c->text_item < 0)
        c->text_item = eg__trun_item(r);
    cJSON_AddStringToObject(d, "text", c->text.data ? c->text.data : "");
    eg__trun_progress(r, c->text_item, "Text", d);
}

static int on_delta(void *udata, const char *text, size_t len)
{
    eg__trun_t *r = udata;

    eg_buf_append(&chat_of(r)->text, text, len);
    text_progress(r);
    return 0;
}

static const char *llm_error(int err, const eg_llm_resp_t *resp)
{
    return resp != NULL && resp->error != NULL && resp->error[0] ? resp->error : eg_strerror(err);
}

/* ---- streaming chat completion ----------------------------------------------------------- */

static void on_streamed(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__trun_t *r = udata;
    chat_t *c = chat_of(r);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->request, "messages");
    char t[EG_TASK_TIME_MAX];
    cJSON *done, *resp_o, *ok;

    if (err != 0) {
        eg__trun_fail(r, llm_error(err, resp));
        return;
    }
    /* The final answer is authoritative (deltas may have been partial on a retried call). */
    eg_buf_clear(&c->text);
    eg_buf_append(&c->text, resp->content, resp->content_len);
    text_progress(r);
    done = cJSON_CreateObject();
    resp_o = cJSON_AddObjectToObject(done, "response");
    cJSON_AddStringToObject(resp_o, "textResponse", c->text.data ? c->text.data : "");
    cJSON_AddItemToObject(resp_o, "messages", eg__trun_messages_with(msgs, c->text.data));
    ok = cJSON_CreateObject();
    cJSON_AddStringToObject(ok, "text", c->text.data ? c->text.data : "");
    cJSON_AddStringToObject(ok, "completedAt", now_time(t));
    cJSON_AddItemToObject(ok, "messages", eg__trun_messages_with(msgs, c->text.data));
    eg__trun_complete(r, done, ok);
}

void eg__task_run_streaming(eg__trun_t *r)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->request, "messages");
    eg_llm_req_t req = {0};
    int rc;

    if (r->llm == NULL) {
        eg__trun_fail(r, EG_TASK_NO_MODEL);
        return;
    }
    req.msgs = eg__trun_msgs(r, msgs, NULL, &req.nmsgs);
    req.temperature = temperature(r);
    req.top_p = top_p(r);
    req.scope = "agent.streaming";
    req.on_delta = on_delta;
    chat_of(r);
    rc = eg_llm_chat(r->llm, &req, on_streamed, r, NULL);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

/* ---- structured chat completion ---------------------------------------------------------- */

static void on_structured(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__trun_t *r = udata;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->request, "messages");
    char t[EG_TASK_TIME_MAX];
    cJSON *done, *resp_o, *ok;
    char *json;

    if (err != 0) {
        eg__trun_fail(r, llm_error(err, resp));
        return;
    }
    if (resp->json == NULL) {
        eg__trun_fail(r, "the model did not answer with JSON");
        return;
    }
    json = cJSON_PrintUnformatted(resp->json);
    done = cJSON_CreateObject();
    resp_o = cJSON_AddObjectToObject(done, "response");
    cJSON_AddStringToObject(resp_o, "jsonResponse", json);
    cJSON_AddItemToObject(resp_o, "messages", eg__trun_messages_with(msgs, json));
    ok = cJSON_CreateObject();
    cJSON_AddItemToObject(ok, "json", cJSON_Duplicate(resp->json, true));
    cJSON_AddStringToObject(ok, "completedAt", now_time(t));
    cJSON_AddItemToObject(ok, "messages", eg__trun_messages_with(msgs, json));
    free(json);
    eg__trun_complete(r, done, ok);
}

void eg__task_run_structured(eg__trun_t *r)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->request, "messages");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(r->request, "jsonSchema");
    eg_llm_req_t req = {0};
    int rc;

    if (r->llm == NULL) {
        eg__trun_fail(r, EG_TASK_NO_MODEL);
        return;
    }
    req.msgs = eg__trun_msgs(r, msgs, NULL, &req.nmsgs);
    req.temperature = temperature(r);
    req.top_p = top_p(r);
    req.schema = cJSON_GetStringValue(schema);
    req.scope = "agent.structured";
    rc = eg_llm_chat(r->llm, &req, on_structured, r, NULL);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

/* ---- answers over memories (memory chat, explore) ---------------------------------------- */

static eg_lib_chunk_t *chunks_copy(eg_arena_t *a, const eg_lib_chunk_t *c, size_t n)
{
    eg_lib_chunk_t *out = eg_arena_calloc(a, (n ? n : 1) * sizeof(*out));

    for (size_t i = 0; i < n; i++) {
        out[i] = c[i];
        out[i].memory_id = eg_arena_strdup(a, c[i].memory_id);
        out[i].memory_title = eg_arena_strdup(a, c[i].memory_title ? c[i].memory_title : "");
        out[i].type_id = eg_arena_strdup(a, c[i].type_id ? c[i].type_id : "");
        out[i].type_name = eg_arena_strdup(a, c[i].type_name ? c[i].type_name : "");
        out[i].content = eg_arena_strdup(a, c[i].content ? c[i].content : "");
        if (c[i].npages > 0) {
            int *p = eg_arena_alloc(a, c[i].npages * sizeof(int));

            memcpy(p, c[i].pages, c[i].npages * sizeof(int));
            out[i].pages = p;
        }
    }
    return out;
}

eg_lib_chunk_t *eg__task_chunks_copy(eg_arena_t *a, const eg_lib_chunk_t *c, size_t n)
{
    return chunks_copy(a, c, n);
}

static cJSON *pages_json(const eg_lib_chunk_t *c)
{
    cJSON *p = cJSON_CreateArray();

    for (size_t i = 0; i < c->npages; i++)
        cJSON_AddItemToArray(p, cJSON_CreateNumber(c->pages[i]));
    return p;
}

cJSON *eg__task_search_item(const eg_lib_chunk_t *hit)
{
    cJSON *o = cJSON_CreateObject(), *m, *chunks, *ch;

    cJSON_AddStringToObject(o, "memoryId", hit->memory_id);
    cJSON_AddStringToObject(o, "memoryTitle", hit->memory_title);
    cJSON_AddStringToObject(o, "memoryTypeId", hit->type_id);
    cJSON_AddStringToObject(o, "memoryTypeName", hit->type_name);
    cJSON_AddNumberToObject(o, "matchingChunkScore", (double)hit->score);
    m = cJSON_AddObjectToObject(o, "matchingChunk");
    cJSON_AddNumberToObject(m, "chunkNumber", hit->chunk_number);
    cJSON_AddItemToObject(m, "pageNumbers", pages_json(hit));
    cJSON_AddStringToObject(m, "content", hit->content);
    chunks = cJSON_AddArrayToObject(o, "chunks");
    ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "chunkNumber", hit->chunk_number);
    cJSON_AddItemToObject(ch, "pageNumbers", pages_json(hit));
    cJSON_AddStringToObject(ch, "content", hit->content);
    cJSON_AddStringToObject(ch, "relation", "MATCH");
    cJSON_AddItemToArray(chunks, ch);
    return o;
}

cJSON *eg__task_sources(const eg_lib_chunk_t *c, size_t n)
{
    cJSON *out = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++) {
        cJSON *s = NULL, *pages;
        bool seen = false;

        cJSON_ArrayForEach(s, out)
        {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "memoryId")),
                       c[i].memory_id) == 0) {
                seen = true;
                break;
            }
        }
        if (!seen) {
            s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "memoryId", c[i].memory_id);
            cJSON_AddStringToObject(s, "memoryTitle", c[i].memory_title);
            cJSON_AddStringToObject(s, "memoryTypeId", c[i].type_id);
            cJSON_AddStringToObject(s, "memoryTypeName", c[i].type_name);
            cJSON_AddArrayToObject(s, "pageNumbers");
            cJSON_AddItemToArray(out, s);
        }
        pages = cJSON_GetObjectItemCaseSensitive(s, "pageNumbers");
        for (size_t p = 0; p < c[i].npages; p++) {
            const cJSON *x;
            bool have = false;

            cJSON_ArrayForEach(x, pages) have |= (int)x->valuedouble == c[i].pages[p];
            if (!have)
                cJSON_AddItemToArray(pages, cJSON_CreateNumber(c[i].pages[p]));
        }
    }
    return out;
}

static cJSON *hits_json(const chat_t *c)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < c->nhits; i++)
        cJSON_AddItemToArray(a, eg__task_search_item(&c->hits[i]));
    return a;
}

/* The passages a model may read, numbered, each with its memory's title and link. */
static void context_text(eg_buf_t *b, const chat_t *c)
{
    if (c->nhits == 0) {
        eg_buf_puts(b, "(no passage of the memories matched)\n");
        return;
    }
    for (size_t i = 0; i < c->nhits; i++) {
        const eg_lib_chunk_t *h = &c->hits[i];

        eg_buf_printf(b, "[%zu] %s (%s) — " MEM_LINK "%s/%s, chunk %d\n%s\n\n", i + 1,
                      h->memory_title, h->type_name, h->type_id, h->memory_id, h->chunk_number,
                      h->content);
    }
}

static const char *language_rule(const eg__trun_t *r)
{
    return strcmp(r->language, "no") == 0 ? "Answer in Norwegian (bokmål)." : "Answer in English.";
}

static void answer_done(eg__trun_t *r)
{
    chat_t *c = chat_of(r);
    char t[EG_TASK_TIME_MAX];
    cJSON *done, *resp_o, *ok, *sources = eg__task_sources(c->hits, c->nhits);
    cJSON *d = cJSON_CreateObject();

    cJSON_AddItemToObject(d, "sources", cJSON_Duplicate(sources, true));
    eg__trun_progress(r, eg__trun_item(r), "SourcesResult", d);
    done = cJSON_CreateObject();
    resp_o = cJSON_AddObjectToObject(done, "response");
    cJSON_AddStringToObject(resp_o, "textResponse", c->text.data ? c->text.data : "");
    cJSON_AddItemToObject(resp_o, "sources", cJSON_Duplicate(sources, true));
    ok = cJSON_CreateObject();
    cJSON_AddStringToObject(ok, "text", c->text.data ? c->text.data : "");
    cJSON_AddStringToObject(ok, "completedAt", now_time(t));
    cJSON_AddItemToObject(ok, "sources", sources);
    eg__trun_complete(r, done, ok);
}

static void on_answered(void *udata, int err, const eg_llm_resp_t *resp)
{
    eg__trun_t *r = udata;
    chat_t *c = chat_of(r);

    if (err != 0) {
        eg__trun_fail(r, llm_error(err, resp));
        return;
    }
    eg_buf_clear(&c->text);
    eg_buf_append(&c->text, resp->content, resp->content_len);
    text_progress(r);
    answer_done(r);
}

/* The offline answer: the best passages quoted, and why. */
static void answer_offline(eg__trun_t *r, const char *intro)
{
    chat_t *c = chat_of(r);
    size_t shown = 0;

    bool no = strcmp(r->language, "no") == 0;

    eg_buf_clear(&c->text);
    if (c->nhits == 0) {
        eg_buf_printf(&c->text,
                      no ? "Ingen språkmodell er konfigurert (no language model is configured), og "
                           "ingen passasje i minnene denne oppgaven kan lese, passer til \"%s\"."
                         : "No language model is configured, and no passage of the memories this "
                           "task may read matches \"%s\".",
                      c->question);
    } else {
        if (no)
            eg_buf_puts(&c->text, "Ingen språkmodell er konfigurert (no language model is "
                                  "configured), så dette svaret siterer de mest relevante "
                                  "passasjene i minnene:\n");
        else
            eg_buf_printf(&c->text,
                          "No language model is configured, so this answer is extractive: %s\n",
                          intro);
        for (size_t i = 0; i < c->nhits && shown < 3; i++, shown++) {
            const eg_lib_chunk_t *h = &c->hits[i];
            size_t len = strlen(h->content);

            eg_buf_printf(&c->text, "\n> %.*s%s\n\n— [%s](" MEM_LINK "%s/%s)\n",
                          (int)(len > CHAT_QUOTE_MAX ? CHAT_QUOTE_MAX : len), h->content,
                          len > CHAT_QUOTE_MAX ? "…" : "", h->memory_title, h->type_id,
                          h->memory_id);
        }
    }
    text_progress(r);
    answer_done(r);
}

static void answer(eg__trun_t *r, const char *task_rules, const char *offline_intro)
{
    chat_t *c = chat_of(r);
    eg_buf_t sys = EG_BUF_INIT;
    eg_llm_req_t req = {0};
    eg_llm_msg_t *msgs;
    int rc;

    if (r->llm == NULL) {
        answer_offline(r, offline_intro);
        return;
    }
    eg_buf_printf(&sys,
                  "You answer questions from a library of memories. %s Use only the passages "
                  "and memories below; when they do not hold the answer, say so. Cite a memory "
                  "as a Markdown link to its URL. %s\n\n",
                  task_rules, language_rule(r));
    if (c->nmems > 0) {
        eg_buf_puts(&sys, "Memories you may use:\n");
        for (size_t i = 0; i < c->nmems; i++) {
            char *meta = c->mems[i].metadata ? cJSON_PrintUnformatted(c->mems[i].metadata) : NULL;

            eg_buf_printf(&sys, "- %s (%s) — " MEM_LINK "%s/%s%s%s\n", c->mems[i].title,
                          c->mems[i].type_name, c->mems[i].type_id, c->mems[i].id,
                          meta ? " metadata: " : "", meta ? meta : "");
            free(meta);
        }
        eg_buf_puts(&sys, "\n");
    }
    eg_buf_puts(&sys, "Passages:\n");
    context_text(&sys, c);
    if (c->messages != NULL) {
        msgs = eg__trun_msgs(r, c->messages, sys.data, &req.nmsgs);
    } else {
        msgs = eg_arena_calloc(&r->arena, 2 * sizeof(*msgs));
        msgs[0].role = EG_LLM_SYSTEM;
        msgs[0].content = eg_arena_strdup(&r->arena, sys.data);
        msgs[1].role = EG_LLM_USER;
        msgs[1].content = c->question;
        req.nmsgs = 2;
    }
    eg_buf_free(&sys);
    req.msgs = msgs;
    req.temperature = -1;
    req.scope = "agent.answer";
    req.on_delta = on_delta;
    rc = eg_llm_chat(r->llm, &req, on_answered, r, NULL);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

/* ---- memory chat ------------------------------------------------------------------------- */

/* Keep the hits of the first scan_limit distinct memories, at most limit hits. */
static size_t keep_memories(eg_lib_chunk_t *h, size_t n, int scan_limit)
{
    const char *seen[EG_TASK_SCAN_LIMIT_MAX];
    size_t nseen = 0, out = 0;

    for (size_t i = 0; i < n; i++) {
        bool have = false;

        for (size_t s = 0; s < nseen; s++)
            have |= strcmp(seen[s], h[i].memory_id) == 0;
        if (!have) {
            if (nseen >= (size_t)scan_limit || nseen >= EG_TASK_SCAN_LIMIT_MAX)
                continue;
            seen[nseen++] = h[i].memory_id;
        }
        h[out++] = h[i];
    }
    return out;
}

static void search_progress(eg__trun_t *r, const char *event_type, bool with_items)
{
    chat_t *c = chat_of(r);
    cJSON *d = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(d, "input");

    cJSON_AddStringToObject(in, "queryDescription", c->question);
    if (with_items)
        cJSON_AddItemToObject(d, "items", hits_json(c));
    eg__trun_progress(r, c->search_item, event_type, d);
}

/* The Search step: what is searched for, then the memories the hits came from. */
static void search_step(eg__trun_t *r, bool with_memories)
{
    chat_t *c = chat_of(r);
    cJSON *d = cJSON_CreateObject(), *src, *m;

    cJSON_AddStringToObject(d, "queryDescription", c->question);
    if (with_memories) {
        src = eg__task_sources(c->hits, c->nhits);
        cJSON *list = cJSON_AddArrayToObject(d, "memories");
        cJSON_ArrayForEach(m, src)
        {
            cJSON *o = cJSON_CreateObject();

            cJSON_AddStringToObject(
                o, "memoryId",
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "memoryId")));
            cJSON_AddStringToObject(
                o, "memoryTitle",
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "memoryTitle")));
            cJSON_AddItemToArray(list, o);
        }
        cJSON_Delete(src);
    }
    eg__trun_progress(r, c->find_item, "Search", d);
}

static void on_chat_hits(void *udata, int err, const eg_lib_chunk_t *hits, size_t n)
{
    eg__trun_t *r = udata;
    chat_t *c = chat_of(r);

    if (err != 0) {
        eg__trun_fail(r, err == EG_ENOTFOUND ? "no memory is readable" : eg_strerror(err));
        return;
    }
    c->hits = chunks_copy(&r->arena, hits, n);
    c->nhits = keep_memories(c->hits, n, eg__trun_int(r->request, "memoryScanLimit", 3));
    search_step(r, true);
    search_progress(r, "SearchMemoryChunks", true);
    answer(r, "The passages were found by searching the memories for the user's last message.",
           "these are the passages of the memories that best match the question.");
}

void eg__task_run_memory_chat(eg__trun_t *r)
{
    chat_t *c = chat_of(r);
    int limit = eg__trun_int(r->request, "chunkLimit", 10), rc;

    c->messages = cJSON_GetObjectItemCaseSensitive(r->request, "messages");
    c->question = eg__trun_last_user(c->messages);
    c->find_item = eg__trun_item(r);
    search_step(r, false);
    c->search_item = eg__trun_item(r);
    search_progress(r, "SearchMemoryChunks", false);
    rc = eg_lib_search(r->ws, &r->scope, c->question, (size_t)limit, on_chat_hits, r);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

/* ---- explore memories -------------------------------------------------------------------- */

static void on_explore_hits(void *udata, int err, const eg_lib_chunk_t *hits, size_t n)
{
    eg__trun_t *r = udata;
    chat_t *c = chat_of(r);
    cJSON *d, *in;

    if (err != 0) {
        eg__trun_fail(r, eg_strerror(err));
        return;
    }
    c->hits = chunks_copy(&r->arena, hits, n);
    c->nhits = n;
    d = cJSON_CreateObject();
    in = cJSON_AddObjectToObject(d, "input");
    cJSON_AddStringToObject(in, "queryDescription", c->question);
    cJSON_AddItemToObject(d, "items", hits_json(c));
    eg__trun_progress(r, c->search_item, "SemanticSearch", d);
    answer(r,
           "The list names every memory you may read; the passages are the best matches of a "
           "search for the request.",
           "the request was matched against the memories this task may read, and these are the "
           "best passages.");
}

static void on_explore_memories(void *udata, int err, const eg_lib_memref_t *m, size_t n)
{
    eg__trun_t *r = udata;
    chat_t *c = chat_of(r);
    cJSON *d, *list, *in;
    int rc;

    if (err != 0) {
        eg__trun_fail(r, eg_strerror(err));
        return;
    }
    c->mems = eg_arena_calloc(&r->arena, (n ? n : 1) * sizeof(*c->mems));
    c->nmems = n;
    d = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(d, "memories");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();

        c->mems[i].id = eg_arena_strdup(&r->arena, m[i].id);
        c->mems[i].title = eg_arena_strdup(&r->arena, m[i].title ? m[i].title : "");
        c->mems[i].type_id = eg_arena_strdup(&r->arena, m[i].type_id ? m[i].type_id : "");
        c->mems[i].type_name = eg_arena_strdup(&r->arena, m[i].type_name ? m[i].type_name : "");
        if (m[i].metadata != NULL) {
            cJSON *meta = cJSON_Duplicate(m[i].metadata, true);

            eg_arena_defer(&r->arena, json_release, meta);
            c->mems[i].metadata = meta;
        }
        cJSON_AddStringToObject(o, "memoryId", c->mems[i].id);
        cJSON_AddStringToObject(o, "memoryTitle", c->mems[i].title);
        cJSON_AddItemToArray(list, o);
    }
    eg__trun_progress(r, c->find_item, "FindMemoriesResult", d);
    c->search_item = eg__trun_item(r);
    d = cJSON_CreateObject();
    in = cJSON_AddObjectToObject(d, "input");
    cJSON_AddStringToObject(in, "queryDescription", c->question);
    eg__trun_progress(r, c->search_item, "SemanticSearch", d);
    rc = eg_lib_search(r->ws, &r->scope, c->question, CHAT_EXPLORE_HITS, on_explore_hits, r);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}

void eg__task_run_explore(eg__trun_t *r)
{
    chat_t *c = chat_of(r);
    cJSON *d = cJSON_CreateObject();
    int rc;

    c->question = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->request, "query"));
    if (c->question == NULL)
        c->question = "";
    c->find_item = eg__trun_item(r);
    cJSON_AddStringToObject(d, "query", c->question);
    eg__trun_progress(r, c->find_item, "FindMemories", d);
    rc = eg_lib_memories(r->ws, &r->scope, CHAT_MEMREFS_MAX, on_explore_memories, r);
    if (rc != 0)
        eg__trun_fail(r, eg_strerror(rc));
}
