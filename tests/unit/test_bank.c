/* Bank model: id validation, config key lookup, value coercion and the resolved config (the pure
 * functions of src/memory/bank.c; no Redis). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engram/bank.h"

/* ---- eg_bank_id_valid -------------------------------------------------------------------- */

static bool id_ok(const char *s)
{
    return eg_bank_id_valid(s, strlen(s));
}

Test(bank, id_lengths)
{
    char buf[EG_BANK_ID_MAX + 2];

    memset(buf, 'a', sizeof(buf));
    cr_assert_not(eg_bank_id_valid(buf, 0));
    cr_assert_not(eg_bank_id_valid("", 0));
    cr_assert(eg_bank_id_valid(buf, 1));
    cr_assert(eg_bank_id_valid(buf, EG_BANK_ID_MAX - 1));
    cr_assert(eg_bank_id_valid(buf, 256));
    cr_assert_not(eg_bank_id_valid(buf, 257));
    cr_assert_not(eg_bank_id_valid(buf, EG_BANK_ID_MAX + 2));
    /* len is what counts, not a terminator */
    cr_assert(eg_bank_id_valid("abc", 2));
}

Test(bank, id_length_is_bytes_not_characters)
{
    /* 128 two-byte characters = 256 bytes: valid; one more byte makes 257. */
    char buf[260];
    size_t n = 0;

    for (int i = 0; i < 128; i++) {
        buf[n++] = (char)0xc3;
        buf[n++] = (char)0xa9; /* é */
    }
    cr_assert(eg_bank_id_valid(buf, n));
    buf[n++] = 'x';
    cr_assert_eq(n, 257);
    cr_assert_not(eg_bank_id_valid(buf, n));
    /* 85 three-byte characters (255 bytes) + a 4-byte one would be 259: refused. */
    n = 0;
    for (int i = 0; i < 85; i++) {
        buf[n++] = (char)0xe2;
        buf[n++] = (char)0x82;
        buf[n++] = (char)0xac; /* € */
    }
    cr_assert_eq(n, 255);
    cr_assert(eg_bank_id_valid(buf, n));
    buf[n++] = 'x';
    cr_assert(eg_bank_id_valid(buf, n));
    memcpy(buf + 255, "\xf0\x9f\x98\x80", 4);
    cr_assert_not(eg_bank_id_valid(buf, 259));
}

Test(bank, id_ascii)
{
    cr_assert(id_ok("a"));
    cr_assert(id_ok("my-bank_1.0"));
    cr_assert(id_ok(" "));
    cr_assert(id_ok("with space"));
    cr_assert(id_ok("slash/and:colon{}"));
    cr_assert(id_ok("~"));
    cr_assert(id_ok("!\"#$%&'()*+,-./"));
}

Test(bank, id_control_chars)
{
    cr_assert_not(id_ok("a\tb"));
    cr_assert_not(id_ok("a\nb"));
    cr_assert_not(id_ok("a\rb"));
    cr_assert_not(id_ok("\x01"));
    cr_assert_not(id_ok("\x1f"));
    cr_assert_not(id_ok("a\x7f"));
    cr_assert_not(id_ok("\x1b[0m"));
    /* an embedded NUL inside len */
    cr_assert_not(eg_bank_id_valid("a\0b", 3));
    cr_assert(eg_bank_id_valid("a\0b", 1));
    /* C1 controls U+0080..U+009F as UTF-8 */
    cr_assert_not(id_ok("\xc2\x80"));
    cr_assert_not(id_ok("\xc2\x85"));
    cr_assert_not(id_ok("\xc2\x9f"));
    cr_assert(id_ok("\xc2\xa0")); /* U+00A0 is the first allowed */
}

