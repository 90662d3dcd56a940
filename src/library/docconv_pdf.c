/* PDF to text pages through poppler-glib, entirely in memory (no files on disk). No GMainLoop
 * is involved: poppler's text extraction is synchronous, so callers on the event loop use
 * eg_doc_convert_async to run it on the threadpool. */
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <poppler.h>

#include "engram/error.h"
#include "library/docconv_int.h"

/* poppler-glib creates its process-wide parameters on the first document it opens without a
 * lock; opening documents one at a time keeps two first conversions on different threadpool
 * threads from racing there. Pages are read outside the lock (each document is private to its
 * thread). */
static GMutex open_lock;

static void free_ptr(void *p)
{
    free(p);
}

int eg__doc_pdf(eg_arena_t *a, const void *data, size_t len, eg_doc_page_t **pages, size_t *npages,
                const char **why)
{
    GError *gerr = NULL;
    PopplerDocument *doc;
    GBytes *bytes;
    int n;

    /* The header may follow up to 1 KiB of junk (the PDF spec tolerates it); without one poppler
     * would fail with a vaguer message. */
    if (len < 5 || !memmem(data, len < 1024 ? len : 1024, "%PDF-", 5)) {
        *why = "unreadable PDF: no %PDF header";
        return EG_EINVAL;
    }
    /* The bytes stay the caller's; poppler reads them in place. */
    bytes = g_bytes_new_static(data, len);
    g_mutex_lock(&open_lock);
    doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
    g_mutex_unlock(&open_lock);
    g_bytes_unref(bytes);
    if (!doc) {
        *why = eg_arena_printf(a, "unreadable PDF: %s",
                               gerr && gerr->message ? gerr->message : "unknown error");
        g_clear_error(&gerr);
        return EG_EINVAL;
    }
    n = poppler_document_get_n_pages(doc);
    if (n <= 0) {
        g_object_unref(doc);
        *why = "unreadable PDF: no pages";
        return EG_EINVAL;
    }
    eg_doc_page_t *pg = eg_arena_calloc(a, (size_t)n * sizeof *pg);
    for (int i = 0; i < n; i++) {
        PopplerPage *page = poppler_document_get_page(doc, i);
        char *t = page ? poppler_page_get_text(page) : NULL;
        eg_buf_t b = EG_BUF_INIT;
        if (t)
            eg__doc_clean(&b, t, strlen(t));
        eg_buf_reserve(&b, 0);
        b.len = eg__doc_tidy(b.data, b.len);
        b.data[b.len] = '\0';
        eg_arena_defer(a, free_ptr, b.data);
        pg[i].text = b.data;
        pg[i].len = b.len;
        pg[i].number = i + 1;
        g_free(t);
        if (page)
            g_object_unref(page);
    }
    g_object_unref(doc);
    *pages = pg;
    *npages = (size_t)n;
    return 0;
}
