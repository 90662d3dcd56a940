/* The openai provider: chat completions against an OpenAI-compatible server, on the loop.
 *
 * One call is a small flow with a state: QUEUED (waiting for one of the provider's concurrency
 * slots, FIFO), SENDING (one HTTP attempt in flight), BACKOFF (waiting to retry), FINISHING
 * (done is due on the next loop turn). Each HTTP answer is judged in one place (on_http): a
 * success may still lead to another attempt — the JSON-mode fallback when the server refuses
 * json_schema, or the single repair turn when the answer does not match the schema — and a 429,
 * a 5xx or a network failure to a retry after a backoff that honours Retry-After. The slot is
 * held from the first attempt to done, so a call being retried is still counted.
 *
 * The API key goes into the Authorization header of each request and nowhere else: logs carry
 * the provider, model, scope, status, attempts and latency. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/util.h"
#include "llm/llm_int.h"

#define ERRBODY_MAX (64u << 10) /* bytes of an error body kept for its message */

uint64_t eg__llm_backoff_base_ms = 500;

enum { ST_QUEUED, ST_SENDING, ST_BACKOFF, ST_FINISHING };

typedef struct oai_s oai_t;

struct eg_llm_call_s {
    oai_t *p;
    eg_llm_call_t *prev, *next; /* the provider's live calls */
    eg_llm_call_t *qnext;       /* its FIFO of calls waiting for a slot */
    eg_llm_req_t req;
    eg_llm_done_fn done;
    void *udata;
    int max_retries;
    int state;
    bool has_slot, canceled, json_mode, repaired;
    int retries; /* retries spent */
    uint64_t t0_ns;
    uint64_t timeout_ms;
    cJSON *schema;
    char *repair_answer;
    char repair_error[256];
    uv_timer_t timer; /* backoff, and the deferred done */
    eg_httpc_call_t *hc;
    /* the attempt in flight */
    bool stream;
    int status;
    eg_buf_t errbody;
    eg__oai_sse_t sse;
    bool sse_on;
    int sse_rc;
    /* the result */
    eg__oai_result_t res;
    eg_usage_t usage;
    int attempts;
    cJSON *json;
    int final_err;
    char err[512];
};

struct oai_s {
    eg_llm_t base;
    uv_loop_t *loop;
    eg_httpc_t *http;
    char *chat_url, *auth, *model;
    eg__oai_limits_t lim;
    bool json_mode; /* the server refused json_schema once: use JSON mode from then on */
    int inflight, nqueued;
    eg_llm_call_t *q_head, *q_tail;
    eg_llm_call_t *calls;
    bool destroying;
};

static void call_send(eg_llm_call_t *call);
static void call_finish(eg_llm_call_t *call, int err);
static void finish_later(eg_llm_call_t *call, int err);

/* ---- retries ----------------------------------------------------------------------------------
 */

uint64_t eg__llm_retry_wait_ms(int n, const char *retry_after)
{
    int64_t ra = eg__oai_retry_after_ms(retry_after, eg_now_ms());
    uint64_t wait, jitter;

    if (ra >= 0)
        return (uint64_t)EG_MIN(ra, (int64_t)EG_LLM_RETRY_AFTER_CAP_MS);
    wait = eg__llm_backoff_base_ms << (n < 16 ? n : 16);
    if (wait > 30000)
        wait = 30000;
    /* Equal jitter: half the wait fixed, half random, so callers that failed together spread. */
    eg_random_bytes(&jitter, sizeof(jitter));
    return wait / 2 + (wait / 2 > 0 ? jitter % (wait / 2 + 1) : 0);
}

/* ---- slots ------------------------------------------------------------------------------------
 */

static void queue_push(oai_t *p, eg_llm_call_t *call)
{
    call->qnext = NULL;
    if (p->q_tail != NULL)
        p->q_tail->qnext = call;
    else
        p->q_head = call;
    p->q_tail = call;
    p->nqueued++;
}

static void queue_remove(oai_t *p, eg_llm_call_t *call)
{
    eg_llm_call_t **pp = &p->q_head, *prev = NULL;

    while (*pp != NULL && *pp != call) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == NULL)
        return;
    *pp = call->qnext;
    if (p->q_tail == call)
        p->q_tail = prev;
    call->qnext = NULL;
    p->nqueued--;
}

