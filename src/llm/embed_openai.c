/* The openai embedder: POST {base}/embeddings in batches of at most EG_LLM_EMBED_BATCH inputs,
 * one batch at a time per request (a retain batch's texts are one request's worth of work, and
 * the server's own batching does the rest). Retries like chat calls (429, 5xx, network errors,
 * Retry-After). "dimensions" is sent so models that can shorten their vectors do; a server that
 * refuses the field gets requests without it from then on, and every vector must then have the
 * configured size anyway. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/util.h"
#include "llm/llm_int.h"

typedef struct emb_s emb_t;

typedef struct job_s {
    emb_t *e;
    struct job_s *prev, *next;
    const char *const *texts;
    size_t n, off, batch; /* inputs, first of the batch in flight, its size */
    float *out;
    eg_embed_cb cb;
    void *udata;
    int retries;
    int fail; /* an error to answer with on the next turn */
    bool canceled;
    eg_httpc_call_t *hc;
    uv_timer_t timer; /* backoff */
} job_t;

struct emb_s {
    eg_embedder_t base;
    uv_loop_t *loop;
    eg_httpc_t *http;
    char *url, *auth, *model, *name;
    size_t dim;
    bool send_dim;
    eg__oai_limits_t lim;
    job_t *jobs;
    int closing; /* ended jobs whose timer is still closing */
    bool destroying;
};

static void job_send(job_t *j);

static void emb_free(emb_t *e)
{
    eg_httpc_free(e->http);
    free(e->url);
    if (e->auth != NULL) {
        memset(e->auth, 0, strlen(e->auth));
        free(e->auth);
    }
    free(e->model);
    free(e->name);
    free(e);
}

static void on_job_closed(uv_handle_t *h)
{
    job_t *j = h->data;
    emb_t *e = j->e;

    free(j);
    e->closing--;
    if (e->destroying && e->jobs == NULL && e->closing == 0)
        emb_free(e);
}

static void job_end(job_t *j, int status)
{
    emb_t *e = j->e;

    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        e->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    e->closing++;
    j->cb(&e->base, status, j->udata);
    uv_close((uv_handle_t *)&j->timer, on_job_closed);
}

static void on_backoff(uv_timer_t *t)
{
    job_t *j = t->data;

    if (j->canceled)
        job_end(j, EG_ECANCELED);
    else if (j->fail != 0)
        job_end(j, j->fail);
    else if (j->off >= j->n)
        job_end(j, 0);
    else
        job_send(j);
}

static void on_http(void *udata, int err, eg_httpc_resp_t *resp)
{
    job_t *j = udata;
    emb_t *e = j->e;
    char msg[300] = "";
    int st = resp->status, rc;

    j->hc = NULL;
    if (j->canceled || err == EG_ECANCELED) {
        job_end(j, EG_ECANCELED);
        return;
    }
    if (err == 0 && st >= 200 && st < 300) {
        rc = eg__oai_embed_parse(resp->body.data, resp->body.len, j->batch, e->dim,
                                 j->out + j->off * e->dim, msg, sizeof(msg));
        if (rc != 0) {
            eg_log_warn("embeddings openai model=%s: %s", e->model, msg);
            job_end(j, rc);
            return;
        }
        j->off += j->batch;
        j->retries = 0;
        if (j->off >= j->n)
            job_end(j, 0);
        else
            job_send(j);
        return;
    }
    if (err != 0)
        snprintf(msg, sizeof(msg), "%s", resp->error != NULL ? resp->error : eg_strerror(err));
    else
        eg__oai_error_message(resp->body.data, resp->body.len, msg, sizeof(msg));
    if (err == 0 && st == 400 && e->send_dim && strstr(msg, "dimensions") != NULL) {
        eg_log_warn("embeddings openai model=%s: the server refuses \"dimensions\" (%s); sending "
                    "requests without it",
                    e->model, msg);
        e->send_dim = false;
        job_send(j);
        return;
    }
    bool retry = err != 0 ? (err == EG_ECONNECT || err == EG_EUPSTREAM || err == EG_EUPTIMEOUT)
                          : (st == 408 || st == 429 || st >= 500);
    if (retry && j->retries < e->lim.max_retries) {
        uint64_t wait = eg__llm_retry_wait_ms(
            j->retries, err == 0 ? eg_httpc_resp_header(resp, "Retry-After") : NULL);
        j->retries++;
        eg_log_warn("embeddings openai model=%s: %s%d %s; retry %d/%d in %" PRIu64 " ms", e->model,
                    err != 0 ? "" : "HTTP ", err != 0 ? 0 : st, msg, j->retries, e->lim.max_retries,
                    wait);
        uv_timer_start(&j->timer, on_backoff, wait, 0);
        return;
    }
    eg_log_warn("embeddings openai model=%s: failed: %s%s", e->model,
                err == 0 ? "HTTP error: " : "", msg);
    if (err != 0)
        job_end(j, err);
    else
        job_end(j, st == 401 || st == 403  ? EG_EAUTH
                   : st < 500 && st != 429 ? EG_EINVAL
                                           : EG_EUPSTREAM);
}

