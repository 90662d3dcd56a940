/* A dry run of retain's extraction: the bank's configuration (read, never created) under the
 * request's overrides, the text chunked as retain chunks it, and the module's extractor on each
 * chunk in order — the same provider calls a retain makes, with nothing resolved, embedded or
 * written. */
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/util.h"
#include "memory/retain_int.h"

typedef struct {
    eg_arena_t arena;
    eg_retain_dry_fn cb;
    void *udata;
    eg_retain_dry_req_t req; /* strings copied */
    int64_t ts;
    eg_extract_config_t xcfg;
    eg_extract_chunk_t *chunks;
    size_t nchunks, next;
    eg_extract_fact_t *facts;
    size_t nfacts, cap;
    eg_usage_t usage;
    bool in_call, called_back;
    int cb_err;
    const char *errmsg;
} dry_t;

static void dry_finish(dry_t *d, int err)
{
    eg_extract_result_t res;

    memset(&res, 0, sizeof(res));
    res.usage = d->usage;
    if (err == 0) {
        res.facts = d->facts;
        res.nfacts = d->nfacts;
    } else {
        res.error = d->errmsg;
    }
    d->cb(d->udata, err, err == 0 || res.error ? &res : NULL);
    eg_arena_destroy(&d->arena);
    free(d);
}

static void keep(dry_t *d, const eg_extract_result_t *res)
{
    eg_usage_add(&d->usage, &res->usage);
    if (d->nfacts + res->nfacts > d->cap) {
        size_t cap = (d->nfacts + res->nfacts) * 2;
        eg_extract_fact_t *v = eg_arena_alloc(&d->arena, cap * sizeof(*v));
        if (d->nfacts)
            memcpy(v, d->facts, d->nfacts * sizeof(*v));
        d->facts = v;
        d->cap = cap;
    }
    for (size_t i = 0; i < res->nfacts; i++) {
        const eg_extract_fact_t *f = &res->facts[i];
        if (f->text && f->text[0])
            d->facts[d->nfacts++] = *f;
    }
}

static void next_chunk(dry_t *d);

static void on_extracted(eg_extractor_t *x, int status, const eg_extract_result_t *res, void *udata)
{
    dry_t *d = udata;

    (void)x;
    d->called_back = true;
    d->cb_err = status;
    if (status != 0) {
        if (res && res->error)
            d->errmsg = eg_arena_strdup(&d->arena, res->error);
        if (res)
            eg_usage_add(&d->usage, &res->usage);
    } else {
        keep(d, res);
        d->next++;
    }
    if (!d->in_call) {
        if (d->cb_err)
            dry_finish(d, d->cb_err);
        else
            next_chunk(d);
    }
}

/* One chunk after the other; a provider that answers synchronously continues the loop here
 * instead of recursing. */
static void next_chunk(dry_t *d)
{
    while (d->next < d->nchunks) {
        eg_extract_input_t in = {
            .text = d->chunks[d->next].text,
            .len = d->chunks[d->next].len,
            .chunk_index = d->next,
            .nchunks = d->nchunks,
            .context = d->req.context,
            .timestamp = d->ts,
            .cfg = &d->xcfg,
        };
        d->in_call = true;
        d->called_back = false;
        d->cb_err = 0;
        int rc = eg_extract_run(eg__retain_extractor(), &d->arena, &in, on_extracted, d);
        d->in_call = false;
        if (rc != 0) {
            dry_finish(d, rc);
            return;
        }
        if (!d->called_back)
            return; /* on_extracted continues */
        if (d->cb_err) {
            dry_finish(d, d->cb_err);
            return;
        }
    }
    dry_finish(d, 0);
}

static void on_bank(void *udata, int err, const eg_bank_t *bank, bool created)
{
    dry_t *d = udata;
    const eg_retain_dry_req_t *q = &d->req;
    size_t chunk_cp, structured_cp;

    (void)created;
    if (err != 0 && err != EG_ENOTFOUND) {
        dry_finish(d, err);
        return;
    }
    eg__retain_read_config(&d->arena, err == 0 ? bank : NULL, &d->xcfg, &chunk_cp, &structured_cp);
    if (q->mission)
        d->xcfg.mission = q->mission;
    if (q->mode)
        eg_extract_mode_parse(q->mode, &d->xcfg.mode); /* checked by eg_retain_dry_run */
    if (q->custom_instructions)
        d->xcfg.custom_instructions = q->custom_instructions;
    if (q->output_language)
        d->xcfg.output_language = q->output_language[0] ? q->output_language : NULL;
    if (q->causal_links >= 0)
        d->xcfg.causal_links = q->causal_links != 0;
    if (q->free_form_entities >= 0)
        d->xcfg.no_free_form_entities = q->free_form_entities == 0;
    if (q->chunk_size > 0)
        chunk_cp = q->chunk_size;
    d->nchunks = eg_extract_chunks(&d->arena, q->content, strlen(q->content), chunk_cp,
                                   structured_cp, &d->chunks);
    next_chunk(d);
}

static const char *dup_opt(eg_arena_t *a, const char *s)
{
    return s ? eg_arena_strdup(a, s) : NULL;
}

int eg_retain_dry_run(const char *ws_id, const char *bank_id, const eg_retain_dry_req_t *req,
                      eg_retain_dry_fn cb, void *udata)
{
    eg_extract_mode_t mode;

    if (!ws_id || !bank_id || !req || !req->content || !cb ||
        !eg_bank_id_valid(bank_id, strlen(bank_id)) ||
        (req->mode && eg_extract_mode_parse(req->mode, &mode) != 0))
        return EG_EINVAL;
    if (!eg__retain_started())
        return EG_EUNAVAIL;

    dry_t *d = eg_xcalloc(1, sizeof(*d));
    eg_arena_t *a = &d->arena;
    eg_arena_init(a);
    d->cb = cb;
    d->udata = udata;
    d->req = *req;
    d->req.content = eg_arena_strdup(a, req->content);
    d->req.context = eg_arena_strdup(a, req->context ? req->context : "");
    d->req.mission = dup_opt(a, req->mission);
    d->req.mode = dup_opt(a, req->mode);
    d->req.custom_instructions = dup_opt(a, req->custom_instructions);
    d->req.output_language = dup_opt(a, req->output_language);
    d->ts = req->timestamp == EG_RETAIN_TIME_NOW ? eg__retain_now_us() : req->timestamp;
    int rc = eg_bank_get(ws_id, bank_id, on_bank, d);
    if (rc != 0) {
        eg_arena_destroy(a);
        free(d);
    }
    return rc;
}
