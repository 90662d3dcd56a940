/* hiredis <-> libuv event adapter, based on hiredis 0.14's adapters/libuv.h.
 *
 * We carry our own copy because the stock adapter returns early when uv_poll reports an error
 * (status < 0) without telling hiredis. libuv reports POLLERR that way (UV_EBADF) and stops the
 * watcher, which is exactly what happens when a non-blocking connect() is refused: hiredis never
 * learns that the connect failed, never calls the connect callback, and the connection hangs
 * forever. Here an error is handed to hiredis as readiness, so its read/connect path runs,
 * finds the error with read()/getsockopt(SO_ERROR) and tears the context down through its normal
 * callbacks. The adapter also tells its owner when the poll handle is closed, so the store can
 * wait for every handle before freeing itself (STYLE.md §6). */
#include <stdlib.h>

#include "store/store_int.h"

typedef struct eg_redis_uv_s {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up (the context may be gone) */
    uv_poll_t handle;
    int events;
    void (*closed)(void *);
    void *closed_arg;
} eg_redis_uv_t;

static void eg_redis_uv_poll_cb(uv_poll_t *handle, int status, int events)
{
    eg_redis_uv_t *p = handle->data;

    if (status < 0) {
        /* libuv has already stopped the watcher. Let hiredis look at the socket: a failed
         * connect or a reset connection surfaces as an error there, and the context is freed
         * through the usual callbacks (which clears p->ac through cleanup). */
        if (p->ac != NULL)
            redisAsyncHandleRead(p->ac);
        if (p->ac != NULL && (p->events & UV_WRITABLE))
            redisAsyncHandleWrite(p->ac);
        /* If the error was transient (hiredis saw EAGAIN/EINPROGRESS), re-arm what hiredis asked
         * for, or nothing would ever wake this connection again. */
        if (p->ac != NULL && p->events != 0)
            uv_poll_start(&p->handle, p->events, eg_redis_uv_poll_cb);
        return;
    }
    if (p->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void eg_redis_uv_update(eg_redis_uv_t *p)
{
    if (p->events != 0)
        uv_poll_start(&p->handle, p->events, eg_redis_uv_poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void eg_redis_uv_add_read(void *privdata)
{
    eg_redis_uv_t *p = privdata;

    p->events |= UV_READABLE;
    eg_redis_uv_update(p);
}

static void eg_redis_uv_del_read(void *privdata)
{
    eg_redis_uv_t *p = privdata;

    p->events &= ~UV_READABLE;
    eg_redis_uv_update(p);
}

static void eg_redis_uv_add_write(void *privdata)
{
    eg_redis_uv_t *p = privdata;

    p->events |= UV_WRITABLE;
    eg_redis_uv_update(p);
}

static void eg_redis_uv_del_write(void *privdata)
{
    eg_redis_uv_t *p = privdata;

    p->events &= ~UV_WRITABLE;
    eg_redis_uv_update(p);
}

static void eg_redis_uv_close_cb(uv_handle_t *handle)
{
    eg_redis_uv_t *p = handle->data;
    void (*closed)(void *) = p->closed;
    void *arg = p->closed_arg;

    free(p);
    if (closed != NULL)
        closed(arg);
}

static void eg_redis_uv_cleanup(void *privdata)
{
    eg_redis_uv_t *p = privdata;

    /* hiredis is freeing the context; a poll callback still queued must not touch it. */
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, eg_redis_uv_close_cb);
}

int eg__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, void (*closed)(void *), void *arg)
{
    eg_redis_uv_t *p = NULL;

    if (ac->ev.data != NULL)
        goto fail;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0)
        goto fail;
    p->handle.data = p;
    p->ac = ac;
    p->closed = closed;
    p->closed_arg = arg;

    ac->ev.addRead = eg_redis_uv_add_read;
    ac->ev.delRead = eg_redis_uv_del_read;
    ac->ev.addWrite = eg_redis_uv_add_write;
    ac->ev.delWrite = eg_redis_uv_del_write;
    ac->ev.cleanup = eg_redis_uv_cleanup;
    ac->ev.data = p;
    return 0;

fail:
    free(p);
    return -1;
}
