/* Chunking by structure. Prose is cut on sentence boundaries (eg_text_chunks); a conversation is
 * cut between turns instead, so that no turn loses its speaker (or a JSON message its role) to a
 * chunk boundary, as Hindsight's chunk_text() does for JSON conversations. */
#include <string.h>

#include "engram/extract.h"
#include "engram/text.h"
#include "memory/extract_int.h"

typedef struct {
    eg_extract_chunk_t *v;
    size_t n, cap;
} chunks_t;

static void chunk_push(eg_arena_t *a, chunks_t *c, const char *text, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        eg_extract_chunk_t *v = eg_arena_alloc(a, cap * sizeof(*v));
        if (c->n)
            memcpy(v, c->v, c->n * sizeof(*v));
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n].text = text;
    c->v[c->n].len = len;
    c->n++;
}

/* JSON turns [first, last] as one array: "[t1, t2]" (Python's json.dumps separator). */
static void push_json(eg_arena_t *a, chunks_t *c, const char *s, const eg__msg_t *m, size_t first,
                      size_t last)
{
    size_t total = 2;
    for (size_t k = first; k <= last; k++)
        total += m[k].span + (k > first ? 2 : 0);
    char *out = eg_arena_alloc(a, total + 1), *w = out;
    *w++ = '[';
    for (size_t k = first; k <= last; k++) {
        if (k > first) {
            *w++ = ',';
            *w++ = ' ';
        }
        memcpy(w, s + m[k].off, m[k].span);
        w += m[k].span;
    }
    *w++ = ']';
    *w = '\0';
    chunk_push(a, c, out, total);
}

/* Turns [first, last] as the text they span in the input (lines, with whatever lies between). */
static void push_span(eg_arena_t *a, chunks_t *c, const char *s, const eg__msg_t *m, size_t first,
                      size_t last)
{
    size_t off = m[first].off, end = m[last].off + m[last].span;
    chunk_push(a, c, eg_arena_strndup(a, s + off, end - off), end - off);
}

size_t eg_extract_chunks(eg_arena_t *a, const char *text, size_t len, size_t chunk_cp,
                         size_t structured_cp, eg_extract_chunk_t **out)
{
    chunks_t c = {0};
    eg__msg_t *m;
    size_t n;

    if (chunk_cp == 0)
        chunk_cp = EG_TEXT_CHUNK_DEFAULT;
    if (structured_cp == 0)
        structured_cp = chunk_cp;
    if (!text)
        len = 0;
    if (eg_text_codepoints(text ? text : "", len) <= chunk_cp) {
        chunk_push(a, &c, eg_arena_strndup(a, text ? text : "", len), len);
        *out = c.v;
        return c.n;
    }

    eg__conv_kind_t kind = eg__conv_parse(a, text, len, &m, &n);
    if (kind == EG__CONV_NONE) {
        eg_text_span_t *spans;
        size_t ns = eg_text_chunks(a, text, len, chunk_cp, &spans);
        for (size_t i = 0; i < ns; i++)
            chunk_push(a, &c, eg_arena_strndup(a, text + spans[i].off, spans[i].len), spans[i].len);
        if (c.n == 0)
            chunk_push(a, &c, eg_arena_strndup(a, text, len), len);
        *out = c.v;
        return c.n;
    }

    /* Greedy packing of whole turns; a JSON array costs 2 ("[]") and each turn its length + 1
     * (the separator), as Hindsight counts. */
    size_t base = kind == EG__CONV_JSON ? 2 : 0, size = base, first = 0;
    for (size_t k = 0; k < n; k++) {
        size_t turn = eg_text_codepoints(text + m[k].off, m[k].span) + 1;
        if (size + turn > structured_cp && k > first) {
            if (kind == EG__CONV_JSON)
                push_json(a, &c, text, m, first, k - 1);
            else
                push_span(a, &c, text, m, first, k - 1);
            first = k;
            size = base;
        }
        size += turn;
    }
    if (kind == EG__CONV_JSON)
        push_json(a, &c, text, m, first, n - 1);
    else
        push_span(a, &c, text, m, first, n - 1);
    *out = c.v;
    return c.n;
}
