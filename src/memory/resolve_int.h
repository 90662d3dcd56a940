/* Private parts of entity resolution shared by resolve_measures.c (the measures), resolve_dict.c
 * (the name dictionary) and resolve.c (the batch). */
#ifndef ENGRAM_MEMORY_RESOLVE_INT_H
#define ENGRAM_MEMORY_RESOLVE_INT_H

#include <stddef.h>
#include <stdint.h>

/* The distinct sorted trigrams of a name (eg_resolve_trigrams) into a malloc'ed array (NULL when
 * there are none); returns the count. */
size_t eg__resolve_trigrams_malloc(const char *s, uint64_t **out);

#endif
