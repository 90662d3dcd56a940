/* multipart/form-data parsing over a fully received body. The body is searched for the
 * delimiter line ("--" boundary at the start of a line); a part's data ends at the line break
 * before the next delimiter. Browsers write CRLF everywhere; a bare LF is accepted too, so a
 * hand-made form still parses. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/multipart.h"

/* ---- Header parameters ---------------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* The HTML form encoder writes '"', CR and LF of names and file names as %22, %0D and %0A. */
static char *unescape_html_form(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '%' && r[1] && r[2]) {
            if (r[1] == '2' && r[2] == '2') {
                *w++ = '"', r += 3;
                continue;
            }
            if (r[1] == '0' && (r[2] == 'A' || r[2] == 'a')) {
                *w++ = '\n', r += 3;
                continue;
            }
            if (r[1] == '0' && (r[2] == 'D' || r[2] == 'd')) {
                *w++ = '\r', r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return s;
}

const char *eg_multipart_param(eg_arena_t *a, const char *value, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = value ? strchr(value, ';') : NULL;

    while (p && *p == ';') {
        p = skip_ws(p + 1);
        const char *k = p;
        while (*p && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t klen = (size_t)(p - k);
        p = skip_ws(p);
        if (*p != '=') { /* a parameter without a value */
            p = strchr(p, ';');
            continue;
        }
        p = skip_ws(p + 1);
        eg_buf_t v = EG_BUF_INIT;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                eg_buf_append(&v, p, 1);
            }
            if (*p == '"')
                p++;
        } else {
            const char *s = p;
            while (*p && *p != ';')
                p++;
            const char *e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            eg_buf_append(&v, s, (size_t)(e - s));
        }
        bool match = klen == nlen && strncasecmp(k, name, nlen) == 0;
        char *out = match ? eg_arena_strndup(a, v.data ? v.data : "", v.len) : NULL;
        eg_buf_free(&v);
        if (match)
            return out;
        p = strchr(p, ';');
    }
    return NULL;
}

const char *eg_multipart_boundary(eg_arena_t *a, const char *content_type)
{
    static const char type[] = "multipart/form-data";
    if (!content_type)
        return NULL;
    const char *p = skip_ws(content_type);
    if (strncasecmp(p, type, sizeof type - 1) != 0)
        return NULL;
    p = skip_ws(p + sizeof type - 1);
    if (*p != ';')
        return NULL;
    const char *b = eg_multipart_param(a, p, "boundary");
    size_t n = b ? strlen(b) : 0;
    if (n < 1 || n > 70 || strpbrk(b, "\r\n"))
        return NULL;
    return b;
}

/* ---- Body ----------------------------------------------------------------------------------- */

typedef struct {
    const char *body;
    size_t len;
    const char *delim; /* "--" boundary */
    size_t dlen;
} scan_t;

/* Is there a delimiter line at off (pointing at "--boundary")? Sets *next past its line end and
 * *close when it is the closing one. */
static bool delim_at(const scan_t *s, size_t off, size_t *next, bool *close)
{
    if (off + s->dlen > s->len || memcmp(s->body + off, s->delim, s->dlen) != 0)
        return false;
    size_t i = off + s->dlen;
    *close = i + 2 <= s->len && s->body[i] == '-' && s->body[i + 1] == '-';
    if (*close)
        i += 2;
    while (i < s->len && (s->body[i] == ' ' || s->body[i] == '\t')) /* transport padding */
        i++;
    if (i == s->len) {
        *next = i;
        return *close; /* only the closing delimiter may end the body */
    }
    if (s->body[i] == '\r' && i + 1 < s->len && s->body[i + 1] == '\n')
        i += 2;
    else if (s->body[i] == '\n')
        i += 1;
    else
        return false; /* "--boundaryX": a longer line, not a delimiter */
    *next = i;
    return true;
}

/* The next delimiter at a line start at or after from: the offset of its line break (the data
 * end) in *end, its own start in *at. */
static bool find_delim(const scan_t *s, size_t from, size_t *end, size_t *next, bool *close)
{
    size_t i = from;
    while (i < s->len) {
        const char *nl = memchr(s->body + i, '\n', s->len - i);
        if (!nl)
            return false;
        size_t k = (size_t)(nl - s->body);
        if (delim_at(s, k + 1, next, close)) {
            *end = (k > from && s->body[k - 1] == '\r') ? k - 1 : k;
            return true;
        }
        i = k + 1;
    }
    return false;
}

