/* Content into chunks that remember their pages, and the small value rules of bulk jobs. Pure:
 * no I/O, no global state (unit tested in tests/unit/test_library.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/text.h"
#include "engram/util.h"
#include "library_int.h"

#define PAGE_SEP     "\n\n"
#define PAGE_SEP_LEN 2

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
            s[i] != '\v')
            return false;
    return true;
}

size_t eg__lib_chunk(eg_arena_t *a, const eg_doc_page_t *pages, size_t npages, size_t max_cp,
                     char **content, eg__lib_chunk_t **out)
{
    size_t total = 0, used = 0, k = 0;
    size_t *start, *end;
    int *number;
    char *buf;

    *out = NULL;
    for (size_t i = 0; i < npages; i++)
        total += pages[i].len + PAGE_SEP_LEN;
    buf = eg_arena_alloc(a, total + 1);
    start = eg_arena_alloc(a, (npages + 1) * sizeof(*start));
    end = eg_arena_alloc(a, (npages + 1) * sizeof(*end));
    number = eg_arena_alloc(a, (npages + 1) * sizeof(*number));
    /* The full text: non-blank pages, each trimmed at its end, a blank line between them; each
     * page's byte range in it is kept to map chunks back to pages. */
    for (size_t i = 0; i < npages; i++) {
        const char *t = pages[i].text;
        size_t n = pages[i].len;
        if (!t || blank(t, n))
            continue;
        while (n > 0 &&
               (t[n - 1] == ' ' || t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == '\t'))
            n--;
        if (used > 0) {
            memcpy(buf + used, PAGE_SEP, PAGE_SEP_LEN);
            used += PAGE_SEP_LEN;
        }
        start[k] = used;
        memcpy(buf + used, t, n);
        used += n;
        end[k] = used;
        number[k] = pages[i].number;
        k++;
    }
    buf[used] = '\0';
    *content = buf;
    if (k == 0)
        return 0;

    eg_text_span_t *spans;
    size_t n = eg_text_chunks(a, buf, used, max_cp ? max_cp : EG__LIB_CHUNK_CP, &spans);
    eg__lib_chunk_t *cs = eg_arena_calloc(a, (n + 1) * sizeof(*cs));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = spans[i].off, e = spans[i].off + spans[i].len;
        if (spans[i].len == 0 || blank(buf + s, spans[i].len))
            continue;
        eg__lib_chunk_t *c = &cs[m++];
        c->text = eg_arena_strndup(a, buf + s, spans[i].len);
        c->len = spans[i].len;
        c->pages = eg_arena_alloc(a, k * sizeof(*c->pages));
        for (size_t p = 0; p < k; p++) {
            if (start[p] >= e || end[p] <= s)
                continue;
            /* Pages arrive in order, but a converter may number them freely: keep them
             * ascending and distinct. */
            size_t at = c->npages;
            while (at > 0 && c->pages[at - 1] > number[p])
                at--;
            if (at > 0 && c->pages[at - 1] == number[p])
                continue;
            memmove(c->pages + at + 1, c->pages + at, (c->npages - at) * sizeof(*c->pages));
            c->pages[at] = number[p];
            c->npages++;
        }
    }
    *out = cs;
    return m;
}

char *eg__lib_chunk_json(const eg__lib_chunk_t *c)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddArrayToObject(o, "p");
    char *s;

    for (size_t i = 0; i < c->npages; i++)
        cJSON_AddItemToArray(p, cJSON_CreateNumber(c->pages[i]));
    cJSON_AddItemToObject(o, "t", cJSON_CreateStringReference(c->text));
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int eg__lib_chunk_parse(eg_arena_t *a, const char *json, eg__lib_chunk_t *out)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "p"), *v;
    const char *t = eg__lib_jstr(o, "t");
    int rc = EG_EINVAL;

    memset(out, 0, sizeof(*out));
    if (t && cJSON_IsArray(p)) {
        out->text = eg_arena_strdup(a, t);
        out->len = strlen(t);
        out->pages = eg_arena_alloc(a, ((size_t)cJSON_GetArraySize(p) + 1) * sizeof(int));
        cJSON_ArrayForEach(v, p)
        {
            if (cJSON_IsNumber(v))
                out->pages[out->npages++] = v->valueint;
        }
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

int eg__lib_value_cmp(const cJSON *a, const cJSON *b, int *cmp)
{
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) {
        double x = a->valuedouble, y = b->valuedouble;
        if (isnan(x) || isnan(y))
            return EG_EINVAL;
        *cmp = x < y ? -1 : x > y ? 1 : 0;
        return 0;
    }
    if (cJSON_IsString(a) && cJSON_IsString(b)) {
        int64_t x, y;
        if (eg_text_parse_iso(a->valuestring, strlen(a->valuestring), &x) == 0 &&
            eg_text_parse_iso(b->valuestring, strlen(b->valuestring), &y) == 0) {
            *cmp = x < y ? -1 : x > y ? 1 : 0;
            return 0;
        }
        int c = strcmp(a->valuestring, b->valuestring);
        *cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
        return 0;
    }
    return EG_EINVAL;
}

char *eg__lib_ident(eg_arena_t *a, const cJSON *metadata, const char *key)
{
    const cJSON *v = key ? cJSON_GetObjectItemCaseSensitive(metadata, key) : NULL;

    if (cJSON_IsString(v))
        return v->valuestring[0] ? eg_arena_strdup(a, v->valuestring) : NULL;
    if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
        char *s = cJSON_PrintUnformatted(v);
        char *r = eg_arena_strdup(a, s);
        free(s);
        return r;
    }
    return NULL;
}

char *eg__lib_metadata_text(eg_arena_t *a, const char *title, const cJSON *metadata)
{
    const cJSON *v;
    char *t = eg_arena_printf(a, "%s\n", title ? title : "");

    cJSON_ArrayForEach(v, metadata)
    {
        if (cJSON_IsString(v)) {
            t = eg_arena_printf(a, "%s\n%s: %s", t, v->string, v->valuestring);
        } else {
            char *s = cJSON_PrintUnformatted(v);
            t = eg_arena_printf(a, "%s\n%s: %s", t, v->string, s);
            free(s);
        }
    }
    return t;
}
