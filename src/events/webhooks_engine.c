/* The webhook delivery engine: consumes the "webhooks" queue, makes one signed attempt per job,
 * logs it on the delivery record, and schedules the next attempt or finishes the delivery.
 *
 * One attempt is a small flow with a step: LOAD (endpoint and delivery, one script), SEND (the
 * signed POST through httpc), RECORD (attempt log, status, and on a 410 the endpoint's
 * disabling, one script), then the job is finished. The delivery record, not the queue, is the
 * source of truth: the attempt number comes from it (so an attempt cut short by a shutdown does
 * not use up a step of the schedule), and a job whose delivery already succeeded is dropped, which
 * makes the queue's at-least-once redelivery harmless.
 *
 * A bank endpoint (engram/bank_webhooks.h) is the same flow with Hindsight's request: its own
 * method, query params, headers and timeout, a signature only when it has a secret, 6 attempts,
 * and no special meaning for a 410. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank_webhooks.h"
#include "engram/buf.h"
#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/log.h"
#include "engram/queue.h"
#include "engram/store.h"
#include "engram/util.h"
#include "engram/webhooks.h"
#include "webhooks_int.h"

#define WH_ATTEMPTS_KEPT   50  /* attempt log entries kept per delivery */
#define WH_RESP_HEADERS    8   /* response headers logged per attempt */
#define WH_RESP_HEADER_MAX 256 /* bytes of each logged header value */
#define WH_ERROR_MAX       300
#define WH_STORE_RETRY_MS  2000 /* when Redis itself failed us mid-attempt */

enum { WH_LOAD, WH_SEND, WH_RECORD };

typedef struct wh_attempt_s {
    eg_arena_t arena;
    eg_job_t *job;
    int step;
    char *ws, *ep, *did;
    /* LOAD */
    const char *url, *secret, *body, *type;
    size_t body_len;
    eg_webhook_signing_t signing;
    unsigned n; /* attempts already made in this round */
    /* a bank endpoint's request (bank NULL for a workspace endpoint) */
    const char *bank, *method;
    int timeout_s;
    eg_kv_t *headers, *params;
    size_t nheaders, nparams;
    /* SEND */
    eg_httpc_call_t *call;
    /* RECORD */
    const char *status; /* what the delivery becomes */
    int64_t delay_ms;   /* until the next attempt, when retrying */
    const char *reason; /* for the queue's log and dead letters */
    bool canceled;      /* cut short by a shutdown: not an attempt */
    struct wh_attempt_s *prev, *next;
} wh_attempt_t;

static struct {
    eg_queue_t *q;
    eg_httpc_t *http;
    double scale;
    wh_attempt_t *running;
    bool stopping, queue_closed;
    void (*done)(void *);
    void *udata;
} s_eng;

/* KEYS endpoint, delivery. Returns {url, signing, secret, enabled, bank_id, method, timeout,
 * headers, params} (the last five only for a bank endpoint) and {status, body, type, n,
 * endpoint}. */
static eg_script_t s_load = {
    .name = "webhooks_load",
    .source = "return {redis.call('HMGET', KEYS[1], 'url', 'signing', 'secret', 'enabled',\n"
              "                     'bank_id', 'method', 'timeout', 'headers', 'params'),\n"
              "  redis.call('HMGET', KEYS[2], 'status', 'body', 'event_type', 'n', 'endpoint')}\n",
};

/* KEYS endpoint, delivery, attempts; ARGV attempt JSON ('' = none), status, next_attempt_at,
 * now, n, disable ('1'), disabled_reason, retention ms, attempts kept. 0 when the delivery is
 * gone. */
static eg_script_t s_record = {
    .name = "webhooks_record",
    .source = "if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end\n"
              "if ARGV[1] ~= '' then\n"
              "  redis.call('RPUSH', KEYS[3], ARGV[1])\n"
              "  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[9]), -1)\n"
              "  redis.call('PEXPIRE', KEYS[3], ARGV[8])\n"
              "end\n"
              "redis.call('HSET', KEYS[2], 'status', ARGV[2], 'next_attempt_at', ARGV[3],\n"
              "           'updated_at', ARGV[4], 'n', ARGV[5])\n"
              "if ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then\n"
              "  redis.call('HSET', KEYS[1], 'enabled', '0', 'disabled_reason', ARGV[7],\n"
              "             'updated_at', ARGV[4])\n"
              "end\n"
              "return 1\n",
};

