/* Faces: each product's HTTP API mounted on the router (routes and shape mapping only). */
#ifndef ENGRAM_FACES_H
#define ENGRAM_FACES_H

#include "engram/config.h"
#include "engram/http.h"

/* engram's own routes: /health*, /version, /metrics and /engram/v1/... 0 or EG_EINVAL. */
int eg_face_engram_mount(eg_router_t *r);

/* The Hindsight face at cfg->mount[0] (health, version, banks). 0 or EG_EINVAL. */
int eg_face_hindsight_mount(eg_router_t *r, const eg_config_t *cfg);

/* The Fency face at cfg->mount[1] (/v1 with secret keys, /pub and /sse for the browser SDK).
 * 0 or EG_EINVAL. */
int eg_face_fency_mount(eg_router_t *r, const eg_config_t *cfg);

/* Mount every face at its configured prefix. 0 or EG_EINVAL (a route collision). */
int eg_faces_mount_all(eg_router_t *r, const eg_config_t *cfg);

#endif