/* Start waiting calls while slots are free. */
static void pump(oai_t *p)
{
    while (!p->destroying && p->q_head != NULL && p->inflight < p->lim.max_concurrency) {
        eg_llm_call_t *call = p->q_head;

        queue_remove(p, call);
        call->has_slot = true;
        p->inflight++;
        call_send(call);
    }
}

/* ---- one attempt ------------------------------------------------------------------------------
 */

static int on_headers(void *udata, const eg_httpc_resp_t *resp)
{
    eg_llm_call_t *call = udata;

    call->status = resp->status;
    if (call->stream && resp->status >= 200 && resp->status < 300) {
        eg__oai_sse_init(&call->sse, &call->res, call->req.on_delta, call->udata);
        call->sse_on = true;
    }
    return 0;
}

static int on_data(void *udata, const char *data, size_t len)
{
    eg_llm_call_t *call = udata;

    if (call->sse_on) {
        call->sse_rc = eg__oai_sse_feed(&call->sse, data, len);
        return call->sse_rc != 0;
    }
    if (call->errbody.len < ERRBODY_MAX)
        eg_buf_append(&call->errbody, data, EG_MIN(len, ERRBODY_MAX - call->errbody.len));
    return 0;
}

static void on_http(void *udata, int err, eg_httpc_resp_t *resp);

static void call_send(eg_llm_call_t *call)
{
    oai_t *p = call->p;
    eg__oai_body_opts_t bo = {
        .model = p->model,
        /* The repair answer is not streamed: the caller already saw the refused one. */
        .stream = call->req.on_delta != NULL && !call->repaired,
        .json_mode = call->json_mode,
        .schema = call->schema,
        .repair_answer = call->repair_answer,
        .repair_error = call->repair_answer != NULL ? call->repair_error : NULL,
    };
    eg_kv_t headers[3];
    size_t nh = 0;
    eg_httpc_req_t hr = {0};
    char *body;
    int rc;

    /* A request refused while being built still answers through done, on a later turn (this
     * may run inside chat). */
    body = eg__oai_chat_body(&call->req, &bo, call->err, sizeof(call->err));
    if (body == NULL) {
        finish_later(call, EG_EINVAL);
        return;
    }
    headers[nh++] = (eg_kv_t){.name = "Content-Type", .value = "application/json"};
    if (p->auth != NULL)
        headers[nh++] = (eg_kv_t){.name = "Authorization", .value = p->auth};
    if (bo.stream)
        headers[nh++] = (eg_kv_t){.name = "Accept", .value = "text/event-stream"};
    call->stream = bo.stream;
    call->status = 0;
    call->sse_on = false;
    call->sse_rc = 0;
    eg__oai_sse_free(&call->sse);
    memset(&call->sse, 0, sizeof(call->sse));
    eg_buf_clear(&call->errbody);
    eg__oai_result_reset(&call->res);

    hr.method = "POST";
    hr.url = p->chat_url;
    hr.headers = headers;
    hr.nheaders = nh;
    hr.body = body;
    hr.body_len = strlen(body);
    hr.connect_timeout_ms = EG_MIN(call->timeout_ms, (uint64_t)10000);
    hr.header_timeout_ms = call->timeout_ms;
    hr.total_timeout_ms = call->timeout_ms;
    hr.on_headers = on_headers;
    if (bo.stream)
        hr.on_data = on_data;
    call->state = ST_SENDING;
    call->attempts++;
    rc = eg_httpc_request(p->http, &hr, on_http, call, &call->hc);
    free(body);
    if (rc != 0) {
        call->hc = NULL;
        snprintf(call->err, sizeof(call->err), "request refused: %s", eg_strerror(rc));
        finish_later(call, rc);
    }
}

static void on_timer(uv_timer_t *t)
{
    eg_llm_call_t *call = t->data;

    if (call->state == ST_BACKOFF)
        call_send(call);
    else if (call->state == ST_FINISHING)
        call_finish(call, call->final_err);
}

/* Done on the next loop turn (from contexts where the caller must not be re-entered). */
static void finish_later(eg_llm_call_t *call, int err)
{
    call->state = ST_FINISHING;
    call->final_err = err;
    uv_timer_start(&call->timer, on_timer, 0, 0);
}

