/* Document conversion: each content type, MIME guessing, unsupported types, PDFs made in the
 * test (cairo's PDF surface and a hand-written file) and the threadpool form. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "engram/buf.h"
#include "engram/docconv.h"
#include "engram/error.h"

static eg_arena_t A;

static void setup(void)
{
    eg_arena_init(&A);
}

static void teardown(void)
{
    eg_arena_destroy(&A);
}

TestSuite(docconv, .init = setup, .fini = teardown);

/* Convert and expect exactly one page; returns its text. */
static const char *one(const char *mime, const char *name, const char *s, size_t len)
{
    eg_doc_page_t *p = NULL;
    size_t n = 0;
    const char *why = NULL;
    int rc = eg_doc_convert(&A, mime, name, s, len, &p, &n, &why);
    cr_assert_eq(rc, 0, "convert %s: %s", mime ? mime : "(null)", why ? why : "");
    cr_assert_eq(n, 1);
    cr_assert_eq(p[0].number, 1);
    cr_assert_eq(strlen(p[0].text), p[0].len);
    return p[0].text;
}

#define ONE(mime, name, lit) one(mime, name, lit, sizeof(lit) - 1)

/* ---- plain text and Markdown ---------------------------------------------------------------- */

Test(docconv, plain_text_is_cleaned)
{
    cr_assert_str_eq(ONE("text/plain", NULL, "hello\r\nworld\r\n"), "hello\nworld");
    /* UTF-8 byte-order mark dropped, trailing blanks and extra blank lines tidied. */
    cr_assert_str_eq(ONE("text/plain", NULL, "\xEF\xBB\xBFone  \n\n\n\ntwo\t\n"), "one\n\ntwo");
    /* Invalid UTF-8 is read as Windows-1252; NUL and other controls go. */
    cr_assert_str_eq(ONE("text/plain", NULL, "caf\xE9 \x93q\x94\x00\x01!"),
                     "caf\xC3\xA9 \xE2\x80\x9Cq\xE2\x80\x9D!");
    /* Valid UTF-8 stays as it is. */
    cr_assert_str_eq(ONE("text/plain; charset=utf-8", NULL,
                         "Stra\xC3\x9F"
                         "e \xF0\x9F\x98\x80"),
                     "Stra\xC3\x9F"
                     "e \xF0\x9F\x98\x80");
    /* UTF-16LE with a BOM. */
    cr_assert_str_eq(ONE("text/plain", NULL, "\xFF\xFEh\0i\0"), "hi");
    /* Empty input: one empty page. */
    cr_assert_str_eq(one("text/plain", NULL, "", 0), "");
}

Test(docconv, markdown_is_kept_as_written)
{
    cr_assert_str_eq(ONE("text/markdown", NULL, "# Title\n\n- a\n- b\n\n[link](http://x)\n"),
                     "# Title\n\n- a\n- b\n\n[link](http://x)");
    /* Other text types read as plain text. */
    cr_assert_str_eq(ONE("text/x-python", NULL, "print(1)\n"), "print(1)");
}

/* ---- MIME types ----------------------------------------------------------------------------- */

Test(docconv, mime_effective_and_guessed)
{
    cr_assert_str_eq(eg_doc_mime_effective(&A, " Text/HTML ; charset=UTF-8", NULL), "text/html");
    cr_assert_str_eq(eg_doc_mime_effective(&A, NULL, "Notes.MD"), "text/markdown");
    cr_assert_str_eq(eg_doc_mime_effective(&A, "application/octet-stream", "a.b.csv"), "text/csv");
    cr_assert_str_eq(eg_doc_mime_effective(&A, "", "doc.pdf"), "application/pdf");
    cr_assert_str_eq(eg_doc_mime_effective(&A, "application/octet-stream", "x.bin"),
                     "application/octet-stream");
    cr_assert_null(eg_doc_mime_effective(&A, NULL, "noext"));
    cr_assert_null(eg_doc_mime_effective(&A, NULL, NULL));
    /* A specific type wins over the file name. */
    cr_assert_str_eq(eg_doc_mime_effective(&A, "text/plain", "x.pdf"), "text/plain");
    cr_assert(eg_doc_mime_supported("application/pdf"));
    cr_assert(eg_doc_mime_supported("text/tab-separated-values"));
    cr_assert_not(eg_doc_mime_supported("image/png"));
    cr_assert_not(eg_doc_mime_supported(NULL));

    /* Guessed from the name when the type is missing or generic. */
    cr_assert_str_eq(ONE(NULL, "data.json", "{\"a\":1}"), "a: 1");
    cr_assert_str_eq(ONE("application/octet-stream", "page.htm", "<p>x</p>"), "x");
}

