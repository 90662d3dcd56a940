/* Private parts of retain shared by its files: retain.c (requests, async submission, the module),
 * retain_run.c (the pipeline of one batch), retain_index.c (entity resolution and links against
 * the bank index), retain_write.c (the store writes and the event), retain_worker.c (the queue
 * worker), retain_json.c (payloads, ids, splitting). */
#ifndef ENGRAM_MEMORY_RETAIN_INT_H
#define ENGRAM_MEMORY_RETAIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engram/arena.h"
#include "engram/bank.h"
#include "engram/extract.h"
#include "engram/mindex.h"
#include "engram/mstore.h"
#include "engram/retain.h"

/* One item of a run. */
typedef struct eg__ritem_s {
    eg_retain_item_t it; /* copied into the run's arena */
    size_t gindex;       /* index in the original request (derived ids) */
    int64_t ts;          /* resolved timestamp: µs or EG_MEM_TIME_NONE */
    size_t doc;
    const char **tags; /* item tags + document tags, unique */
    size_t ntags;
    const char *content; /* what is chunked (an append rewrites the first item's) */
} eg__ritem_t;

/* One document of a run. */
typedef struct eg__rdoc_s {
    char *id;
    bool caller_id; /* the caller named it (it may exist and be replaced) */
    bool append;
    size_t *items; /* run item indexes, in order */
    size_t nitems;
    char *text; /* original_text: the items' contents joined by "\n" (after the old text) */
    const char **chunks;
    size_t *chunk_item; /* the item each chunk came from */
    size_t nchunks;
    const char **tags; /* the union of its items' tags */
    size_t ntags;
    size_t nunits; /* facts of this document */
} eg__rdoc_t;

/* One fact of a run, in extraction order. */
typedef struct eg__rfact_s {
    size_t item, doc, chunk; /* chunk: index within the document */
    eg_extract_fact_t x;     /* text, type, dates (offset applied), extracted entities */
    char id[EG_MEM_UUID_LEN + 1];
    int64_t mentioned_at;
    const float *vec;
    const char **names; /* extracted + the item's own entity names, unique case-insensitively */
    bool *resolve;      /* per name: resolve against the bank (false: exact match only) */
    size_t nnames;
    const char **entity_ids; /* after resolution, unique */
    size_t nentity_ids;
    size_t causes[EG_EXTRACT_CAUSES_MAX]; /* run fact indexes */
    size_t ncauses;
    eg_mem_link_t *links;
    size_t nlinks;
} eg__rfact_t;

/* An entity the run's units refer to. */
typedef struct eg__rent_s {
    char id[EG_MEM_UUID_LEN + 1];
    const char *name;
    bool is_new;  /* not in the bank (yet): created by the first document that writes it */
    bool created; /* a write of this run created (or merged) it */
} eg__rent_t;

typedef struct eg__run_s eg__run_t;

/* The run finished: err 0 (res filled) or an error. The run is freed after this returns. */
typedef void (*eg__run_fn)(eg__run_t *r, int err, void *udata);

struct eg__run_s {
    eg_arena_t arena;
    char *ws, *bank;
    const char *op_id;    /* async: the operation (derived ids, write keys, the event); else NULL */
    const char *event_op; /* the operation id the retain.completed event names */
    int64_t now_us;
    int step;
    eg__run_fn done;
    void *udata;

    /* The bank's configuration. */
    eg_extract_config_t xcfg;
    size_t chunk_cp, structured_cp;

    eg__ritem_t *items;
    size_t nitems;
    const char *const *document_tags;
    size_t ndocument_tags;
    eg__rdoc_t *docs;
    size_t ndocs;
    size_t pending; /* outstanding document reads (append) */

    eg__rfact_t *facts;
    size_t nfacts, cap_facts;
    size_t xdoc, xchunk;         /* the chunk being consumed (or extracted, on the thread pool) */
    struct eg__rxcall_s *xcalls; /* one per chunk, in order (retain_run.c) */
    size_t nxcalls, xissued, xconsumed, xoutstanding;
    bool xpumping, xagain; /* re-entry guard of the extraction loop */
    bool in_call;          /* a provider call has not returned yet (synchronous completion) */
    bool called_back;
    int cb_err;

