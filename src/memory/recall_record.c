/* Decoding the unit records a recall shows, without a cJSON tree.
 *
 * A recall at budget mid with the default 4096 tokens shows a few hundred short facts; parsing each
 * record into a cJSON tree (a malloc per member), copying it out and freeing the tree cost more
 * than ranking them. Records are the compact JSON objects mstore writes (engram/mstore.h), so one
 * forward scan finds every member: strings are copied straight into the arena (escapes decoded),
 * integers read in place, and only a non-empty metadata object is handed to cJSON. Members
 * recall does not know are skipped. Anything outside that shape (a fractional number, a string
 * where an integer belongs, broken JSON) falls back to eg_mem_unit_parse, which decides. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engram/error.h"
#include "engram/mstore.h"

#include "recall_int.h"

typedef struct {
    const char *p, *end;
    eg_arena_t *a;
} scan_t;

static void ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(scan_t *s, char c)
{
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static bool literal(scan_t *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;

    if (end - p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return true;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at s->p (after whitespace), decoded into the arena when a is set (else skipped).
 * Escapes are decoded as cJSON does (a lone surrogate fails). */
static bool string(scan_t *s, eg_arena_t *a, const char **out)
{
    const char *q, *start;
    bool esc = false;
    char *o, *w;

    ws(s);
    if (s->p >= s->end || *s->p != '"')
        return false;
    start = ++s->p;
    for (q = start; q < s->end && *q != '"'; q++)
        if (*q == '\\') {
            esc = true;
            if (++q >= s->end)
                return false;
        }
    if (q >= s->end)
        return false;
    s->p = q + 1;
    if (!a)
        return true;
    if (!esc) {
        *out = eg_arena_strndup(a, start, (size_t)(q - start));
        return true;
    }
    /* An escape never decodes to more bytes than it takes (\uXXXX: 6 for at most 3, a pair: 12
     * for 4). */
    w = o = eg_arena_alloc(a, (size_t)(q - start) + 1);
    for (const char *p = start; p < q; p++) {
        unsigned cp, lo;

        if (*p != '\\') {
            *w++ = *p;
            continue;
        }
        switch (*++p) {
        case '"':
        case '\\':
        case '/':
            *w++ = *p;
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u':
            if (!hex4(p + 1, q, &cp))
                return false;
            p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return false;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (q - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, q, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return false;
                p += 6;
                cp = 0x10000 + ((cp & 0x3ff) << 10 | (lo & 0x3ff));
            }
            if (cp == 0)
                return false; /* would cut the C string: let cJSON decide */
            w += utf8_put(w, cp);
            break;
        default:
            return false;
        }
    }
    *w = '\0';
    *out = o;
    return true;
}

/* A string or null (*out NULL). */
static bool opt_string(scan_t *s, const char **out)
{
    ws(s);
    *out = NULL;
    if (literal(s, "null", 4))
        return true;
    return string(s, s->a, out);
}

