/* Live event watchers: per-workspace pub/sub subscriptions shared by every watcher in this
 * process, and fan-out with type and entity filters.
 *
 * One subscription per workspace, not per watcher: a thousand browsers watching one workspace
 * cost Redis one channel subscription, and each message is parsed once here and handed to every
 * watcher as the same serialized text. A hash table maps workspace id → its watchers; the entry
 * (and the channel subscription) lives exactly as long as the workspace has a watcher.
 *
 * Watchers may unwatch themselves or others, and add new ones, from inside on_event. While a
 * workspace is dispatching, an unwatched watcher is only marked dead (no more callbacks) and
 * unlinked after the loop; new watchers go to the head of the list, behind the loop's position,
 * so they only see the next event. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/error.h"
#include "engram/events.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/util.h"
#include "events_int.h"

typedef struct ev_ws_s ev_ws_t;

struct eg_watch_s {
    ev_ws_t *ws;
    eg_watch_t *prev, *next;
    eg_event_fn on_event;
    void *udata;
    char **types;
    size_t ntypes;
    char *entity_id;
    bool dead;
};

struct ev_ws_s {
    ev_ws_t *hnext; /* hash chain */
    char id[EG__EVENTS_WS_MAX + 1];
    char channel[EG__EVENTS_WS_MAX + 16];
    eg_watch_t *head;
    size_t live;     /* watchers not yet unwatched */
    int dispatching; /* callbacks in progress: unlink dead watchers afterwards */
    bool has_dead;
};

static uint64_t g_seq; /* live events dispatched: eg_event_t.seq */

static struct {
    ev_ws_t **buckets;
    size_t nbuckets; /* power of two, or 0 before the first watcher */
    size_t count;
} g_ws;

/* FNV-1a: workspace ids are short and random, nothing fancier is needed. */
static size_t ev_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static ev_ws_t **ev_ws_slot(const char *id)
{
    ev_ws_t **p;

    if (g_ws.nbuckets == 0)
        return NULL;
    for (p = &g_ws.buckets[ev_hash(id) & (g_ws.nbuckets - 1)]; *p; p = &(*p)->hnext)
        if (strcmp((*p)->id, id) == 0)
            return p;
    return NULL;
}

static void ev_ws_grow(void)
{
    size_t n = g_ws.nbuckets ? g_ws.nbuckets * 2 : 16;
    ev_ws_t **b = eg_xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < g_ws.nbuckets; i++) {
        ev_ws_t *e = g_ws.buckets[i], *next;

        for (; e; e = next) {
            size_t j = ev_hash(e->id) & (n - 1);

            next = e->hnext;
            e->hnext = b[j];
            b[j] = e;
        }
    }
    free(g_ws.buckets);
    g_ws.buckets = b;
    g_ws.nbuckets = n;
}

static void ev_watch_free(eg_watch_t *w)
{
    for (size_t i = 0; i < w->ntypes; i++)
        free(w->types[i]);
    free(w->types);
    free(w->entity_id);
    free(w);
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len);
static void on_resync(void *udata);

/* Remove a workspace with no live watchers: unsubscribe, unhash, free. */
static void ev_ws_release(ev_ws_t *ws)
{
    ev_ws_t **slot = ev_ws_slot(ws->id);
    eg_watch_t *w, *next;

    /* EG_ENOTFOUND after eg_store_shutdown dropped every subscription is fine. */
    eg_store_unsubscribe(ws->channel, on_message, ws);
    if (slot != NULL)
        *slot = ws->hnext;
    g_ws.count--;
    for (w = ws->head; w; w = next) {
        next = w->next;
        ev_watch_free(w);
    }
    free(ws);
    if (g_ws.count == 0) {
        free(g_ws.buckets);
        g_ws.buckets = NULL;
        g_ws.nbuckets = 0;
    }
}

static void ev_unlink(ev_ws_t *ws, eg_watch_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ws->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    ev_watch_free(w);
}

/* After a dispatch: unlink the watchers unwatched meanwhile, drop the workspace if none is
 * left. */
static void ev_ws_settle(ev_ws_t *ws)
{
    eg_watch_t *w, *next;

    if (ws->dispatching > 0)
        return;
    if (ws->has_dead) {
        ws->has_dead = false;
        for (w = ws->head; w; w = next) {
            next = w->next;
            if (w->dead)
                ev_unlink(ws, w);
        }
    }
    if (ws->live == 0)
        ev_ws_release(ws);
}

