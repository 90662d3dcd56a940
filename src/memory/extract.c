/* The extractor interface: vtable wrappers, modes and token usage. */
#include "engram/extract.h"

#include <string.h>

#include "engram/error.h"

void eg_usage_add(eg_usage_t *dst, const eg_usage_t *src)
{
    dst->input_tokens += src->input_tokens;
    dst->output_tokens += src->output_tokens;
    dst->total_tokens += src->total_tokens;
    dst->cached_tokens += src->cached_tokens;
    dst->thoughts_tokens += src->thoughts_tokens;
}

int eg_extract_mode_parse(const char *s, eg_extract_mode_t *out)
{
    static const char *const names[] = {"concise", "verbose", "custom", "verbatim", "chunks"};

    if (!s || !*s) {
        *out = EG_EXTRACT_CONCISE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (eg_extract_mode_t)i;
            return 0;
        }
    }
    return EG_EINVAL;
}

int eg_extract_run(eg_extractor_t *x, eg_arena_t *a, const eg_extract_input_t *in, eg_extract_cb cb,
                   void *udata)
{
    if (!x || !a || !in || !cb || (!in->text && in->len))
        return EG_EINVAL;
    return x->extract(x, a, in, cb, udata);
}

void eg_extract_destroy(eg_extractor_t *x)
{
    if (x && x->destroy)
        x->destroy(x);
}
