/* Document conversion internals shared by docconv*.c: text cleaning and the per-format
 * converters. */
#ifndef ENGRAM_DOCCONV_INT_H
#define ENGRAM_DOCCONV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/arena.h"
#include "engram/buf.h"
#include "engram/docconv.h"

/* Append text as clean UTF-8: a byte-order mark dropped (UTF-16 with a BOM converted), CRLF and
 * CR to LF, form feeds to LF, other control characters and NUL dropped, and bytes that are not
 * valid UTF-8 read as Windows-1252 (the usual encoding of such files). */
void eg__doc_clean(eg_buf_t *out, const char *s, size_t len);

/* Append code point cp as UTF-8 (invalid code points as U+FFFD). */
void eg__doc_put_cp(eg_buf_t *out, uint32_t cp);

/* Tidy text in place: trailing blanks removed from every line, runs of blank lines cut to one,
 * leading and trailing blank lines dropped. Returns the new length. */
size_t eg__doc_tidy(char *s, size_t len);

/* Converters: append readable text of already clean UTF-8 input to out. 0, or EG_EINVAL with
 * *why. */
int eg__doc_json(eg_buf_t *out, const char *s, size_t len, const char **why);
void eg__doc_csv(eg_buf_t *out, const char *s, size_t len, char sep);
void eg__doc_html(eg_buf_t *out, const char *s, size_t len);

/* PDF through poppler-glib: one page per PDF page. 0, or EG_EINVAL with *why (in a). */
int eg__doc_pdf(eg_arena_t *a, const void *data, size_t len, eg_doc_page_t **pages, size_t *npages,
                const char **why);

#endif
