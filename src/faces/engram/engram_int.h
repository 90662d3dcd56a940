/* Helpers the engram face's route files share; engram.c defines them. */
#ifndef ENGRAM_FACES_ENGRAM_ENGRAM_INT_H
#define ENGRAM_FACES_ENGRAM_ENGRAM_INT_H

#include "engram/http.h"

/* Answers err from the store as "storage unavailable: <reason>" with err's status. */
void eg__engram_store_error(eg_req_t *req, int err);

/* The request's JSON body, which must be an object; NULL once an error was answered. */
cJSON *eg__engram_body_object(eg_req_t *req);

/* body's field name, which must be present; NULL once a 400 was answered. */
cJSON *eg__engram_body_required(eg_req_t *req, const cJSON *body, const char *name);

#endif
