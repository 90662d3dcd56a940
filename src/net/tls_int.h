/* TLS over memory buffers (mbedTLS), so that libuv owns the socket: ciphertext read from the
 * socket is fed in, ciphertext to send accumulates in t->out for the caller to write. Private to
 * src/net (the HTTP client, and the listener when it grows TLS). */
#ifndef ENGRAM_TLS_INT_H
#define ENGRAM_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/ssl.h>

#include "engram/buf.h"

/* Positive results beside 0 and the negative EG_E* codes. */
#define EG_TLS_EOF   1 /* the peer sent close_notify */
#define EG_TLS_AGAIN 2 /* the handshake needs more input from the peer */

typedef struct eg_tls_ctx_s eg_tls_ctx_t;

typedef struct eg_tls_s {
    mbedtls_ssl_context ssl;
    eg_buf_t in; /* ciphertext received and not yet consumed by mbedTLS */
    size_t in_off;
    eg_buf_t out;       /* ciphertext produced by mbedTLS, waiting to be written to the socket */
    unsigned ready : 1; /* handshake finished */
    unsigned inited : 1;
} eg_tls_t;

/* Client configuration verifying peers against system_ca_file (NULL or "" for none) plus
 * extra_ca_file (NULL for none). A missing system file is only logged; a bad extra file is
 * EG_EINVAL with errbuf set. */
int eg__tls_ctx_client(eg_tls_ctx_t **out, const char *system_ca_file, const char *extra_ca_file,
                       char *errbuf, size_t errlen);

/* Server configuration from a PEM certificate chain and PEM private key (NUL-terminated). */
int eg__tls_ctx_server(eg_tls_ctx_t **out, const char *cert_pem, const char *key_pem, char *errbuf,
                       size_t errlen);

/* Free a configuration; every session made from it must be freed first. NULL is fine. */
void eg__tls_ctx_free(eg_tls_ctx_t *ctx);

/* Start a session. For a client, hostname is sent as SNI and checked against the certificate.
 * 0 or EG_ETLS. */
int eg__tls_init(eg_tls_t *t, eg_tls_ctx_t *ctx, const char *hostname);

/* Release a session (safe on a zeroed or already freed one). */
void eg__tls_free(eg_tls_t *t);

/* Hand ciphertext read from the socket to the session. */
void eg__tls_feed(eg_tls_t *t, const void *data, size_t len);

/* Advance the handshake; write t->out afterwards in every case. 0 when finished, EG_TLS_AGAIN
 * when more input is needed, or EG_ETLS with errbuf describing the failure (certificate
 * verification details included). */
int eg__tls_handshake(eg_tls_t *t, char *errbuf, size_t errlen);

/* Decrypt up to len bytes: 0 with *nread set (0 = needs more input), EG_TLS_EOF, or EG_ETLS. */
int eg__tls_read(eg_tls_t *t, void *buf, size_t len, size_t *nread);

/* Encrypt all of data into t->out. 0 or EG_ETLS. */
int eg__tls_write(eg_tls_t *t, const void *data, size_t len);

/* Queue a close_notify alert into t->out (best effort). */
void eg__tls_close_notify(eg_tls_t *t);

#endif