Test(bank, id_multibyte)
{
    cr_assert(id_ok("caf\xc3\xa9"));              /* café */
    cr_assert(id_ok("\xe2\x82\xac"));             /* € */
    cr_assert(id_ok("\xe6\x97\xa5\xe6\x9c\xac")); /* 日本 */
    cr_assert(id_ok("\xf0\x9f\x98\x80"));         /* U+1F600 */
    cr_assert(id_ok("\xf4\x8f\xbf\xbf"));         /* U+10FFFF */
    cr_assert(id_ok("\xdf\xbf"));                 /* U+07FF */
    cr_assert(id_ok("\xe0\xa0\x80"));             /* U+0800 */
    cr_assert(id_ok("\xef\xbf\xbf"));             /* U+FFFF (noncharacter, allowed) */
    cr_assert(id_ok("\xed\x9f\xbf"));             /* U+D7FF */
    cr_assert(id_ok("\xee\x80\x80"));             /* U+E000 */
    cr_assert(id_ok("\xf0\x90\x80\x80"));         /* U+10000 */
    cr_assert(id_ok("\xe2\x80\xa8"));             /* U+2028 line separator: not a C0/C1 control */
}

Test(bank, id_invalid_utf8)
{
    cr_assert_not(id_ok("\x80")); /* lone continuation */
    cr_assert_not(id_ok("a\xbf"));
    cr_assert_not(id_ok("\xc3")); /* truncated at the end */
    cr_assert_not(id_ok("\xe2\x82"));
    cr_assert_not(id_ok("\xf0\x9f\x98"));
    cr_assert_not(id_ok("\xc3"
                        "a")); /* bad continuation */
    cr_assert_not(id_ok("\xe2\x82"
                        "a"));
    cr_assert_not(id_ok("\xc0\x80"));         /* overlong NUL */
    cr_assert_not(id_ok("\xc1\xbf"));         /* overlong */
    cr_assert_not(id_ok("\xe0\x80\xaf"));     /* overlong '/' */
    cr_assert_not(id_ok("\xe0\x9f\xbf"));     /* overlong U+07FF */
    cr_assert_not(id_ok("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    cr_assert_not(id_ok("\xed\xa0\x80"));     /* surrogate U+D800 */
    cr_assert_not(id_ok("\xed\xbf\xbf"));     /* surrogate U+DFFF */
    cr_assert_not(id_ok("\xf4\x90\x80\x80")); /* U+110000 */
    cr_assert_not(id_ok("\xf5\x80\x80\x80"));
    cr_assert_not(id_ok("\xf8\x88\x80\x80\x80")); /* 5-byte form */
    cr_assert_not(id_ok("\xfe"));
    cr_assert_not(id_ok("\xff"));
    /* a multibyte sequence cut by len, though the bytes continue past it */
    cr_assert_not(eg_bank_id_valid("\xc3\xa9", 1));
    cr_assert_not(eg_bank_id_valid("\xf0\x9f\x98\x80", 3));
    cr_assert(eg_bank_id_valid("\xf0\x9f\x98\x80", 4));
}

/* ---- eg_bank_cfg_keys / eg_bank_cfg_find ------------------------------------------------- */

Test(bank, cfg_keys_table)
{
    size_t n = 0;
    const eg_bank_cfg_key_t *k = eg_bank_cfg_keys(&n);

    cr_assert_eq(n, 17);
    cr_assert_str_eq(k[0].name, "reflect_mission");
    cr_assert_str_eq(k[16].name, "enable_reranking");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(eg_bank_cfg_find(k[i].name), &k[i], "%s", k[i].name);
        if (k[i].type == EG_BANK_CFG_ENUM)
            cr_assert_not_null(k[i].values);
        if (k[i].type == EG_BANK_CFG_INT)
            cr_assert_leq(k[i].min, k[i].max);
    }
}

Test(bank, cfg_find_field_names)
{
    size_t n;
    const eg_bank_cfg_key_t *keys = eg_bank_cfg_keys(&n);
    const eg_bank_cfg_key_t *k;

    k = eg_bank_cfg_find("retain_chunk_size");
    cr_assert_not_null(k);
    cr_assert_str_eq(k->name, "retain_chunk_size");
    cr_assert_eq(k->type, EG_BANK_CFG_INT);
    cr_assert_str_eq(k->def, "3000");
    cr_assert_eq(k->min, 1);
    cr_assert_eq(k->max, 1000000);

    k = eg_bank_cfg_find("retain_structured_chunk_size");
    cr_assert_eq(k->type, EG_BANK_CFG_INT);
    cr_assert_null(k->def);

    k = eg_bank_cfg_find("retain_extraction_mode");
    cr_assert_eq(k->type, EG_BANK_CFG_ENUM);
    cr_assert_str_eq(k->def, "\"concise\"");
    cr_assert_str_eq(k->values[0], "concise");
    cr_assert_str_eq(k->values[1], "verbose");
    cr_assert_str_eq(k->values[2], "custom");
    cr_assert_str_eq(k->values[3], "verbatim");
    cr_assert_str_eq(k->values[4], "chunks");
    cr_assert_null(k->values[5]);

    k = eg_bank_cfg_find("disposition_empathy");
    cr_assert_eq(k->type, EG_BANK_CFG_INT);
    cr_assert_str_eq(k->def, "3");
    cr_assert_eq(k->min, EG_BANK_TRAIT_MIN);
    cr_assert_eq(k->max, EG_BANK_TRAIT_MAX);

    k = eg_bank_cfg_find("reflect_mission");
    cr_assert_eq(k, &keys[0]);
    cr_assert_eq(k->type, EG_BANK_CFG_STR);
    cr_assert_null(k->def);

    k = eg_bank_cfg_find("enable_observations");
    cr_assert_eq(k->type, EG_BANK_CFG_BOOL);
    cr_assert_str_eq(k->def, "true");
}

Test(bank, cfg_find_env_names)
{
    const eg_bank_cfg_key_t *k = eg_bank_cfg_find("retain_chunk_size");

    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_RETAIN_CHUNK_SIZE"), k);
    /* after the prefix, case does not matter */
    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_retain_chunk_size"), k);
    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_Retain_Chunk_Size"), k);
    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_REFLECT_MISSION"),
                 eg_bank_cfg_find("reflect_mission"));
    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_ENABLE_RERANKING"),
                 eg_bank_cfg_find("enable_reranking"));
    cr_assert_eq(eg_bank_cfg_find("HINDSIGHT_API_DISPOSITION_SKEPTICISM"),
                 eg_bank_cfg_find("disposition_skepticism"));
}

