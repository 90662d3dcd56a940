/* Memories (engram/memories.h): documents and chunks.
 *
 * The document listing is answered from the bank's index alone (it keeps every field a listed
 * document shows); one document and its chunks are read from Redis. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "engram/bank.h"
#include "engram/error.h"
#include "engram/util.h"
#include "memories_int.h"

/* ---- the listing ---------------------------------------------------------------------------- */

typedef struct docs_req_s {
    eg__memreq_t r;
    eg_docs_query_t q;
    eg_memories_docs_fn cb;
} docs_req_t;

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

static int cmp_doc(const void *pa, const void *pb)
{
    const eg_doc_item_t *a = pa, *b = pb;

    if (a->updated_at != b->updated_at)
        return a->updated_at > b->updated_at ? -1 : 1;
    if (a->created_at != b->created_at)
        return a->created_at > b->created_at ? -1 : 1;
    return strcmp(a->id, b->id);
}

static uint32_t tag_lookup(void *udata, const char *tag)
{
    return eg_mindex_tag(udata, tag);
}

static void on_docs_index(void *udata, int err, eg_mindex_t *ix)
{
    docs_req_t *dr = udata;
    eg_arena_t *a = &dr->r.arena;
    size_t ndocs, n = 0, from, count;
    eg_tagfilter_t *tf = NULL;
    eg_doc_item_t *v;

    if (err) {
        dr->cb(dr->r.udata, err, NULL, 0, 0);
        eg__memreq_free(dr);
        return;
    }
    ndocs = eg_mindex_docs(ix);
    v = eg_arena_alloc(a, (ndocs ? ndocs : 1) * sizeof(*v));
    eg_tagfilter_compile(a, dr->q.tags, dr->q.ntags, dr->q.tags_match, NULL, 0, tag_lookup, ix,
                         &tf);
    for (uint32_t i = 0; i < ndocs; i++) {
        const eg_mindex_doc_t *d = eg_mindex_doc(ix, i);
        const char **tags;

        if (d == NULL || (dr->q.q && !contains_nocase(d->id, dr->q.q)) ||
            (tf && !eg_tagfilter_match(tf, d->tags, d->ntags)))
            continue;
        tags = eg_arena_alloc(a, (d->ntags ? d->ntags : 1) * sizeof(*tags));
        for (uint16_t t = 0; t < d->ntags; t++)
            tags[t] = eg_arena_strdup(a, eg_mindex_tag_name(ix, d->tags[t]));
        v[n++] = (eg_doc_item_t){
            .id = eg_arena_strdup(a, d->id),
            .created_at = d->created_at,
            .updated_at = d->updated_at,
            .tags = tags,
            .ntags = d->ntags,
            .nunits = d->nunits,
            .text_length = d->text_length,
            .content_hash = d->content_hash[0] ? eg_arena_strdup(a, d->content_hash) : NULL,
        };
    }
    qsort(v, n, sizeof(*v), cmp_doc);
    from = EG_MIN(dr->q.offset, n);
    count = EG_MIN(dr->q.limit, n - from);
    dr->cb(dr->r.udata, 0, v + from, count, n);
    eg__memreq_free(dr);
}

int eg_memories_documents(const char *ws_id, const char *bank_id, const eg_docs_query_t *q,
                          eg_memories_docs_fn cb, void *udata)
{
    docs_req_t *dr;
    const char **tags = NULL;
    int rc;

    if (ws_id == NULL || bank_id == NULL || q == NULL || cb == NULL)
        return EG_EINVAL;
    dr = eg__memreq_new(sizeof(*dr), ws_id, bank_id, udata);
    dr->q = *q;
    dr->q.q = eg_arena_strdup(&dr->r.arena, q->q);
    if (q->ntags) {
        tags = eg_arena_alloc(&dr->r.arena, q->ntags * sizeof(*tags));
        for (size_t i = 0; i < q->ntags; i++)
            tags[i] = eg_arena_strdup(&dr->r.arena, q->tags[i]);
    }
    dr->q.tags = tags;
    dr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_docs_index, dr);
    if (rc)
        eg__memreq_free(dr);
    return rc;
}