static void wh_step(wh_attempt_t *at, int err, redisReply *r, eg_httpc_resp_t *resp);

static void wh_attempt_free(wh_attempt_t *at)
{
    if (at->prev != NULL)
        at->prev->next = at->next;
    else
        s_eng.running = at->next;
    if (at->next != NULL)
        at->next->prev = at->prev;
    eg_arena_destroy(&at->arena);
    free(at);
    if (s_eng.stopping && s_eng.queue_closed && s_eng.running == NULL && s_eng.done != NULL) {
        void (*done)(void *) = s_eng.done;

        s_eng.done = NULL;
        eg_httpc_free(s_eng.http);
        s_eng.http = NULL;
        done(s_eng.udata);
    }
}

static const char *wh_str(eg_arena_t *a, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return NULL;
    return eg_arena_strndup(a, r->str, r->len);
}

static void on_store(void *udata, int err, redisReply *r)
{
    wh_step(udata, err, r, NULL);
}

static void on_http(void *udata, int err, eg_httpc_resp_t *resp)
{
    wh_attempt_t *at = udata;

    at->call = NULL;
    wh_step(at, err, NULL, resp);
}

/* ---- LOAD -------------------------------------------------------------------------------- */

/* Finish without an attempt: the delivery can no longer be made (endpoint gone or disabled). */
static void wh_abandon(wh_attempt_t *at, const char *why)
{
    at->status = "failed";
    at->reason = why;
    at->step = WH_RECORD;
}

/* What LOAD found decides between sending, recording a verdict, or dropping the job. Returns
 * false when the job was finished here. */
static bool wh_loaded(wh_attempt_t *at, redisReply *r)
{
    const redisReply *e, *d;
    const char *enabled, *status, *n, *owner, *signing;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 9 ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements != 5) {
        eg_job_retry(at->job, WH_STORE_RETRY_MS, "webhooks: unexpected load reply");
        return false;
    }
    e = r->element[0];
    d = r->element[1];
    status = wh_str(&at->arena, d->element[0]);
    at->body = wh_str(&at->arena, d->element[1]);
    at->type = wh_str(&at->arena, d->element[2]);
    n = wh_str(&at->arena, d->element[3]);
    owner = wh_str(&at->arena, d->element[4]);
    /* Expired, already delivered, or given up on (a manual retry pushes a new job). */
    if (status == NULL || at->body == NULL || owner == NULL || strcmp(owner, at->ep) != 0 ||
        strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0) {
        eg_job_done(at->job, 0);
        return false;
    }
    at->body_len = d->element[1]->len;
    at->n = n != NULL ? (unsigned)strtoul(n, NULL, 10) : 0;
    at->url = wh_str(&at->arena, e->element[0]);
    signing = wh_str(&at->arena, e->element[1]);
    at->secret = wh_str(&at->arena, e->element[2]);
    enabled = wh_str(&at->arena, e->element[3]);
    if (at->url == NULL || at->secret == NULL ||
        eg_webhook_signing_parse(signing, &at->signing) != 0) {
        wh_abandon(at, "endpoint deleted");
        return true;
    }
    if (enabled == NULL || strcmp(enabled, "1") != 0) {
        wh_abandon(at, "endpoint disabled");
        return true;
    }
    at->bank = wh_str(&at->arena, e->element[4]);
    if (at->bank != NULL) {
        const char *timeout = wh_str(&at->arena, e->element[6]);

        at->method = wh_str(&at->arena, e->element[5]);
        at->timeout_s = timeout != NULL ? atoi(timeout) : 0;
        if (at->method == NULL || at->timeout_s < 1 ||
            !eg__bwh_kv_parse(&at->arena, wh_str(&at->arena, e->element[7]), &at->headers,
                              &at->nheaders) ||
            !eg__bwh_kv_parse(&at->arena, wh_str(&at->arena, e->element[8]), &at->params,
                              &at->nparams)) {
            eg_log_error("webhooks: bank endpoint %s of workspace %s is malformed", at->ep, at->ws);
            wh_abandon(at, "endpoint malformed");
            return true;
        }
    }
    at->step = WH_SEND;
    return true;
}

