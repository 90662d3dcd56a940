/* Request accessors and response building: headers, JSON bodies, errors in each face's shape,
 * the access log and HTTP metrics. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/metrics.h"
#include "engram/util.h"
#include "net_int.h"

const char *eg__server_date(eg_server_t *s);

eg_face_t eg_face_engram = {
    .name = "engram",
    .prefix = "",
    .render_error = eg_render_error_engram,
};

/* ---- request accessors ------------------------------------------------------------------- */

const char *eg_req_header(const eg_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (eg_strcaseeq(req->headers[i].name, name))
            return req->headers[i].value;
    return NULL;
}

const char *eg_req_param(const eg_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *eg_req_query(const eg_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nqs; i++)
        if (strcmp(req->qs[i].name, name) == 0)
            return req->qs[i].value;
    return NULL;
}

size_t eg_req_query_all(const eg_req_t *req, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nqs; i++) {
        if (strcmp(req->qs[i].name, name) != 0)
            continue;
        if (n < max)
            out[n] = req->qs[i].value;
        n++;
    }
    return n;
}

static void json_delete(void *p)
{
    cJSON_Delete(p);
}

cJSON *eg_req_json(eg_req_t *req)
{
    const char *end = NULL;
    cJSON *json;

    if (req->body.len == 0) {
        eg_res_error(req, EG_EBADJSON, "request body is empty: a JSON object is required");
        return NULL;
    }
    json = cJSON_ParseWithLengthOpts(req->body.data, req->body.len, &end, false);
    if (json == NULL) {
        size_t at = end ? (size_t)(end - req->body.data) : 0;
        eg_res_error(req, EG_EBADJSON, "malformed JSON in request body near byte %zu", at);
        return NULL;
    }
    /* Trailing garbage after the value is malformed too. */
    while (end && (size_t)(end - req->body.data) < req->body.len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && (size_t)(end - req->body.data) < req->body.len) {
        size_t at = (size_t)(end - req->body.data);
        cJSON_Delete(json);
        eg_res_error(req, EG_EBADJSON, "unexpected data after the JSON value at byte %zu", at);
        return NULL;
    }
    eg_arena_defer(&req->arena, json_delete, json);
    return json;
}

/* ---- response ---------------------------------------------------------------------------- */

void eg_res_header(eg_req_t *req, const char *name, const char *value)
{
    /* Header injection guard: values never carry CR or LF. */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    eg_buf_printf(&req->res_headers, "%s: %s\r\n", name, value);
}

static bool status_has_body(int status)
{
    return !(status == 204 || status == 304 || (status >= 100 && status < 200));
}

