/* Webhook signing (Standard Webhooks, Fency, Hindsight), secrets, the retry schedule, and the
 * job payload format. No Redis needed. */
#include <string.h>

#include <criterion/criterion.h>

#include "engram/arena.h"
#include "engram/error.h"
#include "engram/webhooks.h"
#include "events/webhooks_int.h"

/* The Standard Webhooks reference libraries' own test vector. */
Test(webhooks, standard_signature_vector)
{
    const char body[] = "{\"test\": 2432232314}";
    char sig[64];

    cr_assert_eq(eg_webhook_sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                          "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                                          strlen(body), sig),
                 0);
    cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

Test(webhooks, standard_signature_rejects_bad_input)
{
    char sig[64];

    cr_assert_eq(
        eg_webhook_sign_standard("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, "{}", 2, sig),
        EG_EINVAL);
    cr_assert_eq(eg_webhook_sign_standard("whsec_!!!notbase64", "msg_1", 1, "{}", 2, sig),
                 EG_EINVAL);
    /* A '.' in the id would let one (id, timestamp) pair pass for another. */
    cr_assert_eq(eg_webhook_sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg.1", 1,
                                          "{}", 2, sig),
                 EG_EINVAL);
}

/* Fency's documented vector; Hindsight uses the same construction. */
Test(webhooks, hex_signature_vector)
{
    const char body[] = "{\"payload\":\"example\"}";
    char sig[72];

    eg_webhook_sign_hex("example-secret", body, strlen(body), sig);
    cr_assert_str_eq(sig,
                     "sha256=c395de9ac90297578092d5d0394dc8def76ab5561ec1717dadb6aece0f40bd04");
}

Test(webhooks, secrets)
{
    char s[64], t[64];

    eg_webhook_secret_new(EG_WEBHOOK_STANDARD, s);
    cr_assert_eq(strncmp(s, "whsec_", 6), 0);
    cr_assert_eq(strlen(s), 6 + 32); /* base64 of 24 bytes */
    cr_assert(eg_webhook_secret_valid(EG_WEBHOOK_STANDARD, s));
    eg_webhook_secret_new(EG_WEBHOOK_STANDARD, t);
    cr_assert_str_neq(s, t);

    eg_webhook_secret_new(EG_WEBHOOK_FENCY, s);
    cr_assert_eq(strlen(s), 32);
    cr_assert(eg_webhook_secret_valid(EG_WEBHOOK_FENCY, s));
    cr_assert_not(eg_webhook_secret_valid(EG_WEBHOOK_STANDARD, s));

    cr_assert_not(eg_webhook_secret_valid(EG_WEBHOOK_STANDARD, "whsec_AAAA")); /* 3 bytes */
    cr_assert_not(eg_webhook_secret_valid(EG_WEBHOOK_HINDSIGHT, "short"));
    cr_assert_not(eg_webhook_secret_valid(EG_WEBHOOK_HINDSIGHT, "has a space"));
    cr_assert(eg_webhook_secret_valid(EG_WEBHOOK_HINDSIGHT, "example-secret"));
}

Test(webhooks, signing_names)
{
    eg_webhook_signing_t s;

    cr_assert_eq(eg_webhook_signing_parse("fency", &s), 0);
    cr_assert_eq(s, EG_WEBHOOK_FENCY);
    cr_assert_eq(eg_webhook_signing_parse("hindsight", &s), 0);
    cr_assert_str_eq(eg_webhook_signing_name(s), "hindsight");
    cr_assert_eq(eg_webhook_signing_parse("Standard", &s), EG_EINVAL);
    cr_assert_eq(eg_webhook_signing_parse(NULL, &s), EG_EINVAL);
}

Test(webhooks, schedule_without_jitter)
{
    static const int64_t want[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};

    for (unsigned i = 0; i < 7; i++)
        cr_assert_eq(eg_webhook_retry_delay_ms(i + 1, 1.0, 0x80000000u), want[i], "attempt %u",
                     i + 1);
    cr_assert_eq(eg_webhook_retry_delay_ms(8, 1.0, 0x80000000u), -1);
    cr_assert_eq(eg_webhook_retry_delay_ms(0, 1.0, 0x80000000u), -1);
}

Test(webhooks, schedule_scale_and_jitter)
{
    cr_assert_eq(eg_webhook_retry_delay_ms(1, 0.001, 0x80000000u), 5);
    cr_assert_eq(eg_webhook_retry_delay_ms(2, 0.001, 0x80000000u), 300);
    /* ±10%: the extremes of rnd. */
    cr_assert_eq(eg_webhook_retry_delay_ms(2, 1.0, 0), 270000);
    cr_assert_geq(eg_webhook_retry_delay_ms(2, 1.0, 0xffffffffu), 329999);
    cr_assert_leq(eg_webhook_retry_delay_ms(2, 1.0, 0xffffffffu), 330000);
    for (uint32_t r = 1; r < 4000000000u; r += 123456789u) {
        int64_t d = eg_webhook_retry_delay_ms(4, 1.0, r);

        cr_assert(d >= 6480000 && d <= 7920000, "rnd %u gave %lld", r, (long long)d);
    }
}

Test(webhooks, job_payload_round_trip)
{
    eg_arena_t a;
    char *ws, *ep, *did, *p;

    eg_arena_init(&a);
    p = eg__wh_job_payload(&a, "ws-1", "wh_abc", "msg_0123");
    cr_assert(eg__wh_job_parse(&a, p, &ws, &ep, &did));
    cr_assert_str_eq(ws, "ws-1");
    cr_assert_str_eq(ep, "wh_abc");
    cr_assert_str_eq(did, "msg_0123");
    cr_assert_not(eg__wh_job_parse(&a, "ws\nwh_x", &ws, &ep, &did));
    cr_assert_not(eg__wh_job_parse(&a, "ws\nwh_x\nevil:id", &ws, &ep, &did));
    cr_assert_not(eg__wh_job_parse(&a, "ws\nxx_x\nmsg_1", &ws, &ep, &did));
    eg_arena_destroy(&a);
}

Test(webhooks, spec_check_names_the_field)
{
    const char *types[] = {"memory.*", "bad type"};
    eg_webhook_spec_t s = {.url = "http://127.0.0.1/x", .has_url = true};
    const char *field, *why;

    cr_assert_eq(eg_webhook_spec_check(&s, true, &field, &why), 0);
    s.url = "/relative";
    cr_assert_eq(eg_webhook_spec_check(&s, true, &field, &why), EG_EINVAL);
    cr_assert_str_eq(field, "url");
    s.url = "https://example.com/hook";
    s.event_types = types;
    s.ntypes = 2;
    s.has_types = true;
    cr_assert_eq(eg_webhook_spec_check(&s, true, &field, &why), EG_EINVAL);
    cr_assert_str_eq(field, "event_types");
    s.ntypes = 1;
    s.secret = "nope";
    cr_assert_eq(eg_webhook_spec_check(&s, true, &field, &why), EG_EINVAL);
    cr_assert_str_eq(field, "secret");
    s.has_url = false;
    s.secret = NULL;
    cr_assert_eq(eg_webhook_spec_check(&s, true, &field, &why), EG_EINVAL);
    cr_assert_str_eq(field, "url");
    cr_assert_eq(eg_webhook_spec_check(&s, false, &field, &why), 0);
}