    float *vecs; /* nfacts * dim */
    size_t dim;
    const char **texts;

    eg__rent_t *ents;
    size_t nents;

    uv_work_t work; /* extraction and embedding off the loop (builtin providers) */
    bool resolved;  /* entity resolution done (the first index slice) */
    /* Semantic candidates: one batch scan of the bank's vectors for every fact (retain_index.c),
     * in pieces across slices; sem[g] keeps fact g's best stored units. */
    struct eg_vbatch_s *vbatch; /* NULL: no scan (none needed, or another dimension) */
    uint32_t sem_next;          /* next slot to scan */
    bool sem_done;
    struct eg__rsem_s *sem;
    size_t lnext; /* next fact to link */
    void *lbatch; /* eg_links_unit_t[nfacts] */

    size_t wdoc; /* write cursor */
    eg_usage_t usage;
    size_t units_written;
    int err;
    const char *errmsg; /* why the run failed, when a provider said (in the arena), or NULL */
};

/* Start a run over items (copied) of ws/bank: gindex[i] is items[i]'s index in the request (NULL:
 * i). op_id (may be NULL) makes ids derived and writes keyed. Returns 0 (done runs once, later
 * or before this returns) or an error (done does not run). */
int eg__retain_run(const char *ws, const char *bank, const eg_retain_item_t *items,
                   const size_t *gindex, size_t nitems, const char *const *document_tags,
                   size_t ndocument_tags, const char *op_id, int64_t now_us, eg__run_fn done,
                   void *udata);

/* The extraction settings of a bank's resolved configuration (bank NULL: the defaults): mode,
 * retain_mission, custom instructions, causal links, output language, free-form entities, and
 * the chunk sizes in code points (structured 0 = the chunk size). Strings in a. */
void eg__retain_read_config(eg_arena_t *a, const eg_bank_t *bank, eg_extract_config_t *x,
                            size_t *chunk_cp, size_t *structured_cp);

/* Free a run (after its done callback). */
void eg__retain_run_free(eg__run_t *r);

/* End the run: done(err) once, then free it (retain_run.c). */
void eg__retain_finish(eg__run_t *r, int err);

/* Append the strings of v not in out[0..*n) yet (out has room). */
void eg__retain_union(const char **out, size_t *n, const char *const *v, size_t nv);

/* The write step: every document in order, then the event, then the end (retain_write.c). */
void eg__retain_write(eg__run_t *r);

/* Extraction calls in flight at once per run. */
#define EG__RETAIN_EXTRACT_WINDOW 16

/* CPU budget of one index slice: the index is only valid inside an acquire callback, so the
 * step runs in slices of about this long, each in its own acquire, to keep the loop responsive. */
#define EG__RETAIN_SLICE_NS (4 * 1000 * 1000)

/* One slice of the index step, inside the acquire callback: the first resolves the batch's
 * entities (r->ents, facts' entity_ids); then the bank's vectors are scanned once for every
 * fact's semantic candidates, and facts are linked from r->lnext on, each until the budget is
 * spent. Returns true when every fact is linked. */
bool eg__retain_index_slice(eg__run_t *r, eg_mindex_t *ix);

/* The providers (retain.c), and whether both are the builtin ones (pure functions, so a run
 * extracts and embeds on the thread pool instead of the loop). */
eg_extractor_t *eg__retain_extractor(void);
eg_embedder_t *eg__retain_embedder(void);
bool eg__retain_builtin(void);

/* True between eg_retain_start and the end of eg_retain_stop. */
bool eg__retain_started(void);

/* The loop eg_retain_start was given. */
uv_loop_t *eg__retain_loop(void);

/* Current time in µs. */
int64_t eg__retain_now_us(void);

/* The queue worker (retain_worker.c). */
int eg__retain_worker_start(void);
void eg__retain_worker_stop(void (*done)(void *), void *udata);

/* Push the job of operation op_id (whose payload is the JSON text p). job_id may differ from the
 * op id (a retry's). cb as eg_queue_push's. */
int eg__retain_push(const char *job_id, const char *payload, size_t len,
                    void (*cb)(void *, int, bool), void *udata);

/* The operation scope id of a bank: "<ws>/<bank>" in a. */
char *eg__retain_scope_id(eg_arena_t *a, const char *ws, const char *bank);

#endif
