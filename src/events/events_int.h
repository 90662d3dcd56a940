/* Private declarations shared by the event log (events.c) and the live watchers (watch.c). */
#ifndef ENGRAM_EVENTS_INT_H
#define ENGRAM_EVENTS_INT_H

#include <stdbool.h>
#include <stddef.h>

#define EG__EVENTS_WS_MAX 64 /* longest workspace id the event functions accept */

/* Workspace ids are UUIDs today; anything of 1..EG__EVENTS_WS_MAX characters of [A-Za-z0-9_.-]
 * is accepted, which also makes them safe to embed in JSON and channel names unescaped. */
bool eg__events_ws_valid(const char *ws_id);

/* The pub/sub channel of a workspace's live events: "eg:events:<ws_id>". */
void eg__events_channel(const char *ws_id, char out[EG__EVENTS_WS_MAX + 16]);

#endif
