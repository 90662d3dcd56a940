/* Events in Fency's envelope: ids, organization ids, the body. No Redis needed. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "engram/error.h"
#include "engram/events_fency.h"
#include "engram/webhooks.h"

#define WS  "3f2a9c1e-7b4d-4e8a-9c0f-1d2e3f4a5b6c"
#define WS2 "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"

static bool hex32(const char *s)
{
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[32] == '\0';
}

Test(events_fency, id_is_stable_reversible_and_per_workspace)
{
    char a[EG_EVENT_FENCY_ID_MAX], b[EG_EVENT_FENCY_ID_MAX], c[EG_EVENT_FENCY_ID_MAX];
    char d[EG_EVENT_FENCY_ID_MAX], back[EG_EVENT_ID_MAX];

    cr_assert_eq(eg_event_fency_id(WS, "evt_1763900000123_0", a), 0);
    cr_assert(strncmp(a, "evt_", 4) == 0 && hex32(a + 4), "%s", a);
    cr_assert_eq(eg_event_fency_id(WS, "evt_1763900000123_0", b), 0);
    cr_assert_str_eq(a, b); /* a retried delivery keeps its id */
    cr_assert_eq(eg_event_fency_id(WS, "evt_1763900000123_1", c), 0);
    cr_assert_str_neq(a, c);
    cr_assert_eq(eg_event_fency_id(WS2, "evt_1763900000123_0", d), 0);
    cr_assert_str_neq(a, d); /* the same stream id in another workspace */

    cr_assert_eq(eg_event_fency_id_parse(WS, a, back), 0);
    cr_assert_str_eq(back, "evt_1763900000123_0");
    cr_assert_eq(eg_event_fency_id_parse(WS, c, back), 0);
    cr_assert_str_eq(back, "evt_1763900000123_1");
    /* Another workspace's id decodes to nothing that exists here. */
    cr_assert_eq(eg_event_fency_id_parse(WS2, a, back), 0);
    cr_assert_str_neq(back, "evt_1763900000123_0");
}

Test(events_fency, id_rejects_malformed_input)
{
    char out[EG_EVENT_FENCY_ID_MAX], back[EG_EVENT_ID_MAX];

    cr_assert_eq(eg_event_fency_id(WS, "evt_abc", out), EG_EINVAL);
    cr_assert_eq(eg_event_fency_id(WS, "1-2", out), EG_EINVAL);
    cr_assert_eq(eg_event_fency_id_parse(WS, "evt_123", back), EG_ENOTFOUND);
    cr_assert_eq(eg_event_fency_id_parse(WS, "evt_0123456789ABCDEF0123456789abcdef", back),
                 EG_ENOTFOUND);
    cr_assert_eq(eg_event_fency_id_parse(WS, "mem_0123456789abcdef0123456789abcdef", back),
                 EG_ENOTFOUND);
    cr_assert_eq(eg_event_fency_id_parse(WS, "evt_0123456789abcdef0123456789abcdef0", back),
                 EG_ENOTFOUND);
    cr_assert_eq(eg_event_fency_id_parse(WS, NULL, back), EG_ENOTFOUND);
}

Test(events_fency, organization_id)
{
    char org[EG_EVENT_FENCY_ID_MAX], org2[EG_EVENT_FENCY_ID_MAX];

    eg_event_fency_org(WS, org);
    cr_assert_str_eq(org, "org_3f2a9c1e7b4d4e8a9c0f1d2e3f4a5b6c");
    eg_event_fency_org("3F2A9C1E-7B4D-4E8A-9C0F-1D2E3F4A5B6C", org2);
    cr_assert_str_eq(org2, org);
    /* Not a UUID: the first 32 hex of its SHA-256 ("default"). */
    eg_event_fency_org("default", org);
    cr_assert_str_eq(org, "org_37a8eec1ce19687d132fe29051dca629");
}

Test(events_fency, types)
{
    cr_assert(eg_event_fency_type("memory.created"));
    cr_assert(eg_event_fency_type("memory.updated"));
    cr_assert(eg_event_fency_type("memory.deleted"));
    cr_assert(eg_event_fency_type("agent.task.created"));
    cr_assert(eg_event_fency_type("agent.task.updated"));
    cr_assert_not(eg_event_fency_type("bank.created"));
    cr_assert_not(eg_event_fency_type("memory.*"));
    cr_assert_not(eg_event_fency_type(NULL));
}