static void job_send(job_t *j)
{
    emb_t *e = j->e;
    eg_kv_t headers[2];
    size_t nh = 0;
    eg_httpc_req_t hr = {0};
    char *body;
    int rc;

    j->batch = EG_MIN(j->n - j->off, (size_t)EG_LLM_EMBED_BATCH);
    body = eg__oai_embed_body(e->model, j->texts + j->off, j->batch, e->send_dim ? e->dim : 0);
    headers[nh++] = (eg_kv_t){.name = "Content-Type", .value = "application/json"};
    if (e->auth != NULL)
        headers[nh++] = (eg_kv_t){.name = "Authorization", .value = e->auth};
    hr.method = "POST";
    hr.url = e->url;
    hr.headers = headers;
    hr.nheaders = nh;
    hr.body = body;
    hr.body_len = strlen(body);
    hr.connect_timeout_ms = EG_MIN(e->lim.timeout_ms, (uint64_t)10000);
    hr.header_timeout_ms = e->lim.timeout_ms;
    hr.total_timeout_ms = e->lim.timeout_ms;
    hr.max_response_bytes = (size_t)64 << 20;
    rc = eg_httpc_request(e->http, &hr, on_http, j, &j->hc);
    free(body);
    if (rc != 0) {
        j->hc = NULL;
        eg_log_warn("embeddings openai: request refused: %s", eg_strerror(rc));
        /* Answer on a later turn: this may run inside embed(). */
        j->fail = rc;
        uv_timer_start(&j->timer, on_backoff, 0, 0);
    }
}

static int emb_embed(eg_embedder_t *base, const char *const *texts, size_t n, float *out,
                     eg_embed_cb cb, void *udata)
{
    emb_t *e = base->impl;
    job_t *j;

    if (e->destroying)
        return EG_ECANCELED;
    if (cb == NULL || (n > 0 && (texts == NULL || out == NULL)))
        return EG_EINVAL;
    j = eg_xcalloc(1, sizeof(*j));
    j->e = e;
    j->texts = texts;
    j->n = n;
    j->out = out;
    j->cb = cb;
    j->udata = udata;
    uv_timer_init(e->loop, &j->timer);
    j->timer.data = j;
    j->next = e->jobs;
    if (e->jobs != NULL)
        e->jobs->prev = j;
    e->jobs = j;
    if (n == 0) {
        uv_timer_start(&j->timer, on_backoff, 0, 0); /* nothing to ask: done next turn */
        return 0;
    }
    job_send(j);
    return 0;
}

static void emb_destroy(eg_embedder_t *base)
{
    emb_t *e = base->impl;

    if (e->destroying)
        return;
    e->destroying = true;
    for (job_t *j = e->jobs; j != NULL; j = j->next) {
        j->canceled = true;
        if (j->hc != NULL) {
            eg_httpc_cancel(j->hc);
        } else {
            uv_timer_stop(&j->timer);
            uv_timer_start(&j->timer, on_backoff, 0, 0);
        }
    }
    if (e->jobs == NULL && e->closing == 0)
        emb_free(e);
}

eg_embedder_t *eg__embed_openai_new(uv_loop_t *loop, const eg_llm_settings_t *s, size_t dim,
                                    const eg__oai_limits_t *lim)
{
    emb_t *e = eg_xcalloc(1, sizeof(*e));
    eg_httpc_opts_t ho;
    char err[256] = "";
    char *allow;

    eg_httpc_opts_default(&ho);
    if (eg_httpc_opts_from_env(&ho, NULL, err, sizeof(err)) != 0) {
        eg_log_error("embeddings: %s", err);
        free(e);
        return NULL;
    }
    allow = eg__llm_allow_list(s->base_url);
    ho.allow = allow;
    /* The concurrency cap: more requests wait in the client's per-origin FIFO. */
    ho.max_conns_per_origin = lim->max_concurrency > 0 ? lim->max_concurrency : 1;
    e->http = eg_httpc_new(loop, &ho);
    free(allow);
    if (e->http == NULL) {
        free(e);
        return NULL;
    }
    e->loop = loop;
    e->lim = *lim;
    e->dim = dim;
    e->send_dim = true;
    e->url = eg_xmalloc(strlen(s->base_url) + sizeof("/embeddings"));
    sprintf(e->url, "%s/embeddings", s->base_url);
    if (eg_httpc_url_check(e->url) != 0) {
        eg_log_error("embeddings: base URL %s is not usable", s->base_url);
        emb_free(e);
        return NULL;
    }
    if (s->api_key != NULL && s->api_key[0] != '\0') {
        e->auth = eg_xmalloc(strlen(s->api_key) + sizeof("Bearer "));
        sprintf(e->auth, "Bearer %s", s->api_key);
    }
    e->model = eg_xstrdup(s->model != NULL ? s->model : "");
    e->name = eg_xmalloc(strlen(e->model) + 32);
    sprintf(e->name, "openai:%s:%zu", e->model, dim);
    e->base.name = e->name;
    e->base.dim = dim;
    e->base.embed = emb_embed;
    e->base.destroy = emb_destroy;
    e->base.impl = e;
    return &e->base;
}
