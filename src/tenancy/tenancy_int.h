/* Private declarations shared by src/tenancy/tenancy.c and src/tenancy/auth.c. */
#ifndef ENGRAM_TENANCY_INT_H
#define ENGRAM_TENANCY_INT_H

#include <stdbool.h>

#include "engram/store.h"
#include "engram/tenancy.h"

/* The pub/sub channel on which key hashes are announced when their cache entries are stale. */
#define EG_AUTH_CHANNEL "eg:tenancy:keys"

/* Look a key hash up in Redis (cache miss). cb gets EG_EAUTH when unknown. */
int eg__auth_lookup(const char *hash, eg_auth_fn cb, void *udata);

/* Drop one cached entry in this process. */
void eg__auth_forget(const char *hash);

/* Tell every process to drop its cached entry for hash; fn runs when Redis has the message.
 * 0, or an error (fn not called; a warning is logged). */
int eg__auth_publish_invalidation(const char *hash, eg_reply_fn fn, void *udata);

/* Cheap syntactic check: sk_/pk_ + 40 base62 characters. */
bool eg__apikey_plausible(const char *token);

#endif
