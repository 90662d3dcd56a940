/* The library's pure pieces: guard-rail scopes (parse, allow, hidden keys), chunking with pages,
 * the stored chunk shape, and the bulk jobs' value rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/util.h"
#include "engram/arena.h"
#include "engram/error.h"
#include "engram/library.h"
#include "library/library_int.h"

#define T1 "mty_00000000000000000000000000000001"
#define T2 "mty_00000000000000000000000000000002"
#define M1 "mem_00000000000000000000000000000001"
#define M2 "mem_00000000000000000000000000000002"

static eg_arena_t a;

static void setup(void)
{
    eg_arena_init(&a);
}

static void teardown(void)
{
    eg_arena_destroy(&a);
}

/* Parse guard rails from JSON text; returns the parse result, *why set on failure. */
static int parse(const char *json, eg_lib_scope_t *s, const char **why)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    int rc;

    if (json)
        cr_assert_not_null(j, "bad test JSON: %s", json);
    rc = eg_lib_scope_parse(&a, j, s, why);
    cJSON_Delete(j); /* the scope must not point into the input */
    return rc;
}

static cJSON *md(const char *json)
{
    cJSON *j = cJSON_Parse(json);

    eg_arena_defer(&a, (void (*)(void *))cJSON_Delete, j);
    return j;
}

TestSuite(library_scope, .init = setup, .fini = teardown);

Test(library_scope, absent_or_empty_object_is_unrestricted)
{
    eg_lib_scope_t s;
    const char *why;

    cr_assert_eq(parse(NULL, &s, &why), 0);
    cr_assert_eq(s.ntypes, 0);
    cr_assert(eg_lib_scope_allows(&s, M1, T1, md("{}")));
    cr_assert_eq(parse("{}", &s, &why), 0);
    cr_assert_eq(s.ntypes, 0);
    cr_assert_eq(parse("{\"memoryTypes\":null}", &s, &why), 0);
    cr_assert_eq(s.ntypes, 0);
}

Test(library_scope, refuses_malformed_input)
{
    static const char *bad[] = {
        "[]",
        "{\"memoryTypes\":[]}", /* "nothing" must not read as "everything" */
        "{\"memoryTypes\":{}}",
        "{\"memoryTypes\":[1]}",
        "{\"memoryTypes\":[{}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"mty_1\"}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"memoryIds\":[]}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"memoryIds\":[\"x\"]}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"memoryIds\":\"" M1 "\"}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"match\":[1]}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"metadata\":[{\"visible\":false}]}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"metadata\":[{\"key\":\"a\","
        "\"visible\":\"no\"}]}]}",
        "{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\"},{\"memoryTypeId\":\"" T1 "\"}]}",
    };
    eg_lib_scope_t s;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        cr_assert_eq(parse(bad[i], &s, &why), EG_EINVAL, "accepted %s", bad[i]);
        cr_assert_not_null(why);
        cr_assert(strstr(why, "guardRails") != NULL, "reason without the field: %s", why);
    }
}

Test(library_scope, types_ids_and_match)
{
    eg_lib_scope_t s;
    const char *why;

    cr_assert_eq(parse("{\"memoryTypes\":[{\"memoryTypeId\":\"" T1 "\",\"memoryIds\":[\"" M1
                       "\",\"" M1 "\"]},{\"memoryTypeId\":\"" T2
                       "\",\"match\":{\"dept\":\"hr\",\"level\":3,\"tags\":[\"a\"]}}]}",
                       &s, &why),
                 0, "%s", why);
    cr_assert_eq(s.ntypes, 2);
    cr_assert_eq(s.types[0].nmemory_ids, 1, "duplicate ids count once");

    /* type 1: only M1, whatever the metadata */
    cr_assert(eg_lib_scope_allows(&s, M1, T1, md("{}")));
    cr_assert_not(eg_lib_scope_allows(&s, M2, T1, md("{}")));
    /* an id of type 1 does not open another type */
    cr_assert_not(eg_lib_scope_allows(&s, M1, "mty_00000000000000000000000000000003", md("{}")));
    /* type 2: every pair equal, values compared as JSON (3 is not "3") */
    cr_assert(eg_lib_scope_allows(&s, M2, T2,
                                  md("{\"dept\":\"hr\",\"level\":3,\"tags\":[\"a\"],\"x\":1}")));
    cr_assert_not(eg_lib_scope_allows(&s, M2, T2, md("{\"dept\":\"hr\",\"level\":3}")));
    cr_assert_not(
        eg_lib_scope_allows(&s, M2, T2, md("{\"dept\":\"hr\",\"level\":\"3\",\"tags\":[\"a\"]}")));
    cr_assert_not(
        eg_lib_scope_allows(&s, M2, T2, md("{\"dept\":\"HR\",\"level\":3,\"tags\":[\"a\"]}")));
    cr_assert_not(eg_lib_scope_allows(&s, M2, T2, NULL));
    cr_assert_not(eg_lib_scope_allows(&s, NULL, T2, md("{}")));
    cr_assert_not(eg_lib_scope_allows(&s, M2, NULL, md("{}")));
}

