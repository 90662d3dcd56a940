/* The process's LLM providers and embedder, built once from the configuration: one openai client
 * per distinct (base URL, key, model), shared by the operations that name it, and the embedder
 * retain and recall use. Before eg_llm_start (unit tests, tools) every operation is builtin and
 * the embedder is the builtin one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/util.h"
#include "llm/llm_int.h"

#define PROBE_TIMEOUT_MS 30000

static struct {
    bool started;
    eg_llm_config_t cfg;
    eg_llm_t *op[EG_LLM_OP_COUNT];
    eg_llm_t *owned[EG_LLM_OP_COUNT]; /* distinct providers, each destroyed once */
    int nowned;
    eg_embedder_t *embedder;
    eg_embedder_t *fallback; /* the builtin embedder handed out before start */
} s_llm;

static char *dup_or_null(const char *s)
{
    return s != NULL ? eg_xstrdup(s) : NULL;
}

static void settings_copy(eg_llm_settings_t *dst, const eg_llm_settings_t *src)
{
    dst->provider = dup_or_null(src->provider != NULL ? src->provider : "builtin");
    dst->base_url = dup_or_null(src->base_url);
    dst->api_key = dup_or_null(src->api_key);
    dst->model = dup_or_null(src->model);
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || a[0] == '\0') ? (b == NULL || b[0] == '\0')
                                       : (b != NULL && strcmp(a, b) == 0);
}

static bool same_client(const eg_llm_settings_t *a, const eg_llm_settings_t *b)
{
    return str_eq(a->base_url, b->base_url) && str_eq(a->api_key, b->api_key) &&
           str_eq(a->model, b->model);
}

static bool is_openai(const eg_llm_settings_t *s)
{
    return s->provider != NULL && strcmp(s->provider, "openai") == 0;
}

int eg_llm_start(uv_loop_t *loop, const eg_llm_config_t *cfg)
{
    eg__oai_limits_t lim;

    if (s_llm.started)
        eg_llm_shutdown();
    memset(&s_llm.op, 0, sizeof(s_llm.op));
    for (int i = 0; i < EG_LLM_OP_COUNT; i++)
        settings_copy(&s_llm.cfg.op[i], &cfg->op[i]);
    settings_copy(&s_llm.cfg.embeddings, &cfg->embeddings);
    s_llm.cfg.embeddings_dim = cfg->embeddings_dim > 0 ? cfg->embeddings_dim : EG_EMBED_DEFAULT_DIM;
    s_llm.cfg.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 120000;
    s_llm.cfg.max_retries = cfg->max_retries >= 0 ? cfg->max_retries : 0;
    s_llm.cfg.max_concurrency = cfg->max_concurrency > 0 ? cfg->max_concurrency : 1;
    lim =
        (eg__oai_limits_t){s_llm.cfg.timeout_ms, s_llm.cfg.max_retries, s_llm.cfg.max_concurrency};

    for (int i = 0; i < EG_LLM_OP_COUNT; i++) {
        const eg_llm_settings_t *s = &s_llm.cfg.op[i];

        if (!is_openai(s))
            continue;
        for (int j = 0; j < i; j++) {
            if (s_llm.op[j] != NULL && same_client(&s_llm.cfg.op[j], s)) {
                s_llm.op[i] = s_llm.op[j];
                break;
            }
        }
        if (s_llm.op[i] != NULL)
            continue;
        if (s->base_url == NULL || s->model == NULL) {
            eg_log_error("llm: %s: the openai provider needs a base URL and a model",
                         eg_llm_op_name((eg_llm_op_t)i));
            goto fail;
        }
        if ((s_llm.op[i] = eg__oai_new(loop, s, &lim)) == NULL)
            goto fail;
        s_llm.owned[s_llm.nowned++] = s_llm.op[i];
    }
    if (is_openai(&s_llm.cfg.embeddings)) {
        if (s_llm.cfg.embeddings.base_url == NULL || s_llm.cfg.embeddings.model == NULL) {
            eg_log_error("llm: openai embeddings need a base URL and a model");
            goto fail;
        }
        s_llm.embedder =
            eg__embed_openai_new(loop, &s_llm.cfg.embeddings, s_llm.cfg.embeddings_dim, &lim);
        if (s_llm.embedder == NULL)
            goto fail;
    } else {
        s_llm.embedder = eg_embed_builtin_new(s_llm.cfg.embeddings_dim);
    }
    s_llm.started = true;
    for (int i = 0; i < EG_LLM_OP_COUNT; i++) {
        const eg_llm_settings_t *s = &s_llm.cfg.op[i];
        if (is_openai(s))
            eg_log_info("llm: %s uses openai model %s at %s", eg_llm_op_name((eg_llm_op_t)i),
                        s->model, s->base_url);
    }
    eg_log_info("llm: embeddings %s (%zu dimensions)", s_llm.embedder->name, s_llm.embedder->dim);
    return 0;

fail:
    s_llm.started = true;
    eg_llm_shutdown();
    return EG_EINVAL;
}