/* Another attempt after a wait, or the end with err when the retries are spent. */
static void retry_or_fail(eg_llm_call_t *call, int err, const char *retry_after)
{
    uint64_t wait;

    if (call->retries >= call->max_retries || call->canceled) {
        call_finish(call, err);
        return;
    }
    wait = eg__llm_retry_wait_ms(call->retries, retry_after);
    call->retries++;
    eg_log_warn("llm %s model=%s scope=%s: %s; retry %d/%d in %" PRIu64 " ms", "openai",
                call->p->model, call->req.scope ? call->req.scope : "-", call->err, call->retries,
                call->max_retries, wait);
    call->state = ST_BACKOFF;
    uv_timer_start(&call->timer, on_timer, wait, 0);
}

/* Parse and check a structured answer; 0, or a reason in why. */
static int check_answer(eg_llm_call_t *call, char *why, size_t whylen)
{
    const char *txt;
    size_t len;
    cJSON *v;

    eg__oai_strip_fences(call->res.content.data, call->res.content.len, &txt, &len);
    v = cJSON_ParseWithLength(txt, len);
    if (v == NULL) {
        snprintf(why, whylen, "the answer is not valid JSON");
        return EG_EINVAL;
    }
    if (eg__jschema_validate(call->schema, v, why, whylen) != 0) {
        cJSON_Delete(v);
        return EG_EINVAL;
    }
    cJSON_Delete(call->json);
    call->json = v;
    return 0;
}

static void on_success(eg_llm_call_t *call, const eg_httpc_resp_t *resp)
{
    char why[256];
    int rc;

    if (call->stream) {
        rc = eg__oai_sse_end(&call->sse);
        if (rc != 0) {
            snprintf(call->err, sizeof(call->err), "%s", call->sse.err);
            call_finish(call, rc);
            return;
        }
    } else {
        rc = eg__oai_parse_response(resp->body.data, resp->body.len, &call->res, call->err,
                                    sizeof(call->err));
        if (rc != 0) {
            call_finish(call, rc);
            return;
        }
    }
    eg_usage_add(&call->usage, &call->res.usage);
    if (call->schema == NULL || call->res.ntcs > 0) {
        call_finish(call, 0);
        return;
    }
    if (check_answer(call, why, sizeof(why)) == 0) {
        call_finish(call, 0);
        return;
    }
    if (call->repaired) {
        snprintf(call->err, sizeof(call->err), "the answer does not match the schema: %s", why);
        call_finish(call, EG_EINVAL);
        return;
    }
    /* One repair turn: the model sees its answer and what is wrong with it. */
    call->repaired = true;
    free(call->repair_answer);
    call->repair_answer = eg_xstrdup(call->res.content.data);
    snprintf(call->repair_error, sizeof(call->repair_error), "%s", why);
    eg_log_info("llm openai model=%s scope=%s: answer refused (%s); asking for a repair",
                call->p->model, call->req.scope ? call->req.scope : "-", why);
    call_send(call);
}

static void on_http(void *udata, int err, eg_httpc_resp_t *resp)
{
    eg_llm_call_t *call = udata;
    const char *body;
    size_t blen;
    char msg[300];
    int st;

    call->hc = NULL;
    if (call->canceled) {
        snprintf(call->err, sizeof(call->err), "canceled");
        call_finish(call, EG_ECANCELED);
        return;
    }
    if (call->sse_rc != 0) {
        snprintf(call->err, sizeof(call->err), "%s", call->sse.err);
        call_finish(call, call->sse_rc);
        return;
    }
    if (err != 0) {
        snprintf(call->err, sizeof(call->err), "%s: %s", eg_strerror(err),
                 resp->error != NULL ? resp->error : "request failed");
        /* A stream the caller has already seen part of cannot be replayed. */
        if ((err == EG_ECONNECT || err == EG_EUPSTREAM || err == EG_EUPTIMEOUT) &&
            !call->sse.deltas)
            retry_or_fail(call, err, NULL);
        else
            call_finish(call, err);
        return;
    }
    st = resp->status;
    if (st >= 200 && st < 300) {
        on_success(call, resp);
        return;
    }
    body = call->stream ? call->errbody.data : resp->body.data;
    blen = call->stream ? call->errbody.len : resp->body.len;
    eg__oai_error_message(body, blen, msg, sizeof(msg));
    snprintf(call->err, sizeof(call->err), "HTTP %d from the model server: %s", st, msg);
    if (st == 401 || st == 403) {
        call_finish(call, EG_EAUTH);
    } else if (st == 400 && call->schema != NULL && !call->json_mode &&
               eg__oai_schema_unsupported(msg)) {
        call->json_mode = true;
        if (!call->p->json_mode)
            eg_log_warn("llm openai model=%s: the server refuses json_schema output (%s); "
                        "using JSON mode from now on",
                        call->p->model, msg);
        call->p->json_mode = true;
        call_send(call);
    } else if (st == 408 || st == 429 || st >= 500) {
        retry_or_fail(call, EG_EUPSTREAM, eg_httpc_resp_header(resp, "Retry-After"));
    } else {
        call_finish(call, EG_EINVAL);
    }
}