Test(library_scope, hidden_keys)
{
    eg_lib_scope_t s;
    const char *why;

    cr_assert_eq(parse("{\"memoryTypes\":[{\"memoryTypeId\":\"" T1
                       "\",\"metadata\":[{\"key\":\"salary\",\"visible\":false},{\"key\":"
                       "\"dept\",\"visible\":true}]}]}",
                       &s, &why),
                 0, "%s", why);
    cr_assert_eq(s.types[0].nhidden, 1);
    cJSON *v = eg_lib_scope_visible(&s, T1, md("{\"salary\":100,\"dept\":\"hr\"}"));
    cr_assert_null(cJSON_GetObjectItem(v, "salary"));
    cr_assert_not_null(cJSON_GetObjectItem(v, "dept"));
    cJSON_Delete(v);
    /* another type: nothing hidden */
    v = eg_lib_scope_visible(&s, T2, md("{\"salary\":100}"));
    cr_assert_not_null(cJSON_GetObjectItem(v, "salary"));
    cJSON_Delete(v);
    cr_assert_eq(eg_lib_scope_type(&s, T2), NULL);
    cr_assert_eq(eg_lib_scope_type(&s, T1), &s.types[0]);
}

TestSuite(library_chunk, .init = setup, .fini = teardown);

Test(library_chunk, one_page_one_chunk)
{
    eg_doc_page_t p = {"Hello world. Second sentence.  \n", 32, 1};
    eg__lib_chunk_t *c;
    char *content;

    cr_assert_eq(eg__lib_chunk(&a, &p, 1, 100, &content, &c), 1);
    cr_assert_str_eq(content, "Hello world. Second sentence.");
    cr_assert_str_eq(c[0].text, "Hello world. Second sentence.");
    cr_assert_eq(c[0].npages, 1);
    cr_assert_eq(c[0].pages[0], 1);
}

Test(library_chunk, empty_and_blank_pages)
{
    eg_doc_page_t p[2] = {{"", 0, 1}, {" \n\t ", 4, 2}};
    eg__lib_chunk_t *c;
    char *content;

    cr_assert_eq(eg__lib_chunk(&a, p, 2, 100, &content, &c), 0);
    cr_assert_str_eq(content, "");
}

Test(library_chunk, chunks_remember_their_pages)
{
    /* Three pages of three sentences (about 82 code points each); chunks of at most 150 code
     * points hold a page and a bit, so some chunks cross a page boundary. */
    static const char *texts[3] = {
        "Page one opens with a sentence here. It goes on for a while. It ends on page one.",
        "Page two opens with a sentence here. It goes on for a while. It ends on page two.",
        "Page four opens with a sentence here. It goes on for a while. It ends on page four.",
    };
    eg_doc_page_t p[4] = {{texts[0], strlen(texts[0]), 1},
                          {texts[1], strlen(texts[1]), 2},
                          {"", 0, 3},
                          {texts[2], strlen(texts[2]), 4}};
    eg__lib_chunk_t *c;
    char *content;
    size_t n = eg__lib_chunk(&a, p, 4, 150, &content, &c);

    cr_assert_geq(n, 2);
    cr_assert(strstr(content, "page one.\n\nPage two") != NULL, "pages joined by a blank line");
    bool crossed = false, saw4 = false;
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(c[i].npages, 0);
        cr_assert_leq(strlen(c[i].text), 150); /* code points == bytes here */
        for (size_t k = 0; k < c[i].npages; k++) {
            cr_assert_neq(c[i].pages[k], 3, "the empty page is nobody's");
            if (k > 0)
                cr_assert_gt(c[i].pages[k], c[i].pages[k - 1], "ascending, distinct");
            saw4 |= c[i].pages[k] == 4;
        }
        crossed |= c[i].npages > 1;
        /* a chunk's text is a piece of the content */
        cr_assert(strstr(content, c[i].text) != NULL);
        /* a chunk naming page 1 only holds page-one text */
        if (c[i].npages == 1 && c[i].pages[0] == 1)
            cr_assert(strstr(texts[0], c[i].text) != NULL);
    }
    cr_assert(crossed, "some chunk crosses a page boundary");
    cr_assert(saw4);
    cr_assert_eq(c[0].pages[0], 1);
    cr_assert_eq(c[n - 1].pages[c[n - 1].npages - 1], 4);
}