/* ---- one document --------------------------------------------------------------------------- */

typedef struct doc_req_s {
    eg__memreq_t r;
    char *doc_id;
    size_t by_type[EG_FACT_NTYPES];
    eg_memories_doc_fn cb;
} doc_req_t;

static void on_doc_record(void *udata, int err, const eg_mem_doc_t *doc)
{
    doc_req_t *dr = udata;

    dr->cb(dr->r.udata, err, err ? NULL : doc, dr->by_type);
    eg__memreq_free(dr);
}

static void on_doc_index(void *udata, int err, eg_mindex_t *ix)
{
    doc_req_t *dr = udata;
    uint32_t di;
    int rc;

    if (err) {
        on_doc_record(dr, err, NULL);
        return;
    }
    if (eg_mindex_doc_by_id(ix, dr->doc_id, &di) == 0) {
        const eg_mindex_doc_t *d = eg_mindex_doc(ix, di);
        size_t n = d ? d->nunits : 0, got;
        uint32_t *slots = eg_arena_alloc(&dr->r.arena, (n ? n : 1) * sizeof(*slots));

        got = eg_mindex_doc_units(ix, di, slots, n);
        for (size_t i = 0; i < got && i < n; i++) {
            const eg_mindex_unit_t *u = eg_mindex_unit(ix, slots[i]);

            if (u && !u->invalidated)
                dr->by_type[u->type]++;
        }
    }
    rc = eg_mem_doc_get(dr->r.ws_id, dr->r.bank_id, dr->doc_id, on_doc_record, dr);
    if (rc)
        on_doc_record(dr, rc, NULL);
}

int eg_memories_document(const char *ws_id, const char *bank_id, const char *doc_id,
                         eg_memories_doc_fn cb, void *udata)
{
    doc_req_t *dr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || doc_id == NULL || cb == NULL)
        return EG_EINVAL;
    dr = eg__memreq_new(sizeof(*dr), ws_id, bank_id, udata);
    dr->doc_id = eg_arena_strdup(&dr->r.arena, doc_id);
    dr->cb = cb;
    rc = eg_mindex_acquire(ws_id, bank_id, on_doc_index, dr);
    if (rc)
        eg__memreq_free(dr);
    return rc;
}

/* ---- a document's chunks -------------------------------------------------------------------- */

typedef struct chunks_req_s {
    eg__memreq_t r;
    char *doc_id;
    size_t limit, offset, total;
    eg_memories_chunks_fn cb;
} chunks_req_t;

static void chunks_done(chunks_req_t *cr, int err, const eg_mem_chunk_t *const *chunks, size_t n)
{
    cr->cb(cr->r.udata, err, chunks, n, err ? 0 : cr->total);
    eg__memreq_free(cr);
}