/* ---- SEND -------------------------------------------------------------------------------- */

/* Hindsight's request: its method (GET carries no body) and params, its headers, and a signature
 * of the body only when the endpoint has a secret. */
static int wh_send_bank(wh_attempt_t *at)
{
    eg_kv_t *h = eg_arena_calloc(&at->arena, (at->nheaders + 3) * sizeof(*h));
    eg_buf_t url = EG_BUF_INIT;
    eg_httpc_req_t req = {0};
    uint64_t timeout_ms = (uint64_t)at->timeout_s * 1000;
    char sig[72];
    int rc;

    if (at->secret[0] != '\0')
        eg_webhook_sign_hex(at->secret, at->body, at->body_len, sig);
    req.nheaders = eg_bank_webhook_headers(at->type != NULL ? at->type : "", at->headers,
                                           at->nheaders, at->secret[0] != '\0' ? sig : NULL, h);
    eg_bank_webhook_url(&url, at->url, at->params, at->nparams);
    eg_buf_puts(&url, ""); /* NUL-terminates */
    req.method = at->method;
    req.url = url.data;
    req.headers = h;
    if (strcmp(at->method, "GET") != 0) {
        req.body = at->body;
        req.body_len = at->body_len;
    }
    req.connect_timeout_ms = timeout_ms;
    req.header_timeout_ms = timeout_ms;
    req.total_timeout_ms = timeout_ms;
    req.max_response_bytes = 64 * 1024;
    req.max_redirects = EG_HTTPC_NO_REDIRECTS;
    rc = eg_httpc_request(s_eng.http, &req, on_http, at, &at->call);
    eg_buf_free(&url);
    return rc;
}

static int wh_send(wh_attempt_t *at)
{
    eg_kv_t h[5];
    size_t nh = 0;
    char sig[72], ssig[64], ts[24];
    int64_t now_s = eg_now_ms() / 1000;
    eg_httpc_req_t req = {0};
    int rc;

    if (at->bank != NULL)
        return wh_send_bank(at);
    h[nh++] = (eg_kv_t){"Content-Type", "application/json"};
    switch (at->signing) {
    case EG_WEBHOOK_STANDARD:
        rc = eg_webhook_sign_standard(at->secret, at->did, now_s, at->body, at->body_len, ssig);
        if (rc != 0)
            return rc;
        snprintf(ts, sizeof(ts), "%" PRId64, now_s);
        h[nh++] = (eg_kv_t){"webhook-id", at->did};
        h[nh++] = (eg_kv_t){"webhook-timestamp", ts};
        h[nh++] = (eg_kv_t){"webhook-signature", ssig};
        break;
    case EG_WEBHOOK_FENCY:
        eg_webhook_sign_hex(at->secret, at->body, at->body_len, sig);
        h[nh++] = (eg_kv_t){"x-fency-signature", sig};
        break;
    case EG_WEBHOOK_HINDSIGHT:
        eg_webhook_sign_hex(at->secret, at->body, at->body_len, sig);
        h[nh++] = (eg_kv_t){"X-Hindsight-Event", at->type != NULL ? at->type : ""};
        h[nh++] = (eg_kv_t){"X-Hindsight-Signature", sig};
        break;
    }
    req.method = "POST";
    req.url = at->url;
    req.headers = h;
    req.nheaders = nh;
    req.body = at->body;
    req.body_len = at->body_len;
    req.connect_timeout_ms = EG_WEBHOOK_TIMEOUT_MS;
    req.header_timeout_ms = EG_WEBHOOK_TIMEOUT_MS;
    req.total_timeout_ms = EG_WEBHOOK_TIMEOUT_MS;
    req.max_response_bytes = 64 * 1024;
    /* Standard Webhooks: a redirect is a failure; the owner should update the URL. */
    req.max_redirects = EG_HTTPC_NO_REDIRECTS;
    return eg_httpc_request(s_eng.http, &req, on_http, at, &at->call);
}