/* ---- the end of a call ------------------------------------------------------------------------
 */

static void on_call_closed(uv_handle_t *h)
{
    eg_llm_call_t *call = h->data;

    cJSON_Delete(call->schema);
    cJSON_Delete(call->json);
    free(call->repair_answer);
    eg_buf_free(&call->errbody);
    eg__oai_sse_free(&call->sse);
    eg__oai_result_reset(&call->res);
    free(call);
}

static void provider_free(oai_t *p)
{
    eg_httpc_free(p->http);
    free(p->chat_url);
    if (p->auth != NULL) {
        memset(p->auth, 0, strlen(p->auth));
        free(p->auth);
    }
    free(p->model);
    free(p);
}

static void call_finish(eg_llm_call_t *call, int err)
{
    oai_t *p = call->p;
    eg_llm_tool_call_t *tcs = NULL;
    eg_llm_resp_t resp;
    uint64_t elapsed = (eg_mono_ns() - call->t0_ns) / 1000000;

    uv_timer_stop(&call->timer);
    call->state = ST_FINISHING;
    if (call->has_slot) {
        call->has_slot = false;
        p->inflight--;
        pump(p);
    }
    if (err != 0 && call->err[0] == '\0')
        snprintf(call->err, sizeof(call->err), "%s", eg_strerror(err));
    if (call->res.ntcs > 0) {
        tcs = eg_xcalloc(call->res.ntcs, sizeof(*tcs));
        for (size_t i = 0; i < call->res.ntcs; i++) {
            tcs[i].id = call->res.tcs[i].id;
            tcs[i].name = call->res.tcs[i].name;
            tcs[i].arguments = call->res.tcs[i].args.data;
        }
    }
    memset(&resp, 0, sizeof(resp));
    resp.content = call->res.content.data != NULL && err == 0 ? call->res.content.data : "";
    resp.content_len = err == 0 ? call->res.content.len : 0;
    resp.tool_calls = err == 0 ? tcs : NULL;
    resp.ntool_calls = err == 0 ? call->res.ntcs : 0;
    resp.json = err == 0 ? call->json : NULL;
    resp.finish_reason = call->res.finish_reason != NULL ? call->res.finish_reason : "";
    resp.model = call->res.model != NULL ? call->res.model : p->model;
    resp.usage = call->usage;
    resp.http_status = call->status;
    resp.attempts = call->attempts;
    resp.elapsed_ms = elapsed;
    resp.error = err != 0 ? call->err : NULL;
    if (err == 0)
        eg_log_debug("llm openai model=%s scope=%s: status %d, %d attempt(s), %" PRIu64
                     " ms, %" PRId64 "+%" PRId64 " tokens",
                     p->model, call->req.scope ? call->req.scope : "-", call->status,
                     call->attempts, elapsed, call->usage.input_tokens, call->usage.output_tokens);
    else if (err != EG_ECANCELED)
        eg_log_warn("llm openai model=%s scope=%s: failed after %d attempt(s), %" PRIu64 " ms: %s",
                    p->model, call->req.scope ? call->req.scope : "-", call->attempts, elapsed,
                    call->err);
    call->done(call->udata, err, &resp);
    free(tcs);

    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        p->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
    if (p->destroying && p->calls == NULL)
        provider_free(p);
}

/* ---- the vtable -------------------------------------------------------------------------------
 */