Test(docconv, unsupported_types_are_refused)
{
    eg_doc_page_t *p;
    size_t n;
    const char *why;
    cr_assert_eq(eg_doc_convert(&A, "image/png", "x.png", "\x89PNG", 4, &p, &n, &why), EG_EINVAL);
    cr_assert_str_eq(why, "unsupported content type image/png");
    cr_assert_eq(n, 0);
    cr_assert_eq(eg_doc_convert(&A, NULL, "photo.PNG", "x", 1, &p, &n, &why), EG_EINVAL);
    cr_assert_str_eq(why, "unsupported content type image/png");
    cr_assert_eq(eg_doc_convert(&A, "application/octet-stream", "blob", "x", 1, &p, &n, &why),
                 EG_EINVAL);
    cr_assert_str_eq(why, "unsupported content type application/octet-stream");
    cr_assert_eq(eg_doc_convert(&A, NULL, NULL, "x", 1, &p, &n, &why), EG_EINVAL);
    cr_assert(strstr(why, "unsupported content type") != NULL);
}

/* ---- HTML ----------------------------------------------------------------------------------- */

Test(docconv, html_drops_head_scripts_and_styles)
{
    const char html[] = "<!DOCTYPE html><html><head><title>T</title>"
                        "<style>p{color:red}</style><script>var x = '<p>no</p>';</script>"
                        "</head><body><!-- comment <p>hidden</p> -->"
                        "<h1>Heading</h1><p>First   para\n graph.</p>"
                        "<SCRIPT type=\"text/javascript\">alert(1)</SCRIPT>"
                        "<div>Line one<br>Line two</div><noscript>enable js</noscript>"
                        "<svg><text>drawn</text></svg><svg/>after svg"
                        "</body></html>";
    cr_assert_str_eq(ONE("text/html", NULL, html),
                     "Heading\n\nFirst para graph.\n\nLine one\nLine two\nafter svg");
}

Test(docconv, html_head_ends_at_body_content)
{
    /* No </head>: the first element that cannot be in a head ends it. */
    cr_assert_str_eq(ONE("text/html", NULL, "<head><meta charset=utf-8><title>x</title><p>body"),
                     "body");
    /* No head at all. */
    cr_assert_str_eq(ONE("text/html", NULL, "plain <b>bold</b> text"), "plain bold text");
}

Test(docconv, html_entities_are_decoded)
{
    cr_assert_str_eq(ONE("text/html", NULL,
                         "<p>a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; caf&eacute; &#233; "
                         "&#xE9; &#X1F600; &euro;&nbsp;5 &hellip; &#150; &copy 2024</p>"),
                     "a & b <c> \"d\" 'e' caf\xC3\xA9 \xC3\xA9 \xC3\xA9 \xF0\x9F\x98\x80 "
                     "\xE2\x82\xAC 5 \xE2\x80\xA6 \xE2\x80\x93 \xC2\xA9 2024");
    /* Not references: unknown names, bare '&', '&name=' in a URL, invalid code points. */
    cr_assert_str_eq(ONE("text/html", NULL, "&bogus; a & b ?x=1&copy=2 &#; &#0; &#xD800;"),
                     "&bogus; a & b ?x=1&copy=2 &#; \xEF\xBF\xBD \xEF\xBF\xBD");
}

Test(docconv, html_blocks_lists_tables_and_pre)
{
    const char html[] = "<ul><li>one</li><li> two </li></ul>"
                        "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
                        "<pre>  keep\n    indent</pre><p>x&lt;y and a < b</p>"
                        "<p title=\"a > b\">attr with '>' inside</p><p>unterminated <b";
    cr_assert_str_eq(ONE("text/html", NULL, html),
                     "- one\n- two\n\nk v\na 1\n\n  keep\n    indent\n\n"
                     "x<y and a < b\n\nattr with '>' inside\n\n"
                     "unterminated");
}

Test(docconv, html_text_helper)
{
    const char html[] = "<html><body><h2>A&nbsp;B</h2><p>c</p></body></html>";
    cr_assert_str_eq(eg_doc_html_text(&A, html, sizeof html - 1), "A B\n\nc");
    cr_assert_str_eq(eg_doc_html_text(&A, "", 0), "");
    /* Literal no-break spaces collapse like spaces. */
    cr_assert_str_eq(eg_doc_html_text(&A, "<p>a\xC2\xA0\xC2\xA0 b</p>", 14), "a b");
    /* Windows-1252 bytes in a page that does not say UTF-8. */
    cr_assert_str_eq(eg_doc_html_text(&A, "<p>na\xEFve</p>", 11), "na\xC3\xAFve");
}

/* ---- JSON ----------------------------------------------------------------------------------- */

