/* TLS sessions over memory buffers. mbedTLS normally owns a blocking socket; here its BIO
 * callbacks read from and write to buffers instead, so the connection stays a plain libuv stream
 * and TLS is a pure transformation the owner drives after each read and before each write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/util.h"
#include "tls_int.h"

struct eg_tls_ctx_s {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;   /* client: trusted roots */
    mbedtls_x509_crt cert; /* server: own chain */
    mbedtls_pk_context key;
    bool server;
};

/* mbedTLS wants an RNG callback; the process CSPRNG (util.c, CTR-DRBG) already is one. */
static int tls_rng(void *p, unsigned char *out, size_t n)
{
    eg_random_bytes(out, n);
    return 0;
}

static void tls_errstr(int ret, const char *what, char *errbuf, size_t errlen)
{
    char msg[160];

    if (!errbuf || !errlen)
        return;
    mbedtls_strerror(ret, msg, sizeof(msg));
    snprintf(errbuf, errlen, "%s: %s (-0x%04x)", what, msg, (unsigned)-ret);
}

static eg_tls_ctx_t *ctx_alloc(bool server)
{
    eg_tls_ctx_t *ctx = eg_xcalloc(1, sizeof(*ctx));

    ctx->server = server;
    mbedtls_ssl_config_init(&ctx->conf);
    mbedtls_x509_crt_init(&ctx->ca);
    mbedtls_x509_crt_init(&ctx->cert);
    mbedtls_pk_init(&ctx->key);
    return ctx;
}

void eg__tls_ctx_free(eg_tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    mbedtls_ssl_config_free(&ctx->conf);
    mbedtls_x509_crt_free(&ctx->ca);
    mbedtls_x509_crt_free(&ctx->cert);
    mbedtls_pk_free(&ctx->key);
    free(ctx);
}

static int ctx_defaults(eg_tls_ctx_t *ctx, char *errbuf, size_t errlen)
{
    int ret = mbedtls_ssl_config_defaults(
        &ctx->conf, ctx->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);

    if (ret != 0) {
        tls_errstr(ret, "TLS configuration", errbuf, errlen);
        return EG_EINTERNAL;
    }
    /* TLS 1.0/1.1 are deprecated (RFC 8996); nothing worth talking to still needs them. */
    mbedtls_ssl_conf_min_version(&ctx->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&ctx->conf, tls_rng, NULL);
    return 0;
}

int eg__tls_ctx_client(eg_tls_ctx_t **out, const char *system_ca_file, const char *extra_ca_file,
                       char *errbuf, size_t errlen)
{
    eg_tls_ctx_t *ctx = ctx_alloc(false);
    int rc, ret;

    if ((rc = ctx_defaults(ctx, errbuf, errlen)) != 0)
        goto fail;
    if (system_ca_file && *system_ca_file) {
        /* A positive result counts certificates that failed to parse; bundles carry a few roots
         * mbedTLS cannot read, which is no reason to distrust the rest. */
        ret = mbedtls_x509_crt_parse_file(&ctx->ca, system_ca_file);
        if (ret < 0)
            eg_log_warn("outbound TLS: cannot load system CA bundle %s (-0x%04x)", system_ca_file,
                        (unsigned)-ret);
    }
    if (extra_ca_file && *extra_ca_file) {
        ret = mbedtls_x509_crt_parse_file(&ctx->ca, extra_ca_file);
        if (ret != 0) {
            if (errbuf && errlen)
                snprintf(errbuf, errlen, "cannot load CA file %s (%d)", extra_ca_file, ret);
            rc = EG_EINVAL;
            goto fail;
        }
    }
    mbedtls_ssl_conf_authmode(&ctx->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&ctx->conf, &ctx->ca, NULL);
    *out = ctx;
    return 0;

fail:
    eg__tls_ctx_free(ctx);
    *out = NULL;
    return rc;
}