Test(bank, cfg_find_unknown_and_case)
{
    /* field names are case-sensitive */
    cr_assert_null(eg_bank_cfg_find("RETAIN_CHUNK_SIZE"));
    cr_assert_null(eg_bank_cfg_find("Retain_chunk_size"));
    /* the prefix is case-sensitive */
    cr_assert_null(eg_bank_cfg_find("hindsight_api_retain_chunk_size"));
    cr_assert_null(eg_bank_cfg_find("Hindsight_Api_RETAIN_CHUNK_SIZE"));
    cr_assert_null(eg_bank_cfg_find("HINDSIGHT_RETAIN_CHUNK_SIZE"));
    cr_assert_null(eg_bank_cfg_find(""));
    cr_assert_null(eg_bank_cfg_find("HINDSIGHT_API_"));
    cr_assert_null(eg_bank_cfg_find("HINDSIGHT_API_HINDSIGHT_API_RETAIN_CHUNK_SIZE"));
    cr_assert_null(eg_bank_cfg_find("HINDSIGHT_API_NOPE"));
    cr_assert_null(eg_bank_cfg_find("retain_chunk_size "));
    cr_assert_null(eg_bank_cfg_find(" retain_chunk_size"));
    cr_assert_null(eg_bank_cfg_find("retain_chunk"));
    cr_assert_null(eg_bank_cfg_find("retain_chunk_size_x"));
    /* global (non per-bank) settings are not bank keys */
    cr_assert_null(eg_bank_cfg_find("llm_provider"));
    cr_assert_null(eg_bank_cfg_find("HINDSIGHT_API_LLM_PROVIDER"));
    /* the profile's own names are not config keys */
    cr_assert_null(eg_bank_cfg_find("mission"));
    cr_assert_null(eg_bank_cfg_find("skepticism"));
}