Test(docconv, json_keys_and_values)
{
    const char json[] = "{\"name\":\"Alice\",\"age\":30,\"ok\":true,\"none\":null,\"ratio\":0.5,"
                        "\"address\":{\"city\":\"Oslo\",\"zip\":\"0150\"},"
                        "\"tags\":[\"a\",\"b\"],\"empty\":{},"
                        "\"items\":[{\"id\":1,\"v\":\"x\"},{\"id\":2}],\"grid\":[[1,2],[3]]}";
    cr_assert_str_eq(ONE("application/json", NULL, json),
                     "name: Alice\nage: 30\nok: true\nnone: null\nratio: 0.5\n"
                     "address:\n  city: Oslo\n  zip: 0150\n"
                     "tags:\n  - a\n  - b\nempty:\n"
                     "items:\n  - id: 1\n    v: x\n  - id: 2\n"
                     "grid:\n  - - 1\n    - 2\n  - - 3");
    cr_assert_str_eq(ONE("application/json", NULL, "[{\"a\":1},\"s\"]"), "- a: 1\n- s");
    cr_assert_str_eq(ONE("application/json", NULL, " \"just text\" \n"), "just text");
}

Test(docconv, json_malformed_is_refused)
{
    eg_doc_page_t *p;
    size_t n;
    const char *why;
    cr_assert_eq(eg_doc_convert(&A, "application/json", NULL, "{\"a\":", 5, &p, &n, &why),
                 EG_EINVAL);
    cr_assert(strstr(why, "unreadable JSON") != NULL, "%s", why);
    cr_assert_eq(eg_doc_convert(&A, "application/json", NULL, "{} x", 4, &p, &n, &why), EG_EINVAL);
    cr_assert(strstr(why, "unreadable JSON") != NULL, "%s", why);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

Test(docconv, csv_rows_as_lines)
{
    const char csv[] = "name,city,note\r\n"
                       "Alice,Oslo,\"likes \"\"tea\"\", coffee\"\r\n"
                       "\r\n"
                       " Bob , \"Bergen\" ,\"two\nlines\"\r\n"
                       ",,\n"
                       "Carol,,x";
    cr_assert_str_eq(ONE("text/csv", NULL, csv), "name, city, note\n"
                                                 "Alice, Oslo, likes \"tea\", coffee\n"
                                                 "Bob, Bergen, two lines\n"
                                                 "Carol, , x");
    /* Semicolons (European spreadsheets) are detected from the header. */
    cr_assert_str_eq(ONE("text/csv", NULL, "a;b\n1,5;2\n"), "a, b\n1,5, 2");
    /* TSV. */
    cr_assert_str_eq(ONE(NULL, "t.tsv", "a\tb\n1\t2\n"), "a, b\n1, 2");
}

/* ---- PDF ------------------------------------------------------------------------------------ */

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len)
{
    eg_buf_append(closure, data, len);
    return CAIRO_STATUS_SUCCESS;
}

/* A PDF with one page per text, drawn by cairo into memory. */
static void cairo_pdf(eg_buf_t *out, const char *const *texts, size_t n)
{
    cairo_surface_t *s = cairo_pdf_surface_create_for_stream(to_buf, out, 300, 200);
    cairo_t *cr = cairo_create(s);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 14);
    for (size_t i = 0; i < n; i++) {
        cairo_move_to(cr, 20, 50);
        cairo_show_text(cr, texts[i]);
        cairo_show_page(cr);
    }
    cairo_destroy(cr);
    cairo_surface_finish(s);
    cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    cairo_surface_destroy(s);
    /* cairo's font caches hold fontconfig patterns: release them for the leak checker. */
    cairo_debug_reset_static_data();
    FcFini();
}

Test(docconv, pdf_pages_from_cairo)
{
    const char *texts[] = {"First page alpha", "Second page beta", "Third page gamma"};
    eg_buf_t pdf = EG_BUF_INIT;
    eg_doc_page_t *p;
    size_t n;
    const char *why = NULL;
    cairo_pdf(&pdf, texts, 3);
    cr_assert_eq(eg_doc_convert(&A, "application/pdf", "x.pdf", pdf.data, pdf.len, &p, &n, &why), 0,
                 "%s", why ? why : "");
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(p[i].number, (int)i + 1);
        cr_assert_str_eq(p[i].text, texts[i]);
    }
    /* Guessed from the name. */
    cr_assert_eq(eg_doc_convert(&A, NULL, "Report.PDF", pdf.data, pdf.len, &p, &n, &why), 0);
    cr_assert_eq(n, 3);
    eg_buf_free(&pdf);
}

