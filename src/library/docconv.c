/* Document conversion: content types, dispatch to the per-format converters, text cleaning and
 * the threadpool form. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "engram/error.h"
#include "library/docconv_int.h"

/* ---- Content types -------------------------------------------------------------------------- */

typedef enum {
    DOC_NONE,
    DOC_PLAIN,
    DOC_MARKDOWN,
    DOC_HTML,
    DOC_JSON,
    DOC_CSV,
    DOC_TSV,
    DOC_PDF
} doc_kind_t;

static const struct {
    const char *mime;
    doc_kind_t kind;
} kinds[] = {
    {"text/plain", DOC_PLAIN},
    {"text/markdown", DOC_MARKDOWN},
    {"text/x-markdown", DOC_MARKDOWN},
    {"text/html", DOC_HTML},
    {"application/xhtml+xml", DOC_HTML},
    {"application/json", DOC_JSON},
    {"text/json", DOC_JSON},
    {"text/csv", DOC_CSV},
    {"application/csv", DOC_CSV},
    {"text/x-csv", DOC_CSV},
    {"text/tab-separated-values", DOC_TSV},
    {"application/pdf", DOC_PDF},
    {"application/x-pdf", DOC_PDF},
};

/* File name extensions; the unsupported ones are there so the error names the real type. */
static const struct {
    const char *ext, *mime;
} exts[] = {
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"log", "text/plain"},
    {"md", "text/markdown"},
    {"markdown", "text/markdown"},
    {"mdown", "text/markdown"},
    {"mkd", "text/markdown"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"xhtml", "application/xhtml+xml"},
    {"json", "application/json"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"svg", "image/svg+xml"},
    {"zip", "application/zip"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
};

static doc_kind_t kind_of(const char *mime)
{
    if (!mime)
        return DOC_NONE;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].mime, mime) == 0)
            return kinds[i].kind;
    /* Any other text type (source code, logs, ...) reads as plain text. */
    if (strncmp(mime, "text/", 5) == 0 && mime[5])
        return DOC_PLAIN;
    return DOC_NONE;
}

static bool mime_generic(const char *m)
{
    return !m || !*m || strcmp(m, "application/octet-stream") == 0 ||
           strcmp(m, "binary/octet-stream") == 0;
}

const char *eg_doc_mime_effective(eg_arena_t *a, const char *mime, const char *file_name)
{
    char *m = NULL;
    if (mime) {
        size_t n = strcspn(mime, ";");
        while (n && isspace((unsigned char)mime[n - 1]))
            n--;
        while (n && isspace((unsigned char)*mime))
            mime++, n--;
        m = eg_arena_strndup(a, mime, n);
        for (char *p = m; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    if (!mime_generic(m))
        return m;
    const char *dot = file_name ? strrchr(file_name, '.') : NULL;
    if (dot && dot[1])
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
            if (strcasecmp(exts[i].ext, dot + 1) == 0)
                return exts[i].mime;
    return m && *m ? m : NULL;
}

bool eg_doc_mime_supported(const char *mime)
{
    return kind_of(mime) != DOC_NONE;
}

/* ---- Text cleaning -------------------------------------------------------------------------- */

/* Windows-1252 0x80..0x9F (0 = undefined there, read as U+FFFD). */
static const uint16_t cp1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

void eg__doc_put_cp(eg_buf_t *out, uint32_t cp)
{
    char u[4];
    if (cp >= 0x80 && cp <= 0x9F && cp1252[cp - 0x80]) /* HTML reads these as Windows-1252 */
        cp = cp1252[cp - 0x80];
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || (cp >= 0x80 && cp <= 0x9F))
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        eg_buf_append(out, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        eg_buf_append(out, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        eg_buf_append(out, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        eg_buf_append(out, u, 4);
    }
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (left < n)
        return 0;
    cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void eg__doc_clean(eg_buf_t *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) {
        /* UTF-16 with a byte-order mark: glib converts it, then it is cleaned as UTF-8. */
        gsize n = 0;
        gchar *u = g_convert(s + 2, (gssize)((len - 2) & ~(size_t)1), "UTF-8",
                             p[0] == 0xFF ? "UTF-16LE" : "UTF-16BE", NULL, &n, NULL);
        if (u) {
            eg__doc_clean(out, u, n);
            g_free(u);
            return;
        }
    }
    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        p += 3, len -= 3;
    eg_buf_reserve(out, len + 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F) {
            size_t j = i + 1;
            while (j < len && p[j] >= 0x20 && p[j] < 0x7F)
                j++;
            eg_buf_append(out, p + i, j - i);
            i = j;
        } else if (c == '\n' || c == '\t') {
            eg_buf_append(out, &p[i++], 1);
        } else if (c == '\r' || c == '\f' || c == '\v') {
            eg_buf_append(out, "\n", 1);
            i += (c == '\r' && i + 1 < len && p[i + 1] == '\n') ? 2 : 1;
        } else if (c < 0x80) {
            i++; /* NUL, other C0 controls, DEL */
        } else {
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                eg_buf_append(out, p + i, n);
                i += n;
            } else {
                eg__doc_put_cp(out, c); /* Windows-1252 / Latin-1 */
                i++;
            }
        }
    }
}

size_t eg__doc_tidy(char *s, size_t len)
{
    size_t w = 0, blank = 0;
    bool any = false;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && s[e] != '\n')
            e++;
        size_t t = e;
        while (t > i && (s[t - 1] == ' ' || s[t - 1] == '\t'))
            t--;
        if (t == i) {
            blank++;
        } else {
            if (any)
                s[w++] = '\n';
            if (any && blank)
                s[w++] = '\n';
            memmove(s + w, s + i, t - i);
            w += t - i;
            any = true;
            blank = 0;
        }
        i = e + 1;
    }
    if (w < len)
        s[w] = '\0';
    return w;
}