/* One complete header line (continuations joined): keep Content-Disposition and Content-Type. */
static void header_done(eg_arena_t *a, eg_buf_t *line, const char **disp, eg_multipart_part_t *p)
{
    char *h = line->data, *colon = strchr(h, ':');
    if (!colon)
        return;
    *colon = '\0';
    const char *v = skip_ws(colon + 1);
    if (strcasecmp(h, "Content-Disposition") == 0)
        *disp = eg_arena_strdup(a, v);
    else if (strcasecmp(h, "Content-Type") == 0)
        p->content_type = eg_arena_strdup(a, v);
}

/* Parse one part's header block starting at *pos (up to and including its empty line). */
static int part_headers(eg_arena_t *a, const scan_t *s, size_t *pos, eg_multipart_part_t *p,
                        const char **why)
{
    size_t i = *pos, start = i;
    eg_buf_t line = EG_BUF_INIT; /* the header being collected */
    const char *disp = NULL;
    int rc = 0;

    p->name = "";
    for (;;) {
        const char *nl = memchr(s->body + i, '\n', s->len - i);
        if (!nl) {
            *why = "a part has no end of headers";
            rc = EG_EINVAL;
            break;
        }
        size_t e = (size_t)(nl - s->body);
        if (e - start > EG_MULTIPART_MAX_HEADER) {
            *why = "a part's header block is too large";
            rc = EG_EINVAL;
            break;
        }
        size_t le = (e > i && s->body[e - 1] == '\r') ? e - 1 : e;
        bool empty = le == i;
        bool folded = !empty && (s->body[i] == ' ' || s->body[i] == '\t');
        if (!folded && line.len) {
            header_done(a, &line, &disp, p);
            eg_buf_clear(&line);
        }
        if (empty) {
            i = e + 1;
            break; /* the empty line ending the header block */
        }
        eg_buf_append(&line, s->body + i, le - i);
        i = e + 1;
    }
    eg_buf_free(&line);
    if (rc)
        return rc;
    *pos = i;
    if (disp) {
        const char *n = eg_multipart_param(a, disp, "name");
        const char *f = eg_multipart_param(a, disp, "filename");
        p->name = n ? unescape_html_form((char *)n) : "";
        p->filename = f ? unescape_html_form((char *)f) : NULL;
    }
    return 0;
}

int eg_multipart_parse(eg_arena_t *a, const char *boundary, const char *body, size_t len,
                       eg_multipart_part_t **parts, size_t *nparts, const char **why)
{
    scan_t s = {.body = body, .len = len};
    size_t pos, end, next, cap = 8, n = 0;
    bool close = false;
    eg_multipart_part_t *out;

    *parts = NULL;
    *nparts = 0;
    s.delim = eg_arena_printf(a, "--%s", boundary);
    s.dlen = strlen(s.delim);
    /* The first delimiter: at the very start, or at the start of a line after a preamble. */
    if (!delim_at(&s, 0, &pos, &close) && !find_delim(&s, 0, &end, &pos, &close)) {
        *why = "no multipart boundary in the body";
        return EG_EINVAL;
    }
    out = eg_arena_alloc(a, cap * sizeof *out);
    while (!close) {
        eg_multipart_part_t p = {0};
        int rc = part_headers(a, &s, &pos, &p, why);
        if (rc)
            return rc;
        if (!find_delim(&s, pos, &end, &next, &close)) {
            *why = "the multipart body has no closing boundary";
            return EG_EINVAL;
        }
        if (n == EG_MULTIPART_MAX_PARTS) {
            *why = "too many parts in the multipart body";
            return EG_EINVAL;
        }
        if (n == cap) {
            eg_multipart_part_t *grown = eg_arena_alloc(a, 2 * cap * sizeof *out);
            memcpy(grown, out, n * sizeof *out);
            out = grown, cap *= 2;
        }
        p.data = body + pos;
        p.len = end - pos;
        out[n++] = p;
        pos = next;
    }
    *parts = out;
    *nparts = n;
    return 0;
}
