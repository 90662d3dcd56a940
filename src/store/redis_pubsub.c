/* Redis store: the pub/sub connection's subscriptions and message dispatch. */
#include "store/store_int.h"

/* ---- pub/sub ------------------------------------------------------------------------------ */

void eg__rs_pubsub_message_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    eg_store_t *s = eg__g_store;
    redisReply *reply = r;
    const char *kind, *channel;

    if (reply == NULL || s == NULL || s->closing || s->conns[s->pool].ac != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    kind = reply->element[0]->str;
    channel = reply->element[1]->str;
    /* Index loop re-reading s->subs: a callback may subscribe (and grow the array). */
    for (int i = 0; i < s->nsubs && !s->closing; i++) {
        eg_sub_t sub = s->subs[i];

        if (strcmp(sub.channel, channel) != 0)
            continue;
        if (strcmp(kind, "message") == 0) {
            const redisReply *p = reply->element[2];

            if (p->type == REDIS_REPLY_STRING)
                sub.fn(sub.udata, channel, p->str, p->len);
        } else if (strcmp(kind, "subscribe") == 0 && sub.resync_armed) {
            s->subs[i].resync_armed = false;
            if (sub.resync != NULL)
                sub.resync(sub.udata);
        }
    }
}

static int subscribe(const char *channel, eg_message_fn fn, eg_resync_fn resync, void *udata,
                     bool confirm)
{
    eg_store_t *s = eg__g_store;
    eg_conn_t *c;
    eg_sub_t *sub;
    char *copy = NULL;

    if (channel == NULL || channel[0] == '\0' || fn == NULL || (confirm && resync == NULL))
        return EG_EINVAL;
    if (s == NULL || s->closing)
        return EG_EUNAVAIL;
    if (confirm)
        for (int i = 0; i < s->nsubs; i++)
            if (strcmp(s->subs[i].channel, channel) == 0)
                return EG_ECONFLICT; /* no SUBSCRIBE would be sent, so no confirmation */
    copy = strdup(channel);
    if (copy == NULL)
        goto fail;
    if (s->nsubs == s->subs_cap) {
        int cap = s->subs_cap ? s->subs_cap * 2 : 8;
        eg_sub_t *grown = realloc(s->subs, (size_t)cap * sizeof(*grown));

        if (grown == NULL)
            goto fail;
        s->subs = grown;
        s->subs_cap = cap;
    }
    sub = &s->subs[s->nsubs++];
    memset(sub, 0, sizeof(*sub));
    sub->channel = copy;
    sub->fn = fn;
    sub->resync = resync;
    sub->udata = udata;
    sub->resync_armed = confirm;

    /* Otherwise the next READY of the pub/sub connection subscribes it. */
    c = &s->conns[s->pool];
    if (eg__rs_conn_usable(c) && eg__rs_sub_first(s, s->nsubs - 1))
        eg__rs_pubsub_send_subscribe(c, copy);
    return 0;

fail:
    free(copy);
    return EG_EUNAVAIL;
}

int eg_store_subscribe(const char *channel, eg_message_fn fn, eg_resync_fn resync, void *udata)
{
    return subscribe(channel, fn, resync, udata, false);
}

int eg_store_subscribe_confirmed(const char *channel, eg_message_fn fn, eg_resync_fn resync,
                                 void *udata)
{
    return subscribe(channel, fn, resync, udata, true);
}

int eg_store_unsubscribe(const char *channel, eg_message_fn fn, void *udata)
{
    eg_store_t *s = eg__g_store;
    eg_conn_t *c;
    int found = -1;

    if (channel == NULL || fn == NULL)
        return EG_EINVAL;
    if (s == NULL)
        return EG_ENOTFOUND;
    for (int i = 0; i < s->nsubs; i++) {
        if (s->subs[i].fn == fn && s->subs[i].udata == udata &&
            strcmp(s->subs[i].channel, channel) == 0) {
            found = i;
            break;
        }
    }
    if (found < 0)
        return EG_ENOTFOUND;
    free(s->subs[found].channel);
    memmove(&s->subs[found], &s->subs[found + 1],
            (size_t)(s->nsubs - found - 1) * sizeof(*s->subs));
    s->nsubs--;
    for (int i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].channel, channel) == 0)
            return 0; /* another subscriber still needs the channel */
    c = &s->conns[s->pool];
    if (!s->closing && eg__rs_conn_usable(c))
        redisAsyncCommand(c->ac, eg__rs_pubsub_message_cb, NULL, "UNSUBSCRIBE %b", channel,
                          strlen(channel));
    return 0;
}

int eg_store_publish(const char *channel, const char *payload, size_t len)
{
    if (channel == NULL || (payload == NULL && len > 0))
        return EG_EINVAL;
    return eg_store_command(NULL, NULL, "PUBLISH %s %b", channel, payload != NULL ? payload : "",
                            len);
}

int eg_store_ping(eg_reply_fn fn, void *udata)
{
    return eg_store_command(fn, udata, "PING");
}

void eg_store_stats(int *ready, int *total)
{
    eg_store_t *s = eg__g_store;
    bool on = s != NULL && !s->closing;

    if (ready != NULL)
        *ready = on ? s->ready : 0;
    if (total != NULL)
        *total = on ? s->pool : 0;
}
