/* Keyspace helpers: every key is "eg:{<scope>[:<id>]}:<suffix>" (docs/keyspace.md).
 *
 * The braces are a Redis Cluster hash tag: only the text between the first '{' and the next '}'
 * picks the slot, so all keys of one scope land in one slot and a Lua script or MULTI touching
 * several of them stays legal on a cluster. */
#include <stdarg.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/store.h"

/* Bytes the escaped id needs. */
static size_t eg_key_id_len(const char *id)
{
    size_t n = 0;

    for (const char *s = id; *s; s++)
        n += (*s == '{' || *s == '}' || *s == '%') ? 3 : 1;
    return n;
}

/* Copy id, percent-escaping '{', '}' and '%'. Ids are validated at the edge, but one carrying a
 * '}' would end the hash tag early and move the key to another slot; escaping keeps the tag
 * intact and the mapping from id to key one-to-one. */
static char *eg_key_id_put(char *o, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const char *s = id; *s; s++) {
        if (*s == '{' || *s == '}' || *s == '%') {
            *o++ = '%';
            *o++ = hex[(unsigned char)*s >> 4];
            *o++ = hex[(unsigned char)*s & 15];
        } else {
            *o++ = *s;
        }
    }
    return o;
}

char *eg_key(eg_arena_t *a, const char *scope, const char *id, const char *suffix_fmt, ...)
{
    va_list ap;
    char *suffix, *key, *o;
    size_t slen = strlen(scope), ilen = id != NULL ? eg_key_id_len(id) : 0, xlen;

    va_start(ap, suffix_fmt);
    suffix = eg_arena_vprintf(a, suffix_fmt, ap);
    va_end(ap);
    xlen = strlen(suffix);

    /* "eg:{" scope [":" id] "}:" suffix NUL */
    key = eg_arena_alloc(a, 4 + slen + (id != NULL ? 1 + ilen : 0) + 2 + xlen + 1);
    o = key;
    memcpy(o, "eg:{", 4);
    o += 4;
    memcpy(o, scope, slen);
    o += slen;
    if (id != NULL) {
        *o++ = ':';
        o = eg_key_id_put(o, id);
    }
    memcpy(o, "}:", 2);
    o += 2;
    memcpy(o, suffix, xlen + 1);
    return key;
}
