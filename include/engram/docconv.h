/* Document conversion: bytes of a known content type to readable text pages (the library's
 * file and URL memories). Supported: text/plain, text/markdown, text/html, application/json,
 * text/csv and application/pdf (through poppler-glib, one page per PDF page). Nothing here keeps
 * global state; eg_doc_convert and eg_doc_html_text are safe on any thread.
 *
 * Callers on the event loop convert files with eg_doc_convert_async: a large PDF takes seconds
 * to parse, so the work runs on the libuv threadpool and the loop stays free. eg_doc_convert is
 * the synchronous form (tests, worker threads, small inputs such as a fetched HTML page). */
#ifndef ENGRAM_DOCCONV_H
#define ENGRAM_DOCCONV_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "engram/arena.h"

/* One page of converted text: NUL-terminated UTF-8, number 1-based. */
typedef struct eg_doc_page_s {
    const char *text;
    size_t len;
    int number;
} eg_doc_page_t;

/* The content type conversion uses: mime without parameters and lowercased ("text/html;
 * charset=utf-8" -> "text/html"), or the type guessed from file_name's extension when mime is
 * NULL, empty, application/octet-stream or binary/octet-stream (NULL when nothing fits). In a. */
const char *eg_doc_mime_effective(eg_arena_t *a, const char *mime, const char *file_name);

/* Can eg_doc_convert read this (effective) content type? */
bool eg_doc_mime_supported(const char *mime);

/* Convert bytes of a given MIME type (or guessed from file_name when mime is NULL/generic) to text
 * pages: text/plain, text/markdown, text/html, application/json, text/csv, application/pdf (one
 * page per PDF page; other types one page). EG_EINVAL with *why ("unsupported content type
 * image/png", "unreadable PDF: ...") when unsupported or unreadable. Pages and text in a. */
int eg_doc_convert(eg_arena_t *a, const char *mime, const char *file_name, const void *data,
                   size_t len, eg_doc_page_t **pages, size_t *npages, const char **why);

/* Result of an asynchronous conversion: err 0 or EG_EINVAL (why says what), pages valid only
 * during the call. */
typedef void (*eg_doc_done_fn)(void *udata, int err, const eg_doc_page_t *pages, size_t npages,
                               const char *why);

/* eg_doc_convert on the libuv threadpool; cb runs on loop. mime, file_name and data must stay
 * valid until cb runs. 0, or a negative error when the work could not be queued (cb not called). */
int eg_doc_convert_async(uv_loop_t *loop, const char *mime, const char *file_name, const void *data,
                         size_t len, eg_doc_done_fn cb, void *udata);

/* HTML to readable text (scripts/styles/head dropped, block elements to newlines, entities
 * decoded, whitespace collapsed). In a; never NULL. */
char *eg_doc_html_text(eg_arena_t *a, const char *html, size_t len);

#endif