/* A minimal PDF written by hand (Helvetica, one text line per page), with a correct xref. */
static void hand_pdf(eg_buf_t *b, const char *const *texts, size_t n)
{
    size_t off[64], nobj = 3 + 2 * n;
    cr_assert(nobj < 64);
    eg_buf_puts(b, "%PDF-1.4\n");
    off[1] = b->len;
    eg_buf_puts(b, "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
    off[2] = b->len;
    eg_buf_puts(b, "2 0 obj << /Type /Pages /Kids [");
    for (size_t i = 0; i < n; i++)
        eg_buf_printf(b, " %zu 0 R", 4 + 2 * i);
    eg_buf_printf(b, " ] /Count %zu >> endobj\n", n);
    off[3] = b->len;
    eg_buf_puts(b, "3 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n");
    for (size_t i = 0; i < n; i++) {
        char content[256];
        int cl = snprintf(content, sizeof content, "BT /F1 18 Tf 40 700 Td (%s) Tj ET", texts[i]);
        off[4 + 2 * i] = b->len;
        eg_buf_printf(b,
                      "%zu 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                      "/Resources << /Font << /F1 3 0 R >> >> /Contents %zu 0 R >> endobj\n",
                      4 + 2 * i, 5 + 2 * i);
        off[5 + 2 * i] = b->len;
        eg_buf_printf(b, "%zu 0 obj << /Length %d >> stream\n%s\nendstream endobj\n", 5 + 2 * i, cl,
                      content);
    }
    size_t xref = b->len;
    eg_buf_printf(b, "xref\n0 %zu\n0000000000 65535 f \n", nobj);
    for (size_t i = 1; i < nobj; i++)
        eg_buf_printf(b, "%010zu 00000 n \n", off[i]);
    eg_buf_printf(b, "trailer << /Size %zu /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", nobj, xref);
}

Test(docconv, pdf_pages_hand_written)
{
    const char *texts[] = {"Hello from page one", "", "Page three says goodbye"};
    eg_buf_t pdf = EG_BUF_INIT;
    eg_doc_page_t *p;
    size_t n;
    const char *why = NULL;
    hand_pdf(&pdf, texts, 3);
    cr_assert_eq(eg_doc_convert(&A, "application/pdf", NULL, pdf.data, pdf.len, &p, &n, &why), 0,
                 "%s", why ? why : "");
    cr_assert_eq(n, 3);
    cr_assert_str_eq(p[0].text, "Hello from page one");
    cr_assert_str_eq(p[1].text, ""); /* an empty page keeps its number */
    cr_assert_eq(p[1].number, 2);
    cr_assert_str_eq(p[2].text, "Page three says goodbye");
    eg_buf_free(&pdf);
}

Test(docconv, pdf_unreadable_is_refused)
{
    eg_doc_page_t *p;
    size_t n;
    const char *why;
    cr_assert_eq(eg_doc_convert(&A, "application/pdf", NULL, "not a pdf", 9, &p, &n, &why),
                 EG_EINVAL);
    cr_assert_str_eq(why, "unreadable PDF: no %PDF header");
    const char broken[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
    cr_assert_eq(
        eg_doc_convert(&A, "application/pdf", NULL, broken, sizeof broken - 1, &p, &n, &why),
        EG_EINVAL);
    cr_assert(strncmp(why, "unreadable PDF: ", 16) == 0, "%s", why);
    cr_assert_eq(n, 0);
}

/* ---- Threadpool form ------------------------------------------------------------------------ */

typedef struct {
    int calls, err;
    size_t npages;
    char first[64], why[128];
} async_res_t;

static void async_done(void *udata, int err, const eg_doc_page_t *pages, size_t npages,
                       const char *why)
{
    async_res_t *r = udata;
    r->calls++;
    r->err = err;
    r->npages = npages;
    if (npages)
        snprintf(r->first, sizeof r->first, "%s", pages[0].text);
    if (why)
        snprintf(r->why, sizeof r->why, "%s", why);
}

Test(docconv, async_on_the_threadpool)
{
    const char *texts[] = {"Async one", "Async two"};
    eg_buf_t pdf = EG_BUF_INIT;
    uv_loop_t loop;
    async_res_t r[4] = {{0}};
    cairo_pdf(&pdf, texts, 2);
    cr_assert_eq(uv_loop_init(&loop), 0);
    /* Several PDFs at once (the first documents race poppler's global setup) and a refusal. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(eg_doc_convert_async(&loop, "application/pdf", NULL, pdf.data, pdf.len,
                                          async_done, &r[i]),
                     0);
    cr_assert_eq(eg_doc_convert_async(&loop, "image/gif", NULL, "GIF89a", 6, async_done, &r[3]), 0);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].err, 0, "%s", r[i].why);
        cr_assert_eq(r[i].npages, 2);
        cr_assert_str_eq(r[i].first, "Async one");
    }
    cr_assert_eq(r[3].calls, 1);
    cr_assert_eq(r[3].err, EG_EINVAL);
    cr_assert_str_eq(r[3].why, "unsupported content type image/gif");
    cr_assert_eq(uv_loop_close(&loop), 0);
    eg_buf_free(&pdf);
}
