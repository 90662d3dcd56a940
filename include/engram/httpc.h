/* Outbound HTTP/1.1 client on the loop: webhook deliveries, LLM calls (with SSE streaming), URL
 * fetches. http and https (mbedTLS, system CAs + ENGRAM_OUTBOUND_CA_FILE), a keep-alive pool per
 * origin, timeouts, size caps, redirects, and the SSRF guard (engram/ssrf.h) on every hop. */
#ifndef ENGRAM_HTTPC_H
#define ENGRAM_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engram/buf.h"
#include "engram/http.h"

typedef struct eg_httpc_s eg_httpc_t;
typedef struct eg_httpc_call_s eg_httpc_call_t;

/* Client-wide settings; eg_httpc_opts_default fills them, ENGRAM_OUTBOUND_* may override. */
typedef struct eg_httpc_opts_s {
    uint64_t connect_timeout_ms; /* DNS + TCP connect + TLS handshake, default 10s */
    uint64_t header_timeout_ms;  /* request sent -> response headers complete, default 60s */
    uint64_t total_timeout_ms;   /* whole call including redirects and body, default 300s */
    uint64_t idle_timeout_ms;    /* a pooled keep-alive connection is closed after, default 30s */
    size_t max_response_bytes;   /* body bytes per response (buffered or streamed), default 10m */
    size_t max_header_bytes;     /* response header block, default 64k */
    int max_redirects;           /* default 5 */
    int max_idle_per_origin;     /* idle keep-alive connections kept per origin, default 8 */
    int max_conns_per_origin;    /* open connections per origin; more requests queue, default 16 */
    const char *system_ca_file;  /* default /etc/ssl/certs/ca-certificates.crt, "" for none */
    const char *extra_ca_file;   /* ENGRAM_OUTBOUND_CA_FILE: more trusted roots (PEM), or NULL */
    const char *allow;           /* ENGRAM_OUTBOUND_ALLOW: SSRF allow-list, or NULL */
    const char *user_agent;      /* default "engram/<version>" */
} eg_httpc_opts_t;

/* Response handed to on_headers and done. Valid only during that callback. */
typedef struct eg_httpc_resp_s {
    int status;       /* 0 when the call failed before a response */
    eg_kv_t *headers; /* in arrival order; names as received */
    size_t nheaders;
    eg_buf_t body;       /* whole body; empty when streamed (on_data) or on failure */
    uint64_t elapsed_ms; /* since eg_httpc_request */
    int redirects;       /* redirects followed */
    const char *url;     /* URL of the final hop */
    const char *error;   /* on failure, a one-line detail for logs ("header timeout", ...) */
} eg_httpc_resp_t;

/* Final result, called exactly once per accepted call, always from the loop (never from inside
 * eg_httpc_request or eg_httpc_cancel). err is 0 or a negative EG_E* code; resp is never NULL. */
typedef void (*eg_httpc_done_fn)(void *udata, int err, eg_httpc_resp_t *resp);

/* Streaming: headers of the final response (after redirects), then each body chunk in order.
 * Return non-zero to abort the call (done then gets EG_ECANCELED). */
typedef int (*eg_httpc_headers_fn)(void *udata, const eg_httpc_resp_t *resp);
typedef int (*eg_httpc_data_fn)(void *udata, const char *data, size_t len);

typedef struct eg_httpc_req_s {
    const char *method;     /* default "GET" */
    const char *url;        /* http:// or https://, no credentials */
    const eg_kv_t *headers; /* extra request headers (Host, Content-Length, Connection and
                               Transfer-Encoding are the client's own) */
    size_t nheaders;
    const void *body; /* request body (copied), sent with Content-Length */
    size_t body_len;
    uint64_t connect_timeout_ms; /* 0 = client default, for this and the following limits */
    uint64_t header_timeout_ms;
    uint64_t total_timeout_ms;
    size_t max_response_bytes;
    int max_redirects; /* 0 = client default; EG_HTTPC_NO_REDIRECTS returns 3xx as is */
    eg_httpc_headers_fn on_headers; /* optional */
    eg_httpc_data_fn on_data;       /* optional; when set the body is not buffered */
} eg_httpc_req_t;

#define EG_HTTPC_NO_REDIRECTS (-1)

/* Fill opts with the built-in defaults. */
void eg_httpc_opts_default(eg_httpc_opts_t *opts);

/* Apply ENGRAM_OUTBOUND_* variables (get = NULL uses getenv; returned strings must outlive the
 * client). 0, or EG_EINVAL with errbuf naming the variable and value. */
int eg_httpc_opts_from_env(eg_httpc_opts_t *opts, const char *(*get)(const char *name),
                           char *errbuf, size_t errlen);

/* Create a client on loop (opts NULL = defaults + environment). Loads the CA bundle once. NULL on
 * a bad allow-list or CA file (logged). */
eg_httpc_t *eg_httpc_new(uv_loop_t *loop, const eg_httpc_opts_t *opts);

/* Start a call. 0 and done comes later, or a negative EG_E* code now (done is not called):
 * EG_EINVAL for a malformed URL, method or header, EG_ESSRF for a non-http(s) scheme or a URL
 * with credentials. *out (optional) identifies the call for eg_httpc_cancel until done runs. */
int eg_httpc_request(eg_httpc_t *c, const eg_httpc_req_t *req, eg_httpc_done_fn done, void *udata,
                     eg_httpc_call_t **out);

/* Abort a call whose done has not run yet: its connection is closed if mid-exchange, and done
 * gets EG_ECANCELED on a later loop turn. */
void eg_httpc_cancel(eg_httpc_call_t *call);

/* Fail every pending call with EG_ECANCELED, close every connection; memory is released in the
 * last close callback, so run the loop afterwards. Safe inside any client callback. */
void eg_httpc_free(eg_httpc_t *c);

/* Connections currently open (all origins): connecting, busy or idle. For tests and metrics. */
size_t eg_httpc_open_connections(const eg_httpc_t *c);

/* Check that url is one the client would accept (scheme, credentials, host, port): 0, EG_EINVAL
 * or EG_ESSRF. Does not resolve; e.g. for validating webhook URLs when they are registered. */
int eg_httpc_url_check(const char *url);

/* Case-insensitive response header lookup (first match), NULL when absent. */
const char *eg_httpc_resp_header(const eg_httpc_resp_t *resp, const char *name);

#endif