/* ---- eg_bank_cfg_coerce ------------------------------------------------------------------ */

/* Coerce JSON text json for key name; *out gets the result (or NULL). */
static eg_bank_cfg_why_t coerce(const char *name, const char *json, cJSON **out)
{
    const eg_bank_cfg_key_t *k = eg_bank_cfg_find(name);
    cJSON *in = cJSON_Parse(json);
    eg_bank_cfg_why_t why;

    cr_assert_not_null(k, "%s", name);
    cr_assert_not_null(in, "%s", json);
    *out = (cJSON *)0x1; /* must be overwritten */
    why = eg_bank_cfg_coerce(k, in, out);
    cJSON_Delete(in);
    return why;
}

/* Coerce and compare the result's unformatted JSON text. */
static void expect_ok(const char *name, const char *json, const char *want)
{
    cJSON *out;
    eg_bank_cfg_why_t why = coerce(name, json, &out);
    char *text;

    cr_assert_eq(why, EG_BANK_CFG_OK, "%s = %s: why %d", name, json, why);
    cr_assert_not_null(out, "%s = %s", name, json);
    text = cJSON_PrintUnformatted(out);
    cr_assert_str_eq(text, want, "%s = %s", name, json);
    free(text);
    cJSON_Delete(out);
}

static void expect_why(const char *name, const char *json, eg_bank_cfg_why_t want)
{
    cJSON *out;
    eg_bank_cfg_why_t why = coerce(name, json, &out);

    cr_assert_eq(why, want, "%s = %s: why %d, want %d", name, json, why, want);
    cr_assert_null(out, "%s = %s", name, json);
}

Test(bank, coerce_null_removes)
{
    size_t n;
    const eg_bank_cfg_key_t *keys = eg_bank_cfg_keys(&n);
    cJSON *null = cJSON_CreateNull();

    for (size_t i = 0; i < n; i++) {
        cJSON *out = (cJSON *)0x1;
        cr_assert_eq(eg_bank_cfg_coerce(&keys[i], null, &out), EG_BANK_CFG_OK, "%s", keys[i].name);
        cr_assert_null(out, "%s", keys[i].name);
    }
    cJSON_Delete(null);
}

Test(bank, coerce_str)
{
    expect_ok("reflect_mission", "\"Be helpful\"", "\"Be helpful\"");
    expect_ok("reflect_mission", "\"\"", "\"\"");
    expect_ok("llm_output_language", "\"fran\\u00e7ais\"",
              "\"fran\xc3\xa7"
              "ais\"");
    expect_ok("retain_custom_instructions", "\"a\\nb\"", "\"a\\nb\"");
    /* no lax conversion to strings */
    expect_why("reflect_mission", "3", EG_BANK_CFG_BAD_TYPE);
    expect_why("reflect_mission", "true", EG_BANK_CFG_BAD_TYPE);
    expect_why("observations_mission", "false", EG_BANK_CFG_BAD_TYPE);
    expect_why("retain_mission", "[\"a\"]", EG_BANK_CFG_BAD_TYPE);
    expect_why("retain_mission", "{\"a\":1}", EG_BANK_CFG_BAD_TYPE);
}