/* An integer or null (none). Anything with a fraction or exponent is left to the fallback. */
static bool opt_int(scan_t *s, int64_t none, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    int digits = 0;

    ws(s);
    *out = none;
    if (literal(s, "null", 4))
        return true;
    if (s->p < s->end && *s->p == '-') {
        neg = true;
        s->p++;
    }
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (++digits > 18)
            return false;
        v = v * 10 + (uint64_t)(*s->p++ - '0');
    }
    if (!digits || (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')))
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* An array of strings or null, at most max entries. */
static bool opt_strings(scan_t *s, size_t max, const char *const **out, size_t *n)
{
    const char *tmp[64], **v = tmp;
    size_t cap = 64, cnt = 0;

    ws(s);
    *out = NULL;
    *n = 0;
    if (literal(s, "null", 4))
        return true;
    if (!eat(s, '['))
        return false;
    if (eat(s, ']'))
        return true;
    for (;;) {
        const char *str;

        if (cnt == max || !string(s, s->a, &str))
            return false;
        if (cnt == cap) {
            const char **nv = eg_arena_alloc(s->a, cap * 2 * sizeof(*nv));
            memcpy(nv, v, cnt * sizeof(*nv));
            v = nv;
            cap *= 2;
        }
        v[cnt++] = str;
        if (eat(s, ']'))
            break;
        if (!eat(s, ','))
            return false;
    }
    if (v == tmp) {
        const char **c = eg_arena_alloc(s->a, cnt * sizeof(*c));
        memcpy(c, tmp, cnt * sizeof(*c));
        v = c;
    }
    *out = v;
    *n = cnt;
    return true;
}

/* Skip any value (strings honour escapes; containers nest). */
static bool skip_value(scan_t *s)
{
    int depth = 0;

    ws(s);
    do {
        if (s->p >= s->end)
            return false;
        switch (*s->p) {
        case '"':
            if (!string(s, NULL, NULL))
                return false;
            break;
        case '{':
        case '[':
            depth++;
            s->p++;
            break;
        case '}':
        case ']':
            if (--depth < 0)
                return false;
            s->p++;
            break;
        default:
            if (depth == 0) {
                const char *p0 = s->p;
                while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' &&
                       *s->p != ' ' && *s->p != '\n' && *s->p != '\r' && *s->p != '\t')
                    s->p++;
                return s->p > p0;
            }
            s->p++;
        }
    } while (depth > 0);
    return true;
}

static void json_delete(void *p)
{
    cJSON_Delete(p);
}

/* null, an empty object (no tree: renders the same as an empty one), or an object parsed by
 * cJSON from its span. */
static bool opt_object(scan_t *s, const cJSON **out)
{
    const char *p0;
    cJSON *j;

    ws(s);
    *out = NULL;
    if (literal(s, "null", 4))
        return true;
    if (s->p >= s->end || *s->p != '{')
        return false;
    p0 = s->p;
    if (!skip_value(s))
        return false;
    {
        scan_t in = {p0 + 1, s->p - 1, NULL};
        ws(&in);
        if (in.p == in.end)
            return true;
    }
    j = cJSON_ParseWithLength(p0, (size_t)(s->p - p0));
    if (!j)
        return false;
    eg_arena_defer(s->a, json_delete, j);
    *out = j;
    return cJSON_IsObject(j);
}

static bool key_is(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* One member of the record; false sends the whole record to the fallback. */
static bool member(scan_t *s, const char *k, size_t n, eg_mem_unit_t *u, const char **type,
                   const char **state, int64_t *proof)
{
    switch (k[0]) {
    case 'c':
        if (key_is(k, n, "context"))
            return opt_string(s, &u->context);
        if (key_is(k, n, "chunk_id"))
            return opt_string(s, &u->chunk_id);
        if (key_is(k, n, "created_at"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->created_at);
        break;
    case 'd':
        if (key_is(k, n, "document_id"))
            return opt_string(s, &u->document_id);
        break;
    case 'e':
        if (key_is(k, n, "entity_ids"))
            return opt_strings(s, EG_MEM_ENTITIES_MAX, &u->entity_ids, &u->nentities);
        if (key_is(k, n, "edited_at"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->edited_at);
        break;
    case 'f':
        if (key_is(k, n, "fact_type"))
            return opt_string(s, type);
        break;
    case 'i':
        if (key_is(k, n, "id"))
            return opt_string(s, &u->id);
        if (key_is(k, n, "invalidation_reason"))
            return opt_string(s, &u->invalidation_reason);
        if (key_is(k, n, "invalidated_at"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->invalidated_at);
        break;
    case 'm':
        if (key_is(k, n, "mentioned_at"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->mentioned_at);
        if (key_is(k, n, "metadata"))
            return opt_object(s, &u->metadata);
        break;
    case 'o':
        if (key_is(k, n, "occurred_start"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->occurred_start);
        if (key_is(k, n, "occurred_end"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->occurred_end);
        break;
    case 'p':
        if (key_is(k, n, "proof_count"))
            return opt_int(s, 1, proof);
        break;
    case 's':
        if (key_is(k, n, "state"))
            return opt_string(s, state);
        if (key_is(k, n, "source_ids"))
            return opt_strings(s, SIZE_MAX, &u->source_ids, &u->nsources);
        break;
    case 't':
        if (key_is(k, n, "text"))
            return opt_string(s, &u->text);
        if (key_is(k, n, "tags"))
            return opt_strings(s, EG_MEM_TAGS_MAX, &u->tags, &u->ntags);
        break;
    case 'u':
        if (key_is(k, n, "updated_at"))
            return opt_int(s, EG_MEM_TIME_NONE, &u->updated_at);
        break;
    default:
        break;
    }
    return skip_value(s);
}

static bool fast(eg_arena_t *a, const char *json, size_t len, eg_mem_unit_t *u)
{
    scan_t s = {json, json + len, a};
    const char *type = NULL, *state = NULL;
    int64_t proof = 1;

    memset(u, 0, sizeof(*u));
    u->occurred_start = u->occurred_end = u->mentioned_at = u->created_at = u->updated_at =
        u->invalidated_at = u->edited_at = EG_MEM_TIME_NONE;
    if (!eat(&s, '{'))
        return false;
    if (!eat(&s, '}')) {
        for (;;) {
            const char *k0;
            size_t kn;

            ws(&s);
            k0 = s.p + 1;
            if (!string(&s, NULL, NULL))
                return false;
            kn = (size_t)(s.p - 1 - k0);
            if (!kn || memchr(k0, '\\', kn) || !eat(&s, ':') ||
                !member(&s, k0, kn, u, &type, &state, &proof))
                return false;
            if (eat(&s, '}'))
                break;
            if (!eat(&s, ','))
                return false;
        }
    }
    ws(&s);
    if (s.p != s.end || !u->id || !u->text || !type || eg_fact_type_parse(type, &u->type) != 0 ||
        proof < 0 || proof > INT32_MAX)
        return false;
    if (state != NULL && strcmp(state, "valid") != 0 && strcmp(state, "invalidated") != 0)
        return false;
    u->invalidated = state != NULL && strcmp(state, "invalidated") == 0;
    u->proof_count = (int)proof;
    if (u->context == NULL)
        u->context = "";
    return true;
}

int eg__recall_unit_decode(eg_arena_t *a, const char *json, size_t len, eg_mem_unit_t *out)
{
    if (json && fast(a, json, len, out))
        return 0;
    return eg_mem_unit_parse(a, json, len, out);
}