static bool ev_watch_wants(const eg_watch_t *w, const char *type, const char *entity_id)
{
    if (w->entity_id != NULL && (entity_id == NULL || strcmp(w->entity_id, entity_id) != 0))
        return false;
    if (w->ntypes == 0)
        return true;
    for (size_t i = 0; i < w->ntypes; i++)
        if (eg_event_type_match(w->types[i], type))
            return true;
    return false;
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    ev_ws_t *ws = udata;
    char *json = eg_xmalloc(len + 1);
    cJSON *root = NULL;
    const cJSON *id, *type, *entity;
    const char *entity_id;
    eg_event_t ev;
    eg_watch_t *w, *next;

    (void)channel;
    memcpy(json, payload, len);
    json[len] = '\0';
    root = cJSON_ParseWithLength(json, len);
    id = cJSON_GetObjectItemCaseSensitive(root, "id");
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    entity = cJSON_GetObjectItemCaseSensitive(root, "entity");
    if (!cJSON_IsString(id) || !cJSON_IsString(type) || !cJSON_IsObject(entity)) {
        eg_log_warn("events: ignoring a malformed message on %s", ws->channel);
        goto done;
    }
    entity_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entity, "id"));
    ev.id = id->valuestring;
    ev.type = type->valuestring;
    ev.json = json;
    ev.len = len;
    ev.seq = ++g_seq;

    ws->dispatching++;
    for (w = ws->head; w; w = next) {
        next = w->next; /* w may be unwatched by its callback: only marked, still linked */
        if (!w->dead && ev_watch_wants(w, ev.type, entity_id))
            w->on_event(w->udata, &ev, false);
    }
    ws->dispatching--;
    ev_ws_settle(ws);
done:
    cJSON_Delete(root);
    free(json);
}

/* The pub/sub connection is back after an outage: whatever was published meanwhile is lost to
 * us, so every watcher must replay from the log. */
static void on_resync(void *udata)
{
    ev_ws_t *ws = udata;
    eg_watch_t *w, *next;

    ws->dispatching++;
    for (w = ws->head; w; w = next) {
        next = w->next;
        if (!w->dead)
            w->on_event(w->udata, NULL, true);
    }
    ws->dispatching--;
    ev_ws_settle(ws);
}

static ev_ws_t *ev_ws_get(const char *ws_id)
{
    ev_ws_t **slot = ev_ws_slot(ws_id), *ws;
    size_t b;

    if (slot != NULL)
        return *slot;
    if (g_ws.count + 1 > g_ws.nbuckets)
        ev_ws_grow();
    ws = eg_xcalloc(1, sizeof(*ws));
    snprintf(ws->id, sizeof(ws->id), "%s", ws_id);
    eg__events_channel(ws_id, ws->channel);
    if (eg_store_subscribe(ws->channel, on_message, on_resync, ws) != 0) {
        free(ws);
        return NULL;
    }
    b = ev_hash(ws->id) & (g_ws.nbuckets - 1);
    ws->hnext = g_ws.buckets[b];
    g_ws.buckets[b] = ws;
    g_ws.count++;
    return ws;
}

eg_watch_t *eg_events_watch(const char *ws_id, const eg_event_filter_t *filter,
                            eg_event_fn on_event, void *udata)
{
    eg_watch_t *w = NULL;
    ev_ws_t *ws;

    if (!eg__events_ws_valid(ws_id) || on_event == NULL)
        return NULL;
    if (filter != NULL) {
        if (filter->ntypes > EG_EVENT_TYPES_MAX || (filter->ntypes > 0 && filter->types == NULL))
            return NULL;
        for (size_t i = 0; i < filter->ntypes; i++)
            if (!eg_event_type_pattern_valid(filter->types[i]))
                return NULL;
    }
    w = eg_xcalloc(1, sizeof(*w));
    w->on_event = on_event;
    w->udata = udata;
    if (filter != NULL && filter->ntypes > 0) {
        w->types = eg_xcalloc(filter->ntypes, sizeof(*w->types));
        for (size_t i = 0; i < filter->ntypes; i++)
            w->types[i] = eg_xstrdup(filter->types[i]);
        w->ntypes = filter->ntypes;
    }
    if (filter != NULL && filter->entity_id != NULL)
        w->entity_id = eg_xstrdup(filter->entity_id);
    ws = ev_ws_get(ws_id);
    if (ws == NULL)
        goto fail;
    w->ws = ws;
    w->next = ws->head;
    if (ws->head)
        ws->head->prev = w;
    ws->head = w;
    ws->live++;
    return w;

fail:
    ev_watch_free(w);
    return NULL;
}

void eg_events_unwatch(eg_watch_t *w)
{
    ev_ws_t *ws;

    if (w == NULL || w->dead)
        return;
    ws = w->ws;
    w->dead = true;
    ws->live--;
    if (ws->dispatching > 0) {
        ws->has_dead = true; /* the dispatch loop may hold a pointer to it */
        return;
    }
    ev_unlink(ws, w);
    if (ws->live == 0)
        ev_ws_release(ws);
}

size_t eg_events_watchers(const char *ws_id)
{
    ev_ws_t **slot;

    if (ws_id == NULL)
        return 0;
    slot = ev_ws_slot(ws_id);
    return slot != NULL ? (*slot)->live : 0;
}

void eg_events_shutdown(void)
{
    while (g_ws.count > 0) {
        for (size_t i = 0; i < g_ws.nbuckets; i++) {
            if (g_ws.buckets[i] != NULL) {
                ev_ws_release(g_ws.buckets[i]); /* may free the table with the last one */
                break;
            }
        }
    }
}
