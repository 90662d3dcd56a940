/* Library internals shared by its files: keys, ids and times, the stored memory record and its
 * one write script, the sync worker's entry points, and the pure pieces (chunking, scopes) the
 * unit tests reach.
 *
 * A memory is stored as its Fency JSON in the hash eg:{w:<ws>}:fy:mem, "content" kept null there
 * (the full text lives in fy:mem:<id>:txt and the chunks in fy:mem:<id>:chk, so records stay
 * small to list and scan), plus a private object under "_":
 *   sync    the content version being (or last) synchronised: "<16-digit µs>-<8 hex>", or null
 *   doc     the memory-engine document holding the indexed chunks ("<id>:<sync>"), or absent
 *   text    a TEXT memory's text; url: a URL memory's address
 *   file    {name, mime, size} of a FILE memory's content
 *   reason  why the last synchronisation failed, or null
 *   member  the record's zpage member
 *   derived true for a METADATA memory written by a bulk job: its text is made from its title
 *           and metadata (eg__lib_metadata_text), so a PATCH of either re-synchronises it
 *   ikey    the identityKeyName its identity was taken from; ident: that identity value */
#ifndef ENGRAM_LIBRARY_INT_H
#define ENGRAM_LIBRARY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "engram/docconv.h"
#include "engram/library.h"
#include "engram/queue.h"

#define EG__LIB_ID_MAX    40               /* "mem_" + 32 hex + NUL, with room */
#define EG__LIB_TIME_MAX  32               /* "2024-04-08T17:02:27.887295Z" + NUL */
#define EG__LIB_SYNC_MAX  32               /* "<16 digits>-<8 hex>" + NUL */
#define EG__LIB_CHUNK_CP  1500             /* code points of one chunk at most */
#define EG__LIB_TITLE_MAX 1000             /* bytes of a title */
#define EG__LIB_NAME_MAX  200              /* bytes of a memory type's name, a field's name */
#define EG__LIB_DESC_MAX  4000             /* bytes of a description */
#define EG__LIB_URL_MAX   2048             /* bytes of a URL memory's address */
#define EG__LIB_PUT_TRIES 8                /* read-modify-write attempts of one record change */
#define EG__LIB_JOB_TTL_S (30 * 24 * 3600) /* bulk job records are kept 30 days */
#define EG__LIB_SCAN_MAX  100000           /* records a scope scan reads at most */
#define EG__LIB_TAG_MEM   "fy:mem:"        /* unit tag prefixes in the bank */
#define EG__LIB_TAG_TYPE  "fy:mty:"

/* ---- keys, ids, times ------------------------------------------------------------------------ */

