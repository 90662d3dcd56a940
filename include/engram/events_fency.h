/* Events in Fency's envelope: {"id":"evt_<32 hex>","version":"1","type","createdAt",
 * "organizationId":"org_<32 hex>","entity"}, the body of deliveries to webhook endpoints signed
 * "fency" and of the Fency face's event listing (docs/fency.md, "Events and webhooks").
 *
 * The Fency id is a keyed permutation (AES-128, key derived from the workspace id) of the engram
 * event id's two numbers: the same event always gets the same id (a retried delivery keeps it),
 * ids look random and differ between workspaces, and the face maps an id back to its event
 * without storing anything. */
#ifndef ENGRAM_EVENTS_FENCY_H
#define ENGRAM_EVENTS_FENCY_H

#include <stdbool.h>

#include "engram/events.h"

#define EG_EVENT_FENCY_ID_MAX 37 /* "evt_" / "org_" + 32 hex + NUL */

/* The Fency id of engram event event_id ("evt_<ms>_<seq>") of ws_id. 0, or EG_EINVAL for a
 * malformed event id. */
int eg_event_fency_id(const char *ws_id, const char *event_id, char out[EG_EVENT_FENCY_ID_MAX]);

/* The engram event id a Fency id of ws_id stands for. 0, or EG_ENOTFOUND when fency_id is not
 * "evt_" + 32 lowercase hex or names no possible event of ws_id. */
int eg_event_fency_id_parse(const char *ws_id, const char *fency_id, char out[EG_EVENT_ID_MAX]);

/* The stable organizationId of a workspace: "org_" + its UUID's 32 hex digits (lowercased), or,
 * for a workspace id that is not a UUID, "org_" + the first 32 hex digits of its SHA-256. */
void eg_event_fency_org(const char *ws_id, char out[EG_EVENT_FENCY_ID_MAX]);

/* Is type one of Fency's five event types (memory.created|updated|deleted,
 * agent.task.created|updated)? */
bool eg_event_fency_type(const char *type);

/* Fency's envelope of ev (an event of ws_id as the event log serializes it), as compact JSON
 * (malloc'd; free it). createdAt gets microseconds; the entity is the event's, without a
 * top-level "_" (private fields). NULL when ev is not a well-formed event. */
char *eg_event_fency_json(const char *ws_id, const eg_event_t *ev);

#endif
