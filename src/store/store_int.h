/* Private declarations shared by the files of src/store (not part of the public contract). */
#ifndef ENGRAM_STORE_INT_H
#define ENGRAM_STORE_INT_H

#include <hiredis/async.h>
#include <uv.h>

/* Attach a hiredis async context to loop with engram's own uv_poll adapter (see redis_uv.c for
 * why we do not use hiredis's adapters/libuv.h). closed(arg) runs from the poll handle's close
 * callback once hiredis has cleaned the context up, so the owner can count live handles.
 * Returns 0, or -1 (nothing to close then). */
int eg__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*closed)(void *), void *arg);

#endif
