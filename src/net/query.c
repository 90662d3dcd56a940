/* Query-string parsing: decoded pairs in order, repeated keys kept. */
#include <string.h>

#include "engram/error.h"
#include "engram/http.h"
#include "engram/util.h"

int eg_query_parse(eg_arena_t *a, const char *qs, eg_kv_t **out, size_t *n)
{
    size_t cap = 1, count = 0;
    eg_kv_t *kv;
    const char *p;

    *out = NULL;
    *n = 0;
    if (qs == NULL || *qs == '\0')
        return 0;
    for (p = qs; *p; p++)
        if (*p == '&')
            cap++;
    kv = eg_arena_alloc(a, cap * sizeof(*kv));

    p = qs;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            char *pair = eg_arena_strndup(a, p, len);
            char *eq = strchr(pair, '=');
            char *value = pair + len; /* the NUL terminator: an empty, writable value */
            if (eq) {
                *eq = '\0';
                value = eq + 1;
            }
            if (eg_percent_decode(pair, true, NULL) != 0 ||
                eg_percent_decode(value, true, NULL) != 0)
                return EG_EINVAL;
            kv[count].name = pair;
            kv[count].value = value;
            count++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    *out = kv;
    *n = count;
    return 0;
}