Test(library_chunk, json_round_trip)
{
    int pages[2] = {2, 3};
    eg__lib_chunk_t c = {"Text with \"quotes\" and \xc3\xa9.", 29, pages, 2}, back;
    char *j = eg__lib_chunk_json(&c);

    cr_assert_eq(eg__lib_chunk_parse(&a, j, &back), 0);
    cr_assert_str_eq(back.text, c.text);
    cr_assert_eq(back.npages, 2);
    cr_assert_eq(back.pages[0], 2);
    cr_assert_eq(back.pages[1], 3);
    free(j);
    cr_assert_eq(eg__lib_chunk_parse(&a, "{\"t\":1}", &back), EG_EINVAL);
    cr_assert_eq(eg__lib_chunk_parse(&a, "nope", &back), EG_EINVAL);
}

TestSuite(library_values, .init = setup, .fini = teardown);

Test(library_values, newer_wins_comparisons)
{
    cJSON *j =
        md("{\"n1\":1,\"n2\":2.5,\"d1\":\"2024-05-01T10:00:00Z\",\"d2\":\"2024-05-01T12:00:00+"
           "01:00\",\"s1\":\"abc\",\"s2\":\"abd\",\"b\":true}");
    int cmp = 99;

    cr_assert_eq(
        eg__lib_value_cmp(cJSON_GetObjectItem(j, "n2"), cJSON_GetObjectItem(j, "n1"), &cmp), 0);
    cr_assert_eq(cmp, 1);
    /* 12:00+01:00 is 11:00Z, after 10:00Z, whatever the strings say */
    cr_assert_eq(
        eg__lib_value_cmp(cJSON_GetObjectItem(j, "d2"), cJSON_GetObjectItem(j, "d1"), &cmp), 0);
    cr_assert_eq(cmp, 1);
    cr_assert_eq(
        eg__lib_value_cmp(cJSON_GetObjectItem(j, "d1"), cJSON_GetObjectItem(j, "d1"), &cmp), 0);
    cr_assert_eq(cmp, 0);
    cr_assert_eq(
        eg__lib_value_cmp(cJSON_GetObjectItem(j, "s1"), cJSON_GetObjectItem(j, "s2"), &cmp), 0);
    cr_assert_eq(cmp, -1);
    cr_assert_eq(
        eg__lib_value_cmp(cJSON_GetObjectItem(j, "n1"), cJSON_GetObjectItem(j, "s1"), &cmp),
        EG_EINVAL);
    cr_assert_eq(eg__lib_value_cmp(cJSON_GetObjectItem(j, "b"), cJSON_GetObjectItem(j, "b"), &cmp),
                 EG_EINVAL);
}

Test(library_values, identity_values)
{
    cJSON *j = md("{\"s\":\"A-1\",\"n\":42,\"b\":false,\"e\":\"\",\"o\":{},\"z\":null}");

    cr_assert_str_eq(eg__lib_ident(&a, j, "s"), "A-1");
    cr_assert_str_eq(eg__lib_ident(&a, j, "n"), "42");
    cr_assert_str_eq(eg__lib_ident(&a, j, "b"), "false");
    cr_assert_null(eg__lib_ident(&a, j, "e"));
    cr_assert_null(eg__lib_ident(&a, j, "o"));
    cr_assert_null(eg__lib_ident(&a, j, "z"));
    cr_assert_null(eg__lib_ident(&a, j, "missing"));
    cr_assert_null(eg__lib_ident(&a, j, NULL));
}

TestSuite(library_ids);

Test(library_ids, ids_times_versions)
{
    char id[EG__LIB_ID_MAX], t[EG__LIB_TIME_MAX], v1[EG__LIB_SYNC_MAX], v2[EG__LIB_SYNC_MAX];

    eg_hexid_new("mem", id, EG__LIB_ID_MAX);
    cr_assert(eg_hexid_valid(id, "mem"));
    cr_assert_not(eg_hexid_valid(id, "mty"));
    cr_assert_not(eg_hexid_valid("mem_ABC", "mem"));
    cr_assert_not(eg_hexid_valid("mem_0000000000000000000000000000000G", "mem"));
    eg_time_iso_us(1712595747887295LL, t);
    cr_assert_str_eq(t, "2024-04-08T17:02:27.887295Z");
    eg__lib_sync_new(v1);
    eg__lib_sync_new(v2);
    cr_assert_eq(strlen(v1), 25);
    cr_assert_leq(strncmp(v1, v2, 16), 0, "versions sort by time");
    cr_assert(eg__lib_ws_valid("ws_abc"));
    cr_assert_not(eg__lib_ws_valid("ws{x}"));
    cr_assert_not(eg__lib_ws_valid(""));
}
