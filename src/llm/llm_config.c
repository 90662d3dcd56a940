/* LLM and embedding settings from the environment: ENGRAM_LLM_* for every operation,
 * ENGRAM_<OP>_LLM_* overriding it field by field, ENGRAM_EMBEDDINGS_* for vectors, and the
 * limits shared by every provider. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/httpc.h"
#include "engram/util.h"
#include "llm/llm_int.h"

#define OPENAI_DEFAULT_BASE "https://api.openai.com/v1"

static const char *const op_names[EG_LLM_OP_COUNT] = {"default", "retain", "reflect",
                                                      "consolidation", "agent"};
/* Variable prefix of each operation's settings. */
static const char *const op_prefix[EG_LLM_OP_COUNT] = {
    "ENGRAM_LLM", "ENGRAM_RETAIN_LLM", "ENGRAM_REFLECT_LLM", "ENGRAM_CONSOLIDATION_LLM",
    "ENGRAM_AGENT_LLM"};

const char *eg_llm_op_name(eg_llm_op_t op)
{
    return (unsigned)op < EG_LLM_OP_COUNT ? op_names[op] : "unknown";
}

static const char *env_getenv(const char *name)
{
    return getenv(name);
}

static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* A variable's value, NULL when unset or empty (an empty value means "not set", as elsewhere). */
static const char *var(const char *(*get)(const char *), const char *prefix, const char *field,
                       char *name, size_t namelen)
{
    const char *v;

    snprintf(name, namelen, "%s_%s", prefix, field);
    v = get(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static void settings_free(eg_llm_settings_t *s)
{
    free(s->provider);
    free(s->base_url);
    if (s->api_key != NULL) {
        /* Not key material of ours, but still a secret: do not leave it in freed memory. */
        memset(s->api_key, 0, strlen(s->api_key));
        free(s->api_key);
    }
    free(s->model);
    memset(s, 0, sizeof(*s));
}

/* A base URL without its trailing slashes, checked like any outbound URL. */
static int set_base_url(char **dst, const char *v, const char *name, char *errbuf, size_t errlen)
{
    size_t len = strlen(v);
    int rc;

    while (len > 0 && v[len - 1] == '/')
        len--;
    free(*dst);
    *dst = eg_xstrndup(v, len);
    rc = eg_httpc_url_check(*dst);
    if (rc != 0 || (strncmp(*dst, "http://", 7) != 0 && strncmp(*dst, "https://", 8) != 0)) {
        errf(errbuf, errlen, "%s: \"%s\" is not an http(s) URL without credentials", name, v);
        return EG_EINVAL;
    }
    return 0;
}

/* Read one settings block. With inherit, each unset field is copied from it. */
static int read_settings(eg_llm_settings_t *s, const char *(*get)(const char *), const char *prefix,
                         const eg_llm_settings_t *inherit, char *errbuf, size_t errlen)
{
    char name[96];
    const char *v;

    if ((v = var(get, prefix, "PROVIDER", name, sizeof(name))) != NULL) {
        if (strcmp(v, "builtin") != 0 && strcmp(v, "openai") != 0) {
            errf(errbuf, errlen, "%s: unknown provider \"%s\" (builtin or openai)", name, v);
            return EG_EINVAL;
        }
        s->provider = eg_xstrdup(v);
    } else {
        s->provider = eg_xstrdup(inherit != NULL ? inherit->provider : "builtin");
    }
    if ((v = var(get, prefix, "BASE_URL", name, sizeof(name))) != NULL) {
        if (set_base_url(&s->base_url, v, name, errbuf, errlen) != 0)
            return EG_EINVAL;
    } else if (inherit != NULL && inherit->base_url != NULL) {
        s->base_url = eg_xstrdup(inherit->base_url);
    }
    if ((v = var(get, prefix, "API_KEY", name, sizeof(name))) != NULL)
        s->api_key = eg_xstrdup(v);
    else if (inherit != NULL && inherit->api_key != NULL)
        s->api_key = eg_xstrdup(inherit->api_key);
    if ((v = var(get, prefix, "MODEL", name, sizeof(name))) != NULL)
        s->model = eg_xstrdup(v);
    else if (inherit != NULL && inherit->model != NULL)
        s->model = eg_xstrdup(inherit->model);
    return 0;
}

/* An openai block gets the public API as its default base URL and must name a model. */
static int finish_settings(eg_llm_settings_t *s, const char *prefix, char *errbuf, size_t errlen)
{
    if (strcmp(s->provider, "openai") != 0)
        return 0;
    if (s->base_url == NULL)
        s->base_url = eg_xstrdup(OPENAI_DEFAULT_BASE);
    if (s->model == NULL) {
        errf(errbuf, errlen, "%s_MODEL: required with the openai provider", prefix);
        return EG_EINVAL;
    }
    return 0;
}

static int read_number(const char *(*get)(const char *), const char *name, char kind, int64_t min,
                       int64_t max, int64_t *out, char *errbuf, size_t errlen)
{
    const char *v = get(name);
    uint64_t ms;
    int64_t n;

    if (v == NULL || v[0] == '\0')
        return 0;
    if (kind == 'd') {
        if (eg_parse_duration_ms(v, &ms) == 0 && ms >= (uint64_t)min && ms <= (uint64_t)max) {
            *out = (int64_t)ms;
            return 0;
        }
        errf(errbuf, errlen, "%s: invalid duration \"%s\" (e.g. 120s, 2m, 500ms)", name, v);
        return EG_EINVAL;
    }
    if (eg_parse_int64(v, min, max, &n) == 0) {
        *out = n;
        return 0;
    }
    errf(errbuf, errlen, "%s: invalid value \"%s\" (an integer from %lld to %lld)", name, v,
         (long long)min, (long long)max);
    return EG_EINVAL;
}

int eg_llm_config_from_env(eg_llm_config_t *cfg, const char *(*get)(const char *name), char *errbuf,
                           size_t errlen)
{
    const eg_llm_settings_t *def = &cfg->op[EG_LLM_OP_DEFAULT];
    char name[96];
    const char *v;
    int64_t n;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if (get == NULL)
        get = env_getenv;
    cfg->embeddings_dim = EG_EMBED_DEFAULT_DIM;
    cfg->timeout_ms = 120000;
    cfg->max_retries = 3;
    cfg->max_concurrency = 8;

    if ((rc = read_settings(&cfg->op[0], get, op_prefix[0], NULL, errbuf, errlen)) != 0)
        goto fail;
    for (int op = 1; op < EG_LLM_OP_COUNT; op++) {
        if ((rc = read_settings(&cfg->op[op], get, op_prefix[op], def, errbuf, errlen)) != 0)
            goto fail;
    }
    for (int op = 0; op < EG_LLM_OP_COUNT; op++) {
        if ((rc = finish_settings(&cfg->op[op], op_prefix[op], errbuf, errlen)) != 0)
            goto fail;
    }

    /* Embeddings choose their provider explicitly (changing it changes every stored vector's
     * space) but borrow the LLM server and key when those are not given. */
    if ((v = var(get, "ENGRAM_EMBEDDINGS", "PROVIDER", name, sizeof(name))) != NULL) {
        if (strcmp(v, "builtin") != 0 && strcmp(v, "openai") != 0) {
            errf(errbuf, errlen, "%s: unknown provider \"%s\" (builtin or openai)", name, v);
            rc = EG_EINVAL;
            goto fail;
        }
        cfg->embeddings.provider = eg_xstrdup(v);
    } else {
        cfg->embeddings.provider = eg_xstrdup("builtin");
    }
    if ((v = var(get, "ENGRAM_EMBEDDINGS", "BASE_URL", name, sizeof(name))) != NULL) {
        if ((rc = set_base_url(&cfg->embeddings.base_url, v, name, errbuf, errlen)) != 0)
            goto fail;
    } else if (strcmp(def->provider, "openai") == 0) {
        cfg->embeddings.base_url = eg_xstrdup(def->base_url);
    }
    if ((v = var(get, "ENGRAM_EMBEDDINGS", "API_KEY", name, sizeof(name))) != NULL)
        cfg->embeddings.api_key = eg_xstrdup(v);
    else if (def->api_key != NULL && strcmp(def->provider, "openai") == 0)
        cfg->embeddings.api_key = eg_xstrdup(def->api_key);
    if ((v = var(get, "ENGRAM_EMBEDDINGS", "MODEL", name, sizeof(name))) != NULL)
        cfg->embeddings.model = eg_xstrdup(v);
    n = 0;
    if ((rc = read_number(get, "ENGRAM_EMBEDDINGS_DIMENSIONS", 'i', 1, 65536, &n, errbuf,
                          errlen)) != 0)
        goto fail;
    if (n > 0)
        cfg->embeddings_dim = (size_t)n;
    if (strcmp(cfg->embeddings.provider, "openai") == 0) {
        if ((rc = finish_settings(&cfg->embeddings, "ENGRAM_EMBEDDINGS", errbuf, errlen)) != 0)
            goto fail;
        /* The vector index needs the size before the first vector arrives. */
        if (n == 0) {
            errf(errbuf, errlen,
                 "ENGRAM_EMBEDDINGS_DIMENSIONS: required with the openai provider (the model's "
                 "vector size, e.g. 1536)");
            rc = EG_EINVAL;
            goto fail;
        }
    }

    n = (int64_t)cfg->timeout_ms;
    if ((rc = read_number(get, "ENGRAM_LLM_TIMEOUT", 'd', 1, (int64_t)24 * 3600 * 1000, &n, errbuf,
                          errlen)) != 0)
        goto fail;
    cfg->timeout_ms = (uint64_t)n;
    n = cfg->max_retries;
    if ((rc = read_number(get, "ENGRAM_LLM_MAX_RETRIES", 'i', 0, 20, &n, errbuf, errlen)) != 0)
        goto fail;
    cfg->max_retries = (int)n;
    n = cfg->max_concurrency;
    if ((rc = read_number(get, "ENGRAM_LLM_MAX_CONCURRENCY", 'i', 1, 4096, &n, errbuf, errlen)) !=
        0)
        goto fail;
    cfg->max_concurrency = (int)n;
    return 0;

fail:
    eg_llm_config_free(cfg);
    return rc;
}

void eg_llm_config_free(eg_llm_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (int op = 0; op < EG_LLM_OP_COUNT; op++)
        settings_free(&cfg->op[op]);
    settings_free(&cfg->embeddings);
}

/* The host of an http(s) URL (brackets of an IPv6 literal removed), or "" if there is none. */
static void url_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://"), *end;
    size_t len;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += 3;
    end = p + strcspn(p, "/?#");
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            return;
        p++;
        len = (size_t)(rb - p);
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        len = (size_t)((colon != NULL ? colon : end) - p);
    }
    if (len >= outlen)
        return;
    memcpy(out, p, len);
    out[len] = '\0';
}

char *eg__llm_allow_list(const char *base_url)
{
    const char *extra = getenv("ENGRAM_OUTBOUND_ALLOW");
    char host[256];
    eg_buf_t b = EG_BUF_INIT;

    url_host(base_url, host, sizeof(host));
    eg_buf_puts(&b, host);
    if (extra != NULL && extra[0] != '\0') {
        if (b.len > 0)
            eg_buf_puts(&b, ",");
        eg_buf_puts(&b, extra);
    }
    if (b.data == NULL)
        eg_buf_puts(&b, "");
    return b.data;
}