Test(bank, coerce_str_copies)
{
    const eg_bank_cfg_key_t *k = eg_bank_cfg_find("retain_mission");
    cJSON *in = cJSON_CreateString("x"), *out = NULL;

    cr_assert_eq(eg_bank_cfg_coerce(k, in, &out), EG_BANK_CFG_OK);
    cr_assert_neq(out, in);
    cr_assert_neq(out->valuestring, in->valuestring);
    cJSON_Delete(in);
    cr_assert_str_eq(out->valuestring, "x");
    cJSON_Delete(out);
}

Test(bank, coerce_enum)
{
    expect_ok("retain_extraction_mode", "\"concise\"", "\"concise\"");
    expect_ok("retain_extraction_mode", "\"verbose\"", "\"verbose\"");
    expect_ok("retain_extraction_mode", "\"custom\"", "\"custom\"");
    expect_ok("retain_extraction_mode", "\"verbatim\"", "\"verbatim\"");
    expect_ok("retain_extraction_mode", "\"chunks\"", "\"chunks\"");
    /* choices are case-sensitive and exact */
    expect_why("retain_extraction_mode", "\"Concise\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\"VERBOSE\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\" concise\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\"concise \"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\"\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\"summary\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "\"chunk\"", EG_BANK_CFG_BAD_CHOICE);
    expect_why("retain_extraction_mode", "1", EG_BANK_CFG_BAD_TYPE);
    expect_why("retain_extraction_mode", "true", EG_BANK_CFG_BAD_TYPE);
    expect_why("retain_extraction_mode", "[\"concise\"]", EG_BANK_CFG_BAD_TYPE);
}

Test(bank, coerce_int_numbers)
{
    cJSON *out;

    expect_ok("retain_chunk_size", "3000", "3000");
    expect_ok("retain_chunk_size", "1", "1");
    expect_ok("retain_chunk_size", "1000000", "1000000");
    expect_ok("retain_chunk_size", "3000.0", "3000");
    expect_ok("retain_chunk_size", "3e3", "3000");
    expect_ok("retain_chunk_size", "1E6", "1000000");
    expect_ok("retain_structured_chunk_size", "42", "42");
    cr_assert_eq(coerce("retain_chunk_size", "2500", &out), EG_BANK_CFG_OK);
    cr_assert(cJSON_IsNumber(out));
    cr_assert_eq(out->valueint, 2500);
    cr_assert_float_eq(out->valuedouble, 2500.0, 0.0);
    cJSON_Delete(out);
    /* fractions */
    expect_why("retain_chunk_size", "3000.5", EG_BANK_CFG_FRACTION);
    expect_why("retain_chunk_size", "0.5", EG_BANK_CFG_FRACTION);
    expect_why("retain_chunk_size", "1e-3", EG_BANK_CFG_FRACTION);
    /* range */
    expect_why("retain_chunk_size", "0", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "-1", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "1000001", EG_BANK_CFG_TOO_LARGE);
    expect_why("retain_chunk_size", "1e300", EG_BANK_CFG_TOO_LARGE);
    expect_why("retain_chunk_size", "-1e300", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "9000000000000001", EG_BANK_CFG_TOO_LARGE);
    /* a fraction is reported before the range */
    expect_why("retain_chunk_size", "-0.5", EG_BANK_CFG_FRACTION);
    expect_why("retain_chunk_size", "1000000.5", EG_BANK_CFG_FRACTION);
}

Test(bank, coerce_int_disposition_bounds)
{
    expect_why("disposition_skepticism", "0", EG_BANK_CFG_TOO_SMALL);
    expect_ok("disposition_skepticism", "1", "1");
    expect_ok("disposition_literalism", "3", "3");
    expect_ok("disposition_empathy", "5", "5");
    expect_why("disposition_empathy", "6", EG_BANK_CFG_TOO_LARGE);
    expect_why("disposition_empathy", "\"6\"", EG_BANK_CFG_TOO_LARGE);
    expect_why("disposition_empathy", "\"0\"", EG_BANK_CFG_TOO_SMALL);
    expect_ok("disposition_empathy", "\"4\"", "4");
    expect_why("disposition_empathy", "2.5", EG_BANK_CFG_FRACTION);
}

