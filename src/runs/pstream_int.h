/* Progress streams: what pstream.c (keys, create, append) and pstream_sse.c (serving) share. */
#ifndef ENGRAM_PSTREAM_INT_H
#define ENGRAM_PSTREAM_INT_H

#include <stdint.h>

#define EG__PS_KEY_MAX    64
#define EG__PS_BUFFER_CAP 10000 /* messages kept per stream (XADD MAXLEN ~) */

/* Key of stream id: kind 'm' (meta hash) or 'b' (message buffer). */
void eg__ps_key(const char *id, char kind, char out[EG__PS_KEY_MAX]);

/* Pub/sub channel of stream id. */
void eg__ps_channel(const char *id, char out[EG__PS_KEY_MAX]);

#endif