int eg__oai_chat_ex(eg_llm_t *llm, const eg_llm_req_t *req, int max_retries, eg_llm_done_fn done,
                    void *udata, eg_llm_call_t **out)
{
    oai_t *p = llm->impl;
    eg_llm_call_t *call;
    cJSON *schema = NULL;

    if (out != NULL)
        *out = NULL;
    if (p->destroying)
        return EG_ECANCELED;
    if (req == NULL || done == NULL || req->nmsgs == 0 || req->msgs == NULL ||
        (req->ntools > 0 && req->tools == NULL))
        return EG_EINVAL;
    if (req->schema != NULL) {
        schema = cJSON_Parse(req->schema);
        if (!cJSON_IsObject(schema)) {
            cJSON_Delete(schema);
            return EG_EINVAL;
        }
    }
    call = eg_xcalloc(1, sizeof(*call));
    call->p = p;
    call->req = *req;
    call->done = done;
    call->udata = udata;
    call->max_retries = max_retries;
    call->schema = schema;
    call->json_mode = p->json_mode;
    call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : p->lim.timeout_ms;
    call->t0_ns = eg_mono_ns();
    uv_timer_init(p->loop, &call->timer);
    call->timer.data = call;
    call->next = p->calls;
    if (p->calls != NULL)
        p->calls->prev = call;
    p->calls = call;
    call->state = ST_QUEUED;
    queue_push(p, call);
    if (out != NULL)
        *out = call;
    if (p->inflight < p->lim.max_concurrency && p->q_head == call) {
        queue_remove(p, call);
        call->has_slot = true;
        p->inflight++;
        call_send(call);
    }
    return 0;
}

static int oai_chat(eg_llm_t *llm, const eg_llm_req_t *req, eg_llm_done_fn done, void *udata,
                    eg_llm_call_t **out)
{
    oai_t *p = llm->impl;
    return eg__oai_chat_ex(llm, req, p->lim.max_retries, done, udata, out);
}

static void oai_cancel(eg_llm_call_t *call)
{
    if (call == NULL || call->canceled || call->state == ST_FINISHING)
        return;
    call->canceled = true;
    snprintf(call->err, sizeof(call->err), "canceled");
    if (call->hc != NULL) {
        eg_httpc_cancel(call->hc); /* on_http finishes the call */
        return;
    }
    if (call->state == ST_QUEUED)
        queue_remove(call->p, call);
    uv_timer_stop(&call->timer);
    finish_later(call, EG_ECANCELED);
}

static void oai_destroy(eg_llm_t *llm)
{
    oai_t *p = llm->impl;

    if (p->destroying)
        return;
    p->destroying = true;
    for (eg_llm_call_t *c = p->calls; c != NULL; c = c->next)
        oai_cancel(c);
    if (p->calls == NULL)
        provider_free(p);
}

eg_llm_t *eg__oai_new(uv_loop_t *loop, const eg_llm_settings_t *s, const eg__oai_limits_t *lim)
{
    oai_t *p = eg_xcalloc(1, sizeof(*p));
    eg_httpc_opts_t ho;
    char err[256] = "";
    char *allow;

    eg_httpc_opts_default(&ho);
    if (eg_httpc_opts_from_env(&ho, NULL, err, sizeof(err)) != 0) {
        eg_log_error("llm: %s", err);
        free(p);
        return NULL;
    }
    /* The operator configured this server: it may live on loopback or a private network. */
    allow = eg__llm_allow_list(s->base_url);
    ho.allow = allow;
    ho.max_conns_per_origin = EG_MAX(ho.max_conns_per_origin, lim->max_concurrency);
    p->http = eg_httpc_new(loop, &ho);
    free(allow);
    if (p->http == NULL) {
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->lim = *lim;
    if (p->lim.max_concurrency < 1)
        p->lim.max_concurrency = 1;
    p->chat_url = eg_xmalloc(strlen(s->base_url) + sizeof("/chat/completions"));
    sprintf(p->chat_url, "%s/chat/completions", s->base_url);
    if (eg_httpc_url_check(p->chat_url) != 0) {
        eg_log_error("llm: base URL %s is not usable", s->base_url);
        provider_free(p);
        return NULL;
    }
    if (s->api_key != NULL && s->api_key[0] != '\0') {
        p->auth = eg_xmalloc(strlen(s->api_key) + sizeof("Bearer "));
        sprintf(p->auth, "Bearer %s", s->api_key);
    }
    p->model = eg_xstrdup(s->model != NULL ? s->model : "");
    p->base.provider = "openai";
    p->base.model = p->model;
    p->base.chat = oai_chat;
    p->base.cancel = oai_cancel;
    p->base.destroy = oai_destroy;
    p->base.impl = p;
    return &p->base;
}

int eg__oai_in_flight(const eg_llm_t *llm)
{
    return ((const oai_t *)llm->impl)->inflight;
}

int eg__oai_queued(const eg_llm_t *llm)
{
    return ((const oai_t *)llm->impl)->nqueued;
}

bool eg__oai_json_mode(const eg_llm_t *llm)
{
    return ((const oai_t *)llm->impl)->json_mode;
}