/* "eg:{w:<ws>}:fy:<suffix>" in a. */
char *eg__lib_key(eg_arena_t *a, const char *ws, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fresh content version: "<16-digit µs>-<8 random hex>" (versions sort by creation time). */
void eg__lib_sync_new(char out[EG__LIB_SYNC_MAX]);

/* The workspace id is one engram accepts in keys (printable, no braces, 1..64 bytes). */
bool eg__lib_ws_valid(const char *ws);

/* ---- JSON helpers ---------------------------------------------------------------------------- */

const char *eg__lib_jstr(const cJSON *o, const char *key);   /* NULL unless a string */
const cJSON *eg__lib_priv(const cJSON *rec);                 /* the "_" object (or NULL) */
const char *eg__lib_pstr(const cJSON *rec, const char *key); /* a string of "_" */
/* Set (replace or add) key of o to v (taking ownership), keeping the key's position. */
void eg__lib_jset(cJSON *o, const char *key, cJSON *v);

/* The public Memory (Fency shape) of a stored record: "_" dropped, content set (NULL: null), and
 * "contentStatusReason" added while the status is SYNCHRONIZATION_ERROR. A new tree. */
cJSON *eg__lib_mem_public(const cJSON *rec, const char *content);

/* The public MemoryType of a stored record (a new tree). */
cJSON *eg__lib_type_public(const cJSON *rec);

/* ---- the record write ------------------------------------------------------------------------ */

typedef enum { EG__LIB_KEEP = 0, EG__LIB_CLEAR, EG__LIB_SET } eg__lib_op_t;

/* One atomic change of a memory record and its side keys (one script). */
typedef struct eg__lib_put_s {
    const char *ws, *id, *type_id, *member;
    const char *old;           /* the record as read (NULL: the record must not exist yet) */
    const char *rec;           /* the new record (NULL: delete the memory and its side keys) */
    eg__lib_op_t content;      /* SET: text + chunks; CLEAR: drop them */
    const char *text;          /* content SET */
    const char *const *chunks; /* content SET: chunk JSON texts {"p":[pages],"t":text} */
    size_t nchunks;
    eg__lib_op_t file; /* SET: file_name, mime, data; CLEAR: drop the stored bytes */
    const char *file_name, *mime;
    const void *data;
    size_t len;
    const char *ident;     /* identity value to index for type_id (set), or to drop (delete) */
    const char *ident_old; /* an identity value to drop from the index when it names this memory */
    const char *job_key;   /* a bulk job record to write in the same script (NULL: none) */
    const char *job_json;
} eg__lib_put_t;

/* cb(udata, err): 0 written; EG_ECONFLICT the record is not what old says (read it again);
 * EG_ENOTFOUND (creating) the memory type does not exist; or a store error. */
int eg__lib_put(const eg__lib_put_t *p, void (*cb)(void *, int), void *udata);

/* Read one record: err 0 with the record (a new tree the callee deletes after cb), its raw text
 * and its content (NULL when none); EG_ENOTFOUND. */
typedef void (*eg__lib_rec_fn)(void *udata, int err, cJSON *rec, const char *raw,
                               const char *content);
int eg__lib_mem_read(const char *ws, const char *id, bool with_content, eg__lib_rec_fn cb,
                     void *udata);

/* Emit a memory event (memory.created / updated / deleted) with the public memory; logged and
 * otherwise ignored on failure. */
void eg__lib_emit(const char *ws, const char *type, const cJSON *memory);

/* ---- the worker (library_worker.c, library_sync.c) ------------------------------------------ */

#define EG__LIB_ATTEMPTS 5 /* attempts of a library job before it is dead-lettered */

/* What the worker shares with its jobs (set by eg_library_start). */
typedef struct eg__lib_worker_s {
    uv_loop_t *loop;
    struct eg_httpc_s *http; /* the outbound client (engram/httpc.h), SSRF guard on */
    size_t url_max;          /* ENGRAM_LIBRARY_URL_MAX_BYTES */
} eg__lib_worker_t;
extern eg__lib_worker_t eg__lib_w;

/* A job that finds its record (or content version) not written yet looks again after
 * EG__LIB_WAIT_MS, doubling up to EG__LIB_WAIT_MAX_MS, while it is younger than
 * EG__LIB_WAIT_FOR_US (a slow write cannot strand it; a lost one stops being waited for). */
#define EG__LIB_WAIT_MS     250
#define EG__LIB_WAIT_MAX_MS 4000
#define EG__LIB_WAIT_FOR_US (30LL * 1000000)

/* Hand job over to a delayed copy of itself: payload (a job payload, "w" set here to wait + 1)
 * pushed as job_id after the wait of round wait; job is acknowledged once the copy is in Redis,
 * retried otherwise. Takes nothing: payload stays the caller's. */
void eg__lib_wait_again(eg_job_t *job, const char *job_id, cJSON *payload, int wait);

/* Push payload onto the "library" queue as job_id, delay_ms from now; cb(udata, err) (may be
 * NULL) once it is in Redis. 0 or an error (cb not called). */
int eg__lib_push(const char *job_id, const cJSON *payload, uint64_t delay_ms,
                 void (*cb)(void *, int), void *udata);

/* Queue the synchronisation of memory id at content version sync (job id "<ws>:<id>:<sync>",
 * pushed before the record names that version, so a crash between the two leaves no memory
 * without its job). cb(udata, err). */
int eg__lib_sync_push(const char *ws, const char *id, const char *sync, void (*cb)(void *, int),
                      void *udata);

/* Queue the removal of a memory-engine document of the library bank (a memory deleted or
 * re-synchronised); best effort, logged. */
void eg__lib_purge_push(const char *ws, const char *doc);

/* Run a sync job (library_sync.c): payload {"k":"sync","ws","id","n":<version>,"w"?}. */
typedef struct eg_job_s eg_job_t;
void eg__lib_sync_run(eg_job_t *job, const cJSON *payload);

/* Run a bulk job (library_jobs.c): payload {"k":"bulk","ws","job","type","memories","t","w"?}. */
void eg__lib_bulk_run(eg_job_t *job, const cJSON *payload);

/* ---- pure pieces (unit tested) --------------------------------------------------------------- */

typedef struct eg__lib_chunk_s {
    const char *text; /* NUL-terminated, in the arena */
    size_t len;
    int *pages; /* ascending, distinct */
    size_t npages;
} eg__lib_chunk_t;

/* Join pages into the full content (pages separated by a blank line; *content in a) and chunk it
 * at max_cp code points on sentence boundaries; each chunk lists the pages it overlaps. Pages
 * of whitespace only count for nothing. Returns the number of chunks (0 when there is no text). */
size_t eg__lib_chunk(eg_arena_t *a, const eg_doc_page_t *pages, size_t npages, size_t max_cp,
                     char **content, eg__lib_chunk_t **out);

/* A chunk as stored in the chunk list and read back. */
char *eg__lib_chunk_json(const eg__lib_chunk_t *c);
int eg__lib_chunk_parse(eg_arena_t *a, const char *json, eg__lib_chunk_t *out);

/* The text a METADATA memory (one written by a bulk job) is indexed with: its title, then one
 * "key: value" line per metadata key (strings as they are, other values as JSON). In a. */
char *eg__lib_metadata_text(eg_arena_t *a, const char *title, const cJSON *metadata);

/* Compare two metadata values for a bulk job's newer-wins rule: numbers numerically, ISO 8601
 * strings as instants, other strings bytewise. 0 with *cmp (<0, 0, >0), or EG_EINVAL when they
 * cannot be compared. */
int eg__lib_value_cmp(const cJSON *a, const cJSON *b, int *cmp);

/* The identity value of metadata[key] as the index stores it: a string as is, a number or a
 * bool as its JSON text; NULL for anything else (in a). */
char *eg__lib_ident(eg_arena_t *a, const cJSON *metadata, const char *key);

#endif