/* The attempt's log entry, and the verdict: succeeded, retrying (with a delay), or failed. */
static char *wh_judge(wh_attempt_t *at, int err, const eg_httpc_resp_t *resp, bool *disable)
{
    eg_buf_t b = EG_BUF_INIT;
    char iso[32], error[WH_ERROR_MAX];
    int code = resp != NULL ? resp->status : 0;
    uint32_t rnd;
    char *json;

    *disable = false;
    error[0] = '\0';
    if (err != 0)
        snprintf(error, sizeof(error), "%s%s%s", eg_strerror(err),
                 resp != NULL && resp->error != NULL ? ": " : "",
                 resp != NULL && resp->error != NULL ? resp->error : "");
    else if (code < 200 || code > 299)
        snprintf(error, sizeof(error), "HTTP %d %s from receiver", code, eg_http_reason(code));
    at->n++;
    if (err == 0 && code >= 200 && code <= 299) {
        at->status = "succeeded";
    } else if (err == 0 && code == 410 && at->bank == NULL) {
        /* The receiver asks us to stop: disable the endpoint, no more retries. */
        at->status = "failed";
        at->reason = "410 Gone from receiver";
        *disable = true;
    } else {
        eg_random_bytes(&rnd, sizeof(rnd));
        at->delay_ms = eg_webhook_retry_delay_ms(at->n, s_eng.scale, rnd);
        /* Hindsight's schedule is the first five steps of the same one. */
        if (at->bank != NULL && at->n >= EG_BANK_WEBHOOK_ATTEMPTS)
            at->delay_ms = -1;
        at->status = at->delay_ms < 0 ? "failed" : "retrying";
        at->reason = eg_arena_strdup(&at->arena, error);
    }

    eg_time_iso8601(eg_now_ms(), iso);
    eg_buf_puts(&b, "{\"at\":");
    eg_buf_json_str(&b, iso);
    if (code > 0)
        eg_buf_printf(&b, ",\"status_code\":%d", code);
    else
        eg_buf_puts(&b, ",\"status_code\":null");
    eg_buf_printf(&b, ",\"latency_ms\":%" PRIu64 ",\"response_headers\":{",
                  resp != NULL ? resp->elapsed_ms : 0);
    for (size_t i = 0; resp != NULL && err == 0 && i < resp->nheaders && i < WH_RESP_HEADERS; i++) {
        char v[WH_RESP_HEADER_MAX + 1];

        snprintf(v, sizeof(v), "%s", resp->headers[i].value);
        if (i > 0)
            eg_buf_puts(&b, ",");
        eg_buf_json_str(&b, resp->headers[i].name);
        eg_buf_puts(&b, ":");
        eg_buf_json_str(&b, v);
    }
    eg_buf_puts(&b, "},\"error\":");
    if (error[0] != '\0')
        eg_buf_json_str(&b, error);
    else
        eg_buf_puts(&b, "null");
    /* Hindsight lists a delivery's last response body: keep the start of it. */
    if (at->bank != NULL && resp != NULL && err == 0) {
        size_t n = EG_MIN(resp->body.len, (size_t)EG_BANK_WEBHOOK_RESP_BODY_MAX);
        char *rb = eg_arena_strndup(&at->arena, resp->body.data != NULL ? resp->body.data : "", n);

        eg_buf_puts(&b, ",\"response_body\":");
        eg_buf_json_str(&b, rb);
    }
    eg_buf_puts(&b, "}");
    json = eg_arena_strndup(&at->arena, b.data, b.len);
    eg_buf_free(&b);
    return json;
}

/* ---- RECORD ------------------------------------------------------------------------------ */