Test(bank, coerce_int_strings)
{
    expect_ok("retain_chunk_size", "\"3000\"", "3000");
    expect_ok("retain_chunk_size", "\"1\"", "1");
    expect_ok("retain_chunk_size", "\"0001\"", "1");
    expect_ok("retain_chunk_size", "\"1000000\"", "1000000");
    expect_why("retain_chunk_size", "\"0\"", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "\"-0\"", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "\"-5\"", EG_BANK_CFG_TOO_SMALL);
    expect_why("retain_chunk_size", "\"1000001\"", EG_BANK_CFG_TOO_LARGE);
    expect_why("retain_chunk_size", "\"9223372036854775807\"", EG_BANK_CFG_TOO_LARGE);
    expect_why("retain_chunk_size", "\"-9223372036854775808\"", EG_BANK_CFG_TOO_SMALL);
    /* what the strict decimal parser refuses */
    expect_why("retain_chunk_size", "\"9223372036854775808\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"-\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"abc\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"3000.0\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"3000.5\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"3e3\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\" 3000\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"3000 \"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"+3000\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"3_000\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"0x10\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("retain_chunk_size", "\"true\"", EG_BANK_CFG_BAD_PARSE);
}

Test(bank, coerce_int_other_types)
{
    /* booleans are 1 and 0, then range-checked */
    expect_ok("retain_chunk_size", "true", "1");
    expect_why("retain_chunk_size", "false", EG_BANK_CFG_TOO_SMALL);
    expect_ok("disposition_skepticism", "true", "1");
    expect_why("retain_chunk_size", "[3000]", EG_BANK_CFG_BAD_TYPE);
    expect_why("retain_chunk_size", "{}", EG_BANK_CFG_BAD_TYPE);
}

Test(bank, coerce_int_non_finite)
{
    const eg_bank_cfg_key_t *k = eg_bank_cfg_find("retain_chunk_size");
    cJSON *in, *out;

    in = cJSON_CreateNumber(INFINITY);
    cr_assert_eq(eg_bank_cfg_coerce(k, in, &out), EG_BANK_CFG_FRACTION);
    cr_assert_null(out);
    cJSON_Delete(in);
    in = cJSON_CreateNumber(NAN);
    cr_assert_eq(eg_bank_cfg_coerce(k, in, &out), EG_BANK_CFG_FRACTION);
    cr_assert_null(out);
    cJSON_Delete(in);
}

Test(bank, coerce_int_custom_key)
{
    /* a key outside the table: bounds beyond what JSON numbers hold exactly */
    eg_bank_cfg_key_t k = {"x", EG_BANK_CFG_INT, NULL, INT64_MIN, INT64_MAX, NULL};
    cJSON *in, *out;

    in = cJSON_CreateNumber(-9e15);
    cr_assert_eq(eg_bank_cfg_coerce(&k, in, &out), EG_BANK_CFG_OK);
    cr_assert_float_eq(out->valuedouble, -9e15, 0.0);
    cJSON_Delete(out);
    cJSON_Delete(in);
    in = cJSON_CreateNumber(-9.1e15);
    cr_assert_eq(eg_bank_cfg_coerce(&k, in, &out), EG_BANK_CFG_TOO_SMALL);
    cr_assert_null(out);
    cJSON_Delete(in);
    in = cJSON_CreateNumber(9.1e15);
    cr_assert_eq(eg_bank_cfg_coerce(&k, in, &out), EG_BANK_CFG_TOO_LARGE);
    cJSON_Delete(in);
    in = cJSON_CreateString("-9223372036854775808");
    cr_assert_eq(eg_bank_cfg_coerce(&k, in, &out), EG_BANK_CFG_OK);
    cr_assert_not_null(out);
    cJSON_Delete(out);
    cJSON_Delete(in);
}

Test(bank, coerce_bool)
{
    static const char *const truthy[] = {"\"true\"", "\"1\"",  "\"yes\"",  "\"on\"",
                                         "\"t\"",    "\"y\"",  "\"TRUE\"", "\"True\"",
                                         "\"YES\"",  "\"On\"", "\"T\"",    "\"Y\""};
    static const char *const falsy[] = {"\"false\"", "\"0\"",   "\"no\"",    "\"off\"",
                                        "\"f\"",     "\"n\"",   "\"FALSE\"", "\"False\"",
                                        "\"NO\"",    "\"OFF\"", "\"F\"",     "\"N\""};

    for (size_t i = 0; i < sizeof(truthy) / sizeof(*truthy); i++)
        expect_ok("enable_observations", truthy[i], "true");
    for (size_t i = 0; i < sizeof(falsy) / sizeof(*falsy); i++)
        expect_ok("enable_reranking", falsy[i], "false");
    expect_ok("retain_extract_causal_links", "true", "true");
    expect_ok("retain_extract_causal_links", "false", "false");
    expect_ok("entities_allow_free_form", "1", "true");
    expect_ok("entities_allow_free_form", "0", "false");
    expect_ok("entities_allow_free_form", "1.0", "true");
    expect_ok("entities_allow_free_form", "-0", "false");
    expect_why("enable_graph_retrieval", "2", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_graph_retrieval", "-1", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_graph_retrieval", "0.5", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"maybe\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"2\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\" true\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"true \"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"yes!\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"1.0\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "\"enabled\"", EG_BANK_CFG_BAD_PARSE);
    expect_why("enable_temporal_retrieval", "[true]", EG_BANK_CFG_BAD_TYPE);
    expect_why("enable_temporal_retrieval", "{}", EG_BANK_CFG_BAD_TYPE);
}

Test(bank, coerce_null_input_pointer)
{
    /* a missing value (C NULL, not JSON null) is a type error, not a removal */
    const eg_bank_cfg_key_t *k = eg_bank_cfg_find("retain_chunk_size");
    cJSON *out = (cJSON *)0x1;

    cr_assert_eq(eg_bank_cfg_coerce(k, NULL, &out), EG_BANK_CFG_BAD_TYPE);
    cr_assert_null(out);
    out = (cJSON *)0x1;
    cr_assert_eq(eg_bank_cfg_coerce(eg_bank_cfg_find("reflect_mission"), NULL, &out),
                 EG_BANK_CFG_BAD_TYPE);
    cr_assert_null(out);
}

/* ---- eg_bank_config_resolved ------------------------------------------------------------- */

static const char *defaults_json =
    "{\"reflect_mission\":null,\"disposition_skepticism\":3,\"disposition_literalism\":3,"
    "\"disposition_empathy\":3,\"retain_mission\":null,\"retain_extraction_mode\":\"concise\","
    "\"retain_custom_instructions\":null,\"retain_chunk_size\":3000,"
    "\"retain_structured_chunk_size\":null,\"retain_extract_causal_links\":true,"
    "\"entities_allow_free_form\":true,\"llm_output_language\":null,"
    "\"enable_observations\":true,\"observations_mission\":null,"
    "\"enable_temporal_retrieval\":true,\"enable_graph_retrieval\":true,"
    "\"enable_reranking\":true}";

static void expect_resolved(const eg_bank_t *b, const char *want)
{
    cJSON *cfg = eg_bank_config_resolved(b);
    char *text;

    cr_assert_not_null(cfg);
    text = cJSON_PrintUnformatted(cfg);
    cr_assert_str_eq(text, want);
    free(text);
    cJSON_Delete(cfg);
}

Test(bank, resolved_defaults)
{
    eg_bank_t b = {.id = "b", .name = "b", .mission = ""};

    expect_resolved(NULL, defaults_json);
    /* a bank without an overrides object has the defaults too */
    expect_resolved(&b, defaults_json);
    b.overrides = cJSON_CreateObject();
    expect_resolved(&b, defaults_json);
    cJSON_Delete((cJSON *)b.overrides);
}

Test(bank, resolved_order_and_count)
{
    size_t n, i = 0;
    const eg_bank_cfg_key_t *keys = eg_bank_cfg_keys(&n);
    cJSON *cfg = eg_bank_config_resolved(NULL), *it;

    cr_assert_eq((size_t)cJSON_GetArraySize(cfg), n);
    cJSON_ArrayForEach(it, cfg)
    {
        cr_assert_str_eq(it->string, keys[i].name);
        i++;
    }
    cJSON_Delete(cfg);
}

Test(bank, resolved_overrides)
{
    cJSON *ov = cJSON_Parse("{\"retain_chunk_size\":1200,\"reflect_mission\":\"Help\","
                            "\"disposition_empathy\":5,\"enable_reranking\":false,"
                            "\"retain_extraction_mode\":\"verbatim\","
                            "\"retain_structured_chunk_size\":null,"
                            "\"not_a_key\":1,\"RETAIN_MISSION\":\"x\"}");
    eg_bank_t b = {.id = "b", .name = "b", .mission = "Help", .overrides = ov};
    cJSON *cfg, *v;

    expect_resolved(
        &b, "{\"reflect_mission\":\"Help\",\"disposition_skepticism\":3,"
            "\"disposition_literalism\":3,\"disposition_empathy\":5,\"retain_mission\":null,"
            "\"retain_extraction_mode\":\"verbatim\",\"retain_custom_instructions\":null,"
            "\"retain_chunk_size\":1200,\"retain_structured_chunk_size\":null,"
            "\"retain_extract_causal_links\":true,\"entities_allow_free_form\":true,"
            "\"llm_output_language\":null,\"enable_observations\":true,"
            "\"observations_mission\":null,\"enable_temporal_retrieval\":true,"
            "\"enable_graph_retrieval\":true,\"enable_reranking\":false}");
    /* the result is a copy: the overrides can go first */
    cfg = eg_bank_config_resolved(&b);
    cJSON_Delete(ov);
    v = cJSON_GetObjectItemCaseSensitive(cfg, "reflect_mission");
    cr_assert_str_eq(v->valuestring, "Help");
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(cfg, "not_a_key"));
    cJSON_Delete(cfg);
}