static void on_chunks(void *udata, int err, const eg_mem_chunk_t *const *chunks, size_t n)
{
    chunks_req_t *cr = udata;
    const eg_mem_chunk_t **v;
    size_t k = 0;

    if (err) {
        chunks_done(cr, err, NULL, 0);
        return;
    }
    v = eg_arena_alloc(&cr->r.arena, (n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        if (chunks[i])
            v[k++] = chunks[i];
    chunks_done(cr, 0, v, k);
}

static void on_chunks_doc(void *udata, int err, const eg_mem_doc_t *doc)
{
    chunks_req_t *cr = udata;
    size_t from, count;
    const char **ids;
    int rc;

    if (err) {
        chunks_done(cr, err, NULL, 0);
        return;
    }
    cr->total = doc->nchunks;
    from = EG_MIN(cr->offset, doc->nchunks);
    count = EG_MIN(cr->limit, doc->nchunks - from);
    if (count == 0) {
        chunks_done(cr, 0, NULL, 0);
        return;
    }
    ids = eg_arena_alloc(&cr->r.arena, count * sizeof(*ids));
    for (size_t i = 0; i < count; i++)
        ids[i] = eg_mem_chunk_id(&cr->r.arena, cr->r.bank_id, cr->doc_id, from + i);
    rc = eg_mem_chunks_get(cr->r.ws_id, cr->r.bank_id, ids, count, on_chunks, cr);
    if (rc)
        chunks_done(cr, rc, NULL, 0);
}

int eg_memories_chunks(const char *ws_id, const char *bank_id, const char *doc_id, size_t limit,
                       size_t offset, eg_memories_chunks_fn cb, void *udata)
{
    chunks_req_t *cr;
    int rc;

    if (ws_id == NULL || bank_id == NULL || doc_id == NULL || cb == NULL)
        return EG_EINVAL;
    cr = eg__memreq_new(sizeof(*cr), ws_id, bank_id, udata);
    cr->doc_id = eg_arena_strdup(&cr->r.arena, doc_id);
    cr->limit = limit;
    cr->offset = offset;
    cr->cb = cb;
    rc = eg_mem_doc_get(ws_id, bank_id, doc_id, on_chunks_doc, cr);
    if (rc)
        eg__memreq_free(cr);
    return rc;
}

/* ---- a chunk by id alone -------------------------------------------------------------------- */

typedef struct chunk_find_s {
    eg__memreq_t r;
    char *chunk_id;
    size_t cuts[EG_MEMORIES_CHUNK_TRIES]; /* bank id lengths to try, longest first */
    size_t ncuts, next;
    char *bank; /* the candidate being tried */
    eg_memories_chunk_fn cb;
} chunk_find_t;

/* Try the next candidate bank: 0 (on_chunk_try runs), EG_ENOTFOUND when none is left, or an
 * error. */
static int chunk_find_next(chunk_find_t *cf);

static void on_chunk_try(void *udata, int err, const eg_mem_chunk_t *const *chunks, size_t n)
{
    chunk_find_t *cf = udata;

    if (err == 0 && n == 1 && chunks[0] && strcmp(chunks[0]->id, cf->chunk_id) == 0) {
        cf->cb(cf->r.udata, 0, cf->bank, chunks[0]);
        eg__memreq_free(cf);
        return;
    }
    if (err == 0 || err == EG_EINVAL) /* no such chunk, or a prefix that is no bank id */
        err = chunk_find_next(cf);
    if (err) {
        cf->cb(cf->r.udata, err, NULL, NULL);
        eg__memreq_free(cf);
    }
}

static int chunk_find_next(chunk_find_t *cf)
{
    const char *ids[1] = {cf->chunk_id};

    int rc = EG_ENOTFOUND;

    while (cf->next < cf->ncuts) {
        cf->bank = eg_arena_strndup(&cf->r.arena, cf->chunk_id, cf->cuts[cf->next++]);
        if (!eg_bank_id_valid(cf->bank, strlen(cf->bank)))
            continue;
        rc = eg_mem_chunks_get(cf->r.ws_id, cf->bank, ids, 1, on_chunk_try, cf);
        if (rc != EG_EINVAL)
            break;
        rc = EG_ENOTFOUND;
    }
    return rc;
}

int eg_memories_chunk_find(const char *ws_id, const char *chunk_id, eg_memories_chunk_fn cb,
                           void *udata)
{
    chunk_find_t *cf;
    const char *last;
    int rc;

    if (ws_id == NULL || chunk_id == NULL || cb == NULL)
        return EG_EINVAL;
    cf = eg__memreq_new(sizeof(*cf), ws_id, "", udata);
    cf->chunk_id = eg_arena_strdup(&cf->r.arena, chunk_id);
    cf->cb = cb;
    /* "<bank>_<document>_<index>": the index is what follows the last '_' (digits); the bank
     * ends at some earlier '_' that leaves a non-empty document between. */
    last = strrchr(chunk_id, '_');
    if (last != NULL && last[1] != '\0' && strspn(last + 1, "0123456789") == strlen(last + 1)) {
        for (size_t i = (size_t)(last - chunk_id); i-- > 1 && cf->ncuts < EG_MEMORIES_CHUNK_TRIES;)
            if (chunk_id[i] == '_' && i + 1 < (size_t)(last - chunk_id))
                cf->cuts[cf->ncuts++] = i;
    }
    rc = chunk_find_next(cf);
    if (rc)
        eg__memreq_free(cf);
    return rc;
}