static int wh_record(wh_attempt_t *at, const char *attempt_json, bool disable)
{
    const char *argv[12];
    char now[32], next[32] = "", n[16], ttl[24], kept[16];

    eg_time_iso8601(eg_now_ms(), now);
    if (strcmp(at->status, "retrying") == 0)
        eg_time_iso8601(eg_now_ms() + at->delay_ms, next);
    snprintf(n, sizeof(n), "%u", at->n);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)EG_WEBHOOK_RETENTION_MS);
    snprintf(kept, sizeof(kept), "%d", WH_ATTEMPTS_KEPT);
    argv[0] = eg__wh_key_endpoint(&at->arena, at->ws, at->ep);
    argv[1] = eg__wh_key_delivery(&at->arena, at->ws, at->did);
    argv[2] = eg__wh_key_attempts(&at->arena, at->ws, at->did);
    argv[3] = attempt_json != NULL ? attempt_json : "";
    argv[4] = at->status;
    argv[5] = next;
    argv[6] = now;
    argv[7] = n;
    argv[8] = disable ? "1" : "0";
    argv[9] = disable ? "410 Gone from receiver" : "";
    argv[10] = ttl;
    argv[11] = kept;
    return eg_store_eval(&s_record, on_store, at, 3, 12, argv, NULL);
}

/* The attempt is logged: finish the job accordingly. */
static void wh_finish(wh_attempt_t *at)
{
    if (strcmp(at->status, "succeeded") == 0)
        eg_job_done(at->job, 0);
    else if (strcmp(at->status, "retrying") == 0)
        eg_job_retry(at->job, (uint64_t)(at->delay_ms > 0 ? at->delay_ms : 1), at->reason);
    else
        eg_job_fail(at->job, at->reason != NULL ? at->reason : "delivery failed");
}

/* ---- the flow ---------------------------------------------------------------------------- */

static void wh_step(wh_attempt_t *at, int err, redisReply *r, eg_httpc_resp_t *resp)
{
    const char *json = NULL;
    bool disable = false;
    int rc;

    switch (at->step) {
    case WH_LOAD:
        if (err == 0 && r != NULL && r->type == REDIS_REPLY_ERROR)
            err = EG_EREDIS;
        if (err != 0) {
            eg_job_retry(at->job, WH_STORE_RETRY_MS, eg_strerror(err));
            goto done;
        }
        if (!wh_loaded(at, r))
            goto done;
        if (at->step == WH_RECORD)
            break;
        rc = wh_send(at);
        if (rc == 0)
            return; /* on_http continues */
        /* The URL or secret no longer passes the client's checks: record it as an attempt. */
        at->step = WH_SEND;
        json = wh_judge(at, rc, NULL, &disable);
        break;
    case WH_SEND:
        if (err == EG_ECANCELED && s_eng.stopping) {
            /* Not the receiver's fault: try again soon, without logging an attempt. */
            eg_job_retry(at->job, 1, "engramd shutting down");
            goto done;
        }
        json = wh_judge(at, err, resp, &disable);
        break;
    case WH_RECORD:
        if (err == 0 && r != NULL && r->type == REDIS_REPLY_ERROR)
            err = EG_EREDIS;
        if (err != 0) {
            /* The attempt is not logged; making it again is the honest way to find out. */
            eg_job_retry(at->job, WH_STORE_RETRY_MS, eg_strerror(err));
            goto done;
        }
        wh_finish(at);
        goto done;
    }
    at->step = WH_RECORD;
    rc = wh_record(at, json, disable);
    if (rc == 0)
        return;
    eg_job_retry(at->job, WH_STORE_RETRY_MS, eg_strerror(rc));
done:
    wh_attempt_free(at);
}