void eg_llm_shutdown(void)
{
    if (!s_llm.started) {
        eg_embed_destroy(s_llm.fallback);
        s_llm.fallback = NULL;
        return;
    }
    for (int i = 0; i < s_llm.nowned; i++)
        s_llm.owned[i]->destroy(s_llm.owned[i]);
    eg_embed_destroy(s_llm.embedder);
    eg_embed_destroy(s_llm.fallback);
    eg_llm_config_free(&s_llm.cfg);
    memset(&s_llm, 0, sizeof(s_llm));
}

eg_llm_t *eg_llm_for(eg_llm_op_t op)
{
    if (!s_llm.started || (unsigned)op >= EG_LLM_OP_COUNT)
        return NULL;
    return s_llm.op[op];
}

eg_embedder_t *eg_llm_embedder(void)
{
    if (s_llm.started && s_llm.embedder != NULL)
        return s_llm.embedder;
    if (s_llm.fallback == NULL)
        s_llm.fallback = eg_embed_builtin_new(0);
    return s_llm.fallback;
}

int eg_llm_chat(eg_llm_t *llm, const eg_llm_req_t *req, eg_llm_done_fn done, void *udata,
                eg_llm_call_t **out)
{
    if (llm == NULL)
        return EG_EINVAL;
    return llm->chat(llm, req, done, udata, out);
}

void eg_llm_cancel(eg_llm_t *llm, eg_llm_call_t *call)
{
    if (llm != NULL && call != NULL)
        llm->cancel(call);
}

/* ---- probe ------------------------------------------------------------------------------------
 */

typedef struct {
    eg_llm_probe_fn cb;
    void *udata;
    eg_llm_msg_t msg;
} probe_t;

static const char *probe_status(int err)
{
    switch (err) {
    case 0:
        return "connected";
    case EG_EAUTH:
        return "auth_failed";
    case EG_EUPTIMEOUT:
        return "timeout";
    default:
        return "unreachable";
    }
}

static void on_probe(void *udata, int err, const eg_llm_resp_t *resp)
{
    probe_t *pr = udata;

    pr->cb(pr->udata, probe_status(err), resp->elapsed_ms);
    free(pr);
}

void eg_llm_probe(eg_llm_op_t op, eg_llm_probe_fn cb, void *udata)
{
    eg_llm_t *llm = eg_llm_for(op);
    probe_t *pr;
    eg_llm_req_t req = {0};
    int rc;

    if (llm == NULL) {
        cb(udata, "not_configured", 0);
        return;
    }
    pr = eg_xcalloc(1, sizeof(*pr));
    pr->cb = cb;
    pr->udata = udata;
    pr->msg = (eg_llm_msg_t){.role = EG_LLM_USER, .content = "Reply with the word OK."};
    req.msgs = &pr->msg;
    req.nmsgs = 1;
    req.temperature = -1;
    req.scope = "probe";
    req.timeout_ms = EG_MIN(s_llm.cfg.timeout_ms, (uint64_t)PROBE_TIMEOUT_MS);
    rc = eg__oai_chat_ex(llm, &req, 0, on_probe, pr, NULL);
    if (rc != 0) {
        free(pr);
        cb(udata, probe_status(rc), 0);
    }
}
