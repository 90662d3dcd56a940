/* multipart/form-data bodies (RFC 7578 over RFC 2046): the boundary of a Content-Type header and
 * the parts of a fully received body. Parts point into the body (no copies); names and header
 * values are copied into the arena. */
#ifndef ENGRAM_MULTIPART_H
#define ENGRAM_MULTIPART_H

#include <stddef.h>

#include "engram/arena.h"

#define EG_MULTIPART_MAX_PARTS  256         /* more parts is a malformed form */
#define EG_MULTIPART_MAX_HEADER (16 * 1024) /* bytes of one part's header block */

/* One part of a form. */
typedef struct eg_multipart_part_s {
    const char *name;         /* Content-Disposition name (form field name), "" when absent */
    const char *filename;     /* Content-Disposition filename, NULL when the part is no file */
    const char *content_type; /* the part's Content-Type, NULL when absent */
    const char *data;         /* the part's bytes, inside the body */
    size_t len;
} eg_multipart_part_t;

/* The boundary of a "multipart/form-data; boundary=..." Content-Type (quoted or not, 1..70
 * characters), in a; NULL when the type is another one or the boundary is missing or invalid. */
const char *eg_multipart_boundary(eg_arena_t *a, const char *content_type);

/* Split body into its parts (preamble and epilogue ignored; CRLF line ends, bare LF tolerated).
 * 0 with *parts in a, or EG_EINVAL with *why (no opening boundary, a part without its header
 * block end, no closing boundary, too many parts). */
int eg_multipart_parse(eg_arena_t *a, const char *boundary, const char *body, size_t len,
                       eg_multipart_part_t **parts, size_t *nparts, const char **why);

/* A parameter of a header value such as Content-Disposition ('form-data; name="a"; filename=b'):
 * quoted strings unescaped, case-insensitive names; NULL when absent. In a. */
const char *eg_multipart_param(eg_arena_t *a, const char *value, const char *name);

#endif