int eg__tls_ctx_server(eg_tls_ctx_t **out, const char *cert_pem, const char *key_pem, char *errbuf,
                       size_t errlen)
{
    eg_tls_ctx_t *ctx = ctx_alloc(true);
    int rc, ret;

    if ((rc = ctx_defaults(ctx, errbuf, errlen)) != 0)
        goto fail;
    rc = EG_EINVAL;
    ret = mbedtls_x509_crt_parse(&ctx->cert, (const unsigned char *)cert_pem, strlen(cert_pem) + 1);
    if (ret != 0) {
        tls_errstr(ret, "server certificate", errbuf, errlen);
        goto fail;
    }
    ret = mbedtls_pk_parse_key(&ctx->key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL,
                               0);
    if (ret != 0) {
        tls_errstr(ret, "server key", errbuf, errlen);
        goto fail;
    }
    ret = mbedtls_ssl_conf_own_cert(&ctx->conf, &ctx->cert, &ctx->key);
    if (ret != 0) {
        tls_errstr(ret, "server certificate", errbuf, errlen);
        goto fail;
    }
    *out = ctx;
    return 0;

fail:
    eg__tls_ctx_free(ctx);
    *out = NULL;
    return rc;
}

/* ---- sessions --------------------------------------------------------------------------- */

static int bio_send(void *p, const unsigned char *buf, size_t len)
{
    eg_tls_t *t = p;

    eg_buf_append(&t->out, buf, len);
    return (int)EG_MIN(len, (size_t)0x7fffffff);
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
    eg_tls_t *t = p;
    size_t avail = t->in.len - t->in_off;

    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    len = EG_MIN(len, avail);
    memcpy(buf, t->in.data + t->in_off, len);
    t->in_off += len;
    if (t->in_off == t->in.len) {
        eg_buf_clear(&t->in);
        t->in_off = 0;
    }
    return (int)len;
}

int eg__tls_init(eg_tls_t *t, eg_tls_ctx_t *ctx, const char *hostname)
{
    int ret;

    memset(t, 0, sizeof(*t));
    mbedtls_ssl_init(&t->ssl);
    t->inited = 1;
    if ((ret = mbedtls_ssl_setup(&t->ssl, &ctx->conf)) != 0)
        return EG_ETLS;
    /* Sets SNI and the name the certificate must carry; without it mbedTLS would accept any
     * certificate the CA signed, for any host. */
    if (hostname && (ret = mbedtls_ssl_set_hostname(&t->ssl, hostname)) != 0)
        return EG_ETLS;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return 0;
}

void eg__tls_free(eg_tls_t *t)
{
    if (!t->inited)
        return;
    mbedtls_ssl_free(&t->ssl);
    eg_buf_free(&t->in);
    eg_buf_free(&t->out);
    t->inited = 0;
    t->ready = 0;
}

void eg__tls_feed(eg_tls_t *t, const void *data, size_t len)
{
    eg_buf_append(&t->in, data, len);
}

int eg__tls_handshake(eg_tls_t *t, char *errbuf, size_t errlen)
{
    int ret = mbedtls_ssl_handshake(&t->ssl);

    if (ret == 0) {
        t->ready = 1;
        return 0;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return EG_TLS_AGAIN;
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && errbuf && errlen) {
        char info[256];
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        size_t n;

        info[0] = '\0';
        mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        /* verify_info separates reasons with newlines; a log line wants one line. */
        for (n = 0; info[n]; n++) {
            if (info[n] == '\n')
                info[n] = info[n + 1] ? ';' : '\0';
        }
        snprintf(errbuf, errlen, "certificate verification failed: %s", info);
    } else {
        tls_errstr(ret, "TLS handshake", errbuf, errlen);
    }
    return EG_ETLS;
}

int eg__tls_read(eg_tls_t *t, void *buf, size_t len, size_t *nread)
{
    int ret = mbedtls_ssl_read(&t->ssl, buf, len);

    *nread = 0;
    if (ret > 0) {
        *nread = (size_t)ret;
        return 0;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return EG_TLS_EOF;
    return EG_ETLS;
}

int eg__tls_write(eg_tls_t *t, const void *data, size_t len)
{
    const unsigned char *p = data;

    /* The BIO never blocks, so every call consumes up to one record's worth of input. */
    while (len > 0) {
        int ret = mbedtls_ssl_write(&t->ssl, p, len);
        if (ret <= 0)
            return EG_ETLS;
        p += ret;
        len -= (size_t)ret;
    }
    return 0;
}

void eg__tls_close_notify(eg_tls_t *t)
{
    if (t->inited && t->ready)
        (void)mbedtls_ssl_close_notify(&t->ssl);
}