/* ---- Conversion ----------------------------------------------------------------------------- */

static void buf_free(void *p)
{
    free(p);
}

int eg_doc_convert(eg_arena_t *a, const char *mime, const char *file_name, const void *data,
                   size_t len, eg_doc_page_t **pages, size_t *npages, const char **why)
{
    const char *m = eg_doc_mime_effective(a, mime, file_name);
    doc_kind_t kind = kind_of(m);
    eg_buf_t in = EG_BUF_INIT, out = EG_BUF_INIT;
    int err = 0;

    *pages = NULL;
    *npages = 0;
    *why = NULL;
    if (kind == DOC_NONE) {
        *why = m ? eg_arena_printf(a, "unsupported content type %s", m)
                 : "unsupported content type (none given and none known for the file name)";
        return EG_EINVAL;
    }
    if (kind == DOC_PDF)
        return eg__doc_pdf(a, data, len, pages, npages, why);

    eg__doc_clean(&in, data, len);
    switch (kind) {
    case DOC_HTML:
        eg__doc_html(&out, in.data ? in.data : "", in.len);
        break;
    case DOC_JSON:
        err = eg__doc_json(&out, in.data ? in.data : "", in.len, why);
        break;
    case DOC_CSV:
    case DOC_TSV:
        eg__doc_csv(&out, in.data ? in.data : "", in.len, kind == DOC_TSV ? '\t' : 0);
        break;
    default: /* plain text and Markdown (readable as written) */
        out = in;
        in = (eg_buf_t)EG_BUF_INIT;
        break;
    }
    eg_buf_free(&in);
    if (err) {
        eg_buf_free(&out);
        if (*why)
            *why = eg_arena_strdup(a, *why);
        return err;
    }
    eg_buf_reserve(&out, 0); /* a NUL-terminated allocation even when empty */
    out.len = eg__doc_tidy(out.data, out.len);
    out.data[out.len] = '\0';
    eg_arena_defer(a, buf_free, out.data);

    eg_doc_page_t *pg = eg_arena_calloc(a, sizeof *pg);
    pg->text = out.data;
    pg->len = out.len;
    pg->number = 1;
    *pages = pg;
    *npages = 1;
    return 0;
}

char *eg_doc_html_text(eg_arena_t *a, const char *html, size_t len)
{
    eg_buf_t in = EG_BUF_INIT, out = EG_BUF_INIT;
    eg__doc_clean(&in, html, len);
    eg__doc_html(&out, in.data ? in.data : "", in.len);
    eg_buf_free(&in);
    eg_buf_reserve(&out, 0);
    out.len = eg__doc_tidy(out.data, out.len);
    out.data[out.len] = '\0';
    char *r = eg_arena_strndup(a, out.data, out.len);
    eg_buf_free(&out);
    return r;
}

/* ---- Threadpool form ------------------------------------------------------------------------ */

typedef struct doc_job_s {
    uv_work_t work;
    eg_arena_t arena;
    const char *mime, *file_name;
    const void *data;
    size_t len;
    eg_doc_done_fn cb;
    void *udata;
    eg_doc_page_t *pages;
    size_t npages;
    const char *why;
    int err;
} doc_job_t;

static void job_work(uv_work_t *w)
{
    doc_job_t *j = w->data;
    j->err = eg_doc_convert(&j->arena, j->mime, j->file_name, j->data, j->len, &j->pages,
                            &j->npages, &j->why);
}

static void job_done(uv_work_t *w, int status)
{
    doc_job_t *j = w->data;
    if (status == UV_ECANCELED)
        j->cb(j->udata, EG_ECANCELED, NULL, 0, "conversion canceled");
    else
        j->cb(j->udata, j->err, j->pages, j->npages, j->why);
    eg_arena_destroy(&j->arena);
    free(j);
}

int eg_doc_convert_async(uv_loop_t *loop, const char *mime, const char *file_name, const void *data,
                         size_t len, eg_doc_done_fn cb, void *udata)
{
    doc_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return EG_EINTERNAL;
    eg_arena_init(&j->arena);
    j->work.data = j;
    j->mime = mime;
    j->file_name = file_name;
    j->data = data;
    j->len = len;
    j->cb = cb;
    j->udata = udata;
    int rc = uv_queue_work(loop, &j->work, job_work, job_done);
    if (rc) {
        free(j);
        return EG_EINTERNAL;
    }
    return 0;
}
