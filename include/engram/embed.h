/* Embedding providers: turn texts into fixed-dimension float vectors for the vector index.
 *
 * A provider is a small vtable so the memory engine does not care whether vectors come from the
 * builtin hashed lexical embedding (in-process, no I/O) or from a remote model over HTTP (the
 * OpenAI-compatible provider, later). Every provider's vectors are L2-normalised, so a dot
 * product is a cosine similarity. */
#ifndef ENGRAM_EMBED_H
#define ENGRAM_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EG_EMBED_DEFAULT_DIM 384

typedef struct eg_embedder_s eg_embedder_t;

/* Completion of eg_embed_run(): status 0 means all n vectors were written to out; a negative
 * EG_E* code means out holds nothing usable. Called exactly once per accepted request. */
typedef void (*eg_embed_cb)(eg_embedder_t *e, int status, void *udata);

struct eg_embedder_s {
    const char *name; /* stable identifier, e.g. "builtin-hash-v1"; stored alongside vectors */
    size_t dim;       /* floats per vector */
    /* Embed n NUL-terminated texts into out (n * dim floats, caller-owned, valid until cb).
     * Returns 0 when accepted (cb will run exactly once) or a negative EG_E* code when refused
     * (cb will not run). */
    int (*embed)(eg_embedder_t *e, const char *const *texts, size_t n, float *out, eg_embed_cb cb,
                 void *udata);
    void (*destroy)(eg_embedder_t *e);
    void *impl; /* provider-private state */
};

/* Convenience wrappers over the vtable. eg_embed_destroy(NULL) is a no-op. */
int eg_embed_run(eg_embedder_t *e, const char *const *texts, size_t n, float *out, eg_embed_cb cb,
                 void *udata);
void eg_embed_destroy(eg_embedder_t *e);

/* The builtin provider: a deterministic hashed lexical embedding (unigrams and bigrams of crudely
 * stemmed, lowercased content words plus character trigrams of each word with boundary markers,
 * signed feature hashing, sublinear tf, L2-normalised). dim 0 selects EG_EMBED_DEFAULT_DIM.
 * Identical text gives a bit-identical vector in every process and run of the same build.
 *
 * Its embed() completes synchronously: cb runs before embed() returns, always with status 0.
 * Callers written against the interface must still cope with either order. */
eg_embedder_t *eg_embed_builtin_new(size_t dim);

/* Whether e is a builtin embedder (whose vectors eg_embed_builtin_vec reproduces at its dim). */
bool eg_embed_is_builtin(const eg_embedder_t *e);

/* The builtin embedding of one text of len bytes into out[dim], without the vtable or a callback
 * (the recall path embeds its query inline). Text with no words yields the zero vector. */
void eg_embed_builtin_vec(const char *text, size_t len, float *out, size_t dim);

#endif