static eg_event_t event(const char *id, const char *type, const char *json)
{
    return (eg_event_t){.id = id, .type = type, .json = json, .len = strlen(json)};
}

Test(events_fency, envelope)
{
    const char json[] =
        "{\"id\":\"evt_1763900000123_7\",\"type\":\"memory.updated\",\"createdAt\":"
        "\"2026-11-23T12:13:20.123Z\",\"workspaceId\":\"" WS "\",\"entity\":{\"id\":"
        "\"mem_0123456789abcdef0123456789abcdef\",\"contentStatus\":\"SYNCHRONIZED\","
        "\"metadata\":{\"a\":[1,true]},\"_\":{\"secret\":1}}}";
    eg_event_t ev = event("evt_1763900000123_7", "memory.updated", json);
    char id[EG_EVENT_FENCY_ID_MAX], want[512];
    char *s = eg_event_fency_json(WS, &ev);

    cr_assert_not_null(s);
    cr_assert_eq(eg_event_fency_id(WS, "evt_1763900000123_7", id), 0);
    snprintf(want, sizeof(want),
             "{\"id\":\"%s\",\"version\":\"1\",\"type\":\"memory.updated\",\"createdAt\":"
             "\"2026-11-23T12:13:20.123000Z\",\"organizationId\":"
             "\"org_3f2a9c1e7b4d4e8a9c0f1d2e3f4a5b6c\",\"entity\":{\"id\":"
             "\"mem_0123456789abcdef0123456789abcdef\",\"contentStatus\":\"SYNCHRONIZED\","
             "\"metadata\":{\"a\":[1,true]}}}",
             id);
    cr_assert_str_eq(s, want);
    free(s);
}

Test(events_fency, envelope_time_forms)
{
    /* No fraction, a longer fraction, and a createdAt that is not a timestamp (the stream id's
     * milliseconds are used). */
    static const struct {
        const char *created, *want;
    } cases[] = {
        {"2026-11-23T12:13:20Z", "2026-11-23T12:13:20.000000Z"},
        {"2026-11-23T12:13:20.1234567Z", "2026-11-23T12:13:20.123456Z"},
        {"yesterday", "2025-11-23T12:13:20.123000Z"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[256];
        eg_event_t ev;
        cJSON *j;
        char *s;

        snprintf(json, sizeof(json),
                 "{\"id\":\"evt_1763900000123_0\",\"type\":\"agent.task.created\",\"createdAt\":"
                 "\"%s\",\"workspaceId\":\"w\",\"entity\":{}}",
                 cases[i].created);
        ev = event("evt_1763900000123_0", "agent.task.created", json);
        s = eg_event_fency_json(WS, &ev);
        cr_assert_not_null(s);
        j = cJSON_Parse(s);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "createdAt")->valuestring, cases[i].want);
        cJSON_Delete(j);
        free(s);
    }
}

Test(events_fency, envelope_rejects_malformed_events)
{
    eg_event_t bad_json = event("evt_1_0", "memory.created", "{\"entity\":");
    eg_event_t no_entity = event("evt_1_0", "memory.created", "{\"id\":\"evt_1_0\"}");
    eg_event_t bad_id = event("nope", "memory.created", "{\"entity\":{}}");

    cr_assert_null(eg_event_fency_json(WS, &bad_json));
    cr_assert_null(eg_event_fency_json(WS, &no_entity));
    cr_assert_null(eg_event_fency_json(WS, &bad_id));
    cr_assert_null(eg_event_fency_json(NULL, &no_entity));
}

/* fency.md §6's vector, and a receiver's check of an envelope: the signature covers the exact
 * bytes sent. */
Test(events_fency, signature_vector)
{
    const char body[] = "{\"payload\":\"example\"}";
    char sig[72];

    eg_webhook_sign_hex("example-secret", body, strlen(body), sig);
    cr_assert_str_eq(sig,
                     "sha256=c395de9ac90297578092d5d0394dc8def76ab5561ec1717dadb6aece0f40bd04");
}