static void append_uint(eg_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    eg_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void eg__res_serialize(eg_req_t *req, eg_buf_t *b, const char *ctype, const void *body, size_t len)
{
    eg_server_t *s = req->server;
    const char *origin = eg_req_header(req, "Origin");
    const char *allow = eg__cors_allow(s, origin);

    /* The hot path: plain appends, no printf (this runs for every response). */
    eg_buf_puts(b, "HTTP/1.1 ");
    append_uint(b, (uint64_t)req->status);
    eg_buf_puts(b, " ");
    eg_buf_puts(b, eg_http_reason(req->status));
    eg_buf_puts(b, "\r\n");
    eg_buf_puts(b, eg__server_date(s));
    if (req->streaming) {
        if (ctype) {
            eg_buf_puts(b, "Content-Type: ");
            eg_buf_puts(b, ctype);
            eg_buf_puts(b, "\r\n");
        }
        eg_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    } else if (status_has_body(req->status)) {
        if (ctype) {
            eg_buf_puts(b, "Content-Type: ");
            eg_buf_puts(b, ctype);
            eg_buf_puts(b, "\r\n");
        }
        eg_buf_puts(b, "Content-Length: ");
        append_uint(b, len);
        eg_buf_puts(b, "\r\n");
    }
    eg_buf_puts(b, "X-Request-Id: ");
    eg_buf_puts(b, req->request_id);
    eg_buf_puts(b, "\r\n");
    if (allow) {
        eg_buf_printf(b, "Access-Control-Allow-Origin: %s\r\n", allow);
        eg_buf_puts(b, "Access-Control-Expose-Headers: X-Request-Id, Retry-After, Allow\r\n");
        if (strcmp(allow, "*") != 0)
            eg_buf_puts(b, "Vary: Origin\r\n");
    }
    if (req->res_headers.len)
        eg_buf_append(b, req->res_headers.data, req->res_headers.len);
    if (!req->keep_alive)
        eg_buf_puts(b, "Connection: close\r\n");
    else if (req->http10)
        eg_buf_puts(b, "Connection: keep-alive\r\n");
    eg_buf_puts(b, "\r\n");
    if (!req->is_head && status_has_body(req->status) && len)
        eg_buf_append(b, body, len);
}

static void access_log(eg_req_t *req, double seconds)
{
    eg_buf_t line = EG_BUF_INIT;
    char when[32];
    const char *route = req->route ? req->route->tmpl : "unmatched";
    const char *q;
    size_t plen;

    eg_time_iso8601(eg_now_ms(), when);
    eg_buf_printf(&line,
                  "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"access\",\"request_id\":", when);
    eg_buf_json_str(&line, req->request_id);
    eg_buf_puts(&line, ",\"method\":");
    eg_buf_json_str(&line, req->method ? req->method : "-");
    eg_buf_puts(&line, ",\"route\":");
    eg_buf_json_str(&line, route);
    eg_buf_puts(&line, ",\"path\":");
    /* The path only: query strings may carry ?token= credentials. */
    q = req->target ? strchr(req->target, '?') : NULL;
    plen = req->target ? (q ? (size_t)(q - req->target) : strlen(req->target)) : 0;
    if (plen > 256)
        plen = 256;
    char *path = eg_arena_strndup(&req->arena, req->target ? req->target : "", plen);
    eg_buf_json_str(&line, path);
    eg_buf_printf(&line, ",\"status\":%d,\"bytes\":%zu,\"us\":%llu,\"workspace\":", req->status,
                  req->res_bytes, (unsigned long long)(seconds * 1e6));
    if (req->auth.workspace_id[0])
        eg_buf_json_str(&line, req->auth.workspace_id);
    else
        eg_buf_puts(&line, "null");
    eg_buf_puts(&line, "}");
    eg_log_json(EG_LOG_INFO, line.data, line.len);
    eg_buf_free(&line);
}

void eg_res_send(eg_req_t *req, int status, const char *content_type, const void *body, size_t len)
{
    if (req->done || req->streaming) {
        eg_log_error("response sent twice for request %s (%s)", req->request_id,
                     req->route ? req->route->tmpl : "unmatched");
        if (req->streaming)
            eg_res_stream_end(req);
        return;
    }
    req->status = status;
    req->res_bytes = req->is_head ? 0 : len;
    eg__res_log(req);
    eg__conn_respond(req, content_type, body, len);
}

void eg_res_stream_begin(eg_req_t *req, int status, const char *content_type)
{
    if (req->done || req->streaming)
        return;
    req->status = status;
    req->streaming = 1;
    eg__conn_stream_begin(req, content_type);
}

int eg_res_stream_write(eg_req_t *req, const void *data, size_t len)
{
    int rc;

    if (req->done || !req->streaming)
        return EG_EINVAL;
    rc = eg__conn_stream_write(req, data, len);
    if (rc == 0)
        req->res_bytes += len;
    return rc;
}

void eg__res_log(eg_req_t *req)
{
    double seconds = (double)(eg_mono_ns() - req->start_ns) / 1e9;

    eg_metrics_http(req->route ? req->route->tmpl : "unmatched", req->method ? req->method : "-",
                    req->status, seconds);
    if (req->server->cfg->access_log)
        access_log(req, seconds);
}

void eg_res_stream_end(eg_req_t *req)
{
    if (req->done || !req->streaming)
        return;
    req->on_stream_stop = NULL;
    eg__res_log(req);
    eg__conn_stream_end(req);
}

void eg_res_json(eg_req_t *req, int status, cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);

    cJSON_Delete(json);
    if (text == NULL) {
        eg_log_error("out of memory printing JSON");
        abort();
    }
    eg_res_send(req, status, "application/json", text, strlen(text));
    free(text);
}

void eg_render_error_engram(eg_req_t *req, int status, int err, const char *message)
{
    eg_buf_t b = EG_BUF_INIT;

    /* Each face chooses its own Retry-After for storage outages; engram's clients retry fast. */
    if (err == EG_EUNAVAIL || err == EG_ESTORETIMEOUT || err == EG_EREDIS)
        eg_res_header(req, "Retry-After", "1");
    eg_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", eg_err_code(err));
    eg_buf_json_str(&b, message);
    eg_buf_puts(&b, ",\"request_id\":");
    eg_buf_json_str(&b, req->request_id);
    eg_buf_puts(&b, "}}");
    eg_res_send(req, status, "application/json", b.data, b.len);
    eg_buf_free(&b);
}

static void res_verror(eg_req_t *req, int status, int err, const char *fmt, va_list ap)
{
    const eg_face_t *face = req->face ? req->face : &eg_face_engram;
    char *msg = eg_arena_vprintf(&req->arena, fmt, ap);

    if (status >= 500)
        eg_log_warn("request %s failed: %s (%s)", req->request_id, msg, eg_err_name(err));
    face->render_error(req, status, err, msg);
}

void eg_res_error(eg_req_t *req, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    res_verror(req, eg_err_http_status(err), err, fmt, ap);
    va_end(ap);
}

void eg_res_error_status(eg_req_t *req, int status, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    res_verror(req, status, err, fmt, ap);
    va_end(ap);
}