static void on_job(eg_job_t *job, void *udata)
{
    wh_attempt_t *at = eg_xcalloc(1, sizeof(*at));
    const char *argv[2];
    int rc;

    (void)udata;
    eg_arena_init(&at->arena);
    at->job = job;
    at->step = WH_LOAD;
    at->next = s_eng.running;
    if (at->next != NULL)
        at->next->prev = at;
    s_eng.running = at;
    if (!eg__wh_job_parse(&at->arena, eg_job_payload(job, NULL), &at->ws, &at->ep, &at->did)) {
        eg_job_fail(job, "malformed webhook job payload");
        goto done;
    }
    argv[0] = eg__wh_key_endpoint(&at->arena, at->ws, at->ep);
    argv[1] = eg__wh_key_delivery(&at->arena, at->ws, at->did);
    rc = eg_store_eval(&s_load, on_store, at, 2, 2, argv, NULL);
    if (rc == 0)
        return;
    eg_job_retry(job, WH_STORE_RETRY_MS, eg_strerror(rc));
done:
    wh_attempt_free(at);
}

/* ---- start, stop ------------------------------------------------------------------------- */

int eg_webhooks_start(uv_loop_t *loop)
{
    const char *scale = getenv("ENGRAM_WEBHOOK_RETRY_SCALE");
    const char *vis = getenv("ENGRAM_WEBHOOK_VISIBILITY");
    eg_queue_opts_t qo = {0};
    uint64_t vis_ms = 60000;
    char *end = NULL;

    memset(&s_eng, 0, sizeof(s_eng));
    s_eng.scale = 1.0;
    if (scale != NULL && scale[0] != '\0') {
        s_eng.scale = strtod(scale, &end);
        if (end == scale || *end != '\0' || !(s_eng.scale > 0 && s_eng.scale <= 1000)) {
            eg_log_error("ENGRAM_WEBHOOK_RETRY_SCALE must be a number above 0 and up to 1000, "
                         "not \"%s\"",
                         scale);
            return EG_EINVAL;
        }
    }
    if (vis != NULL && vis[0] != '\0' &&
        (eg_parse_duration_ms(vis, &vis_ms) != 0 || vis_ms < 1000)) {
        eg_log_error("ENGRAM_WEBHOOK_VISIBILITY must be a duration of at least 1s, not \"%s\"",
                     vis);
        return EG_EINVAL;
    }
    s_eng.http = eg_httpc_new(loop, NULL);
    if (s_eng.http == NULL)
        return EG_EINVAL;
    qo.handler = on_job;
    qo.concurrency = 64; /* attempts wait on receivers, not on us */
    /* The schedule is ours (eg_webhook_retry_delay_ms); the queue's budget only stops a job
     * that keeps being cut short, e.g. by restarts. */
    qo.max_attempts = 64;
    qo.visibility_ms = vis_ms;
    qo.close_timeout_ms = 3000;
    s_eng.q = eg_queue_open(EG_WEBHOOK_QUEUE, &qo);
    if (s_eng.q == NULL) {
        eg_httpc_free(s_eng.http);
        s_eng.http = NULL;
        return EG_EINVAL;
    }
    eg_events_set_emit_hook(eg__wh_fanout);
    return 0;
}

static void on_queue_closed(void *udata)
{
    (void)udata;
    s_eng.q = NULL;
    s_eng.queue_closed = true;
    /* Attempts still waiting on a receiver after the grace period are cut short (they are
     * retried by whoever runs next); store steps finish by themselves. */
    for (wh_attempt_t *at = s_eng.running; at != NULL; at = at->next)
        if (at->call != NULL)
            eg_httpc_cancel(at->call);
    if (s_eng.running == NULL) {
        void (*done)(void *) = s_eng.done;

        s_eng.done = NULL;
        eg_httpc_free(s_eng.http);
        s_eng.http = NULL;
        if (done != NULL)
            done(s_eng.udata);
    }
}

void eg_webhooks_stop(void (*done)(void *), void *udata)
{
    eg_events_set_emit_hook(NULL);
    s_eng.stopping = true;
    s_eng.done = done;
    s_eng.udata = udata;
    if (s_eng.q == NULL) {
        s_eng.queue_closed = true;
        if (s_eng.http != NULL)
            eg_httpc_free(s_eng.http);
        s_eng.http = NULL;
        s_eng.done = NULL;
        if (done != NULL)
            done(udata);
        return;
    }
    eg_queue_close(s_eng.q, on_queue_closed, NULL);
}