Test(bank, resolved_override_null_hides_default)
{
    /* a stored JSON null (not written by the store, but possible) replaces the default */
    cJSON *ov = cJSON_Parse("{\"retain_chunk_size\":null}");
    eg_bank_t b = {.id = "b", .overrides = ov};
    cJSON *cfg = eg_bank_config_resolved(&b);

    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cfg, "retain_chunk_size")));
    cJSON_Delete(cfg);
    cJSON_Delete(ov);
}

Test(bank, resolved_roundtrip_coerce)
{
    /* values coerced from lax input resolve to their normalised form */
    const char *keys[] = {"retain_chunk_size", "enable_observations", "disposition_literalism"};
    const char *in[] = {"\"2048\"", "\"off\"", "\"2\""};
    cJSON *ov = cJSON_CreateObject(), *cfg;
    eg_bank_t b = {.id = "b", .overrides = ov};

    for (size_t i = 0; i < 3; i++) {
        cJSON *j = cJSON_Parse(in[i]), *out = NULL;
        cr_assert_eq(eg_bank_cfg_coerce(eg_bank_cfg_find(keys[i]), j, &out), EG_BANK_CFG_OK);
        cJSON_AddItemToObject(ov, keys[i], out);
        cJSON_Delete(j);
    }
    cfg = eg_bank_config_resolved(&b);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(cfg, "retain_chunk_size")->valueint, 2048);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "enable_observations")));
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(cfg, "disposition_literalism")->valueint, 2);
    cJSON_Delete(cfg);
    cJSON_Delete(ov);
}
