/* multipart/form-data: boundaries, quoted parameters, CRLF edge cases, binary data, a file as the
 * last part, malformed bodies. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/buf.h"
#include "engram/error.h"
#include "engram/multipart.h"

static eg_arena_t A;

static void setup(void)
{
    eg_arena_init(&A);
}

static void teardown(void)
{
    eg_arena_destroy(&A);
}

TestSuite(multipart, .init = setup, .fini = teardown);

static eg_multipart_part_t *parse(const char *b, const char *body, size_t len, size_t *n)
{
    eg_multipart_part_t *p = NULL;
    const char *why = NULL;
    int rc = eg_multipart_parse(&A, b, body, len, &p, n, &why);
    cr_assert_eq(rc, 0, "parse: %s", why ? why : "");
    return p;
}

static void data_eq(const eg_multipart_part_t *p, const char *want, size_t wlen)
{
    cr_assert_eq(p->len, wlen, "part %s: %zu bytes, want %zu", p->name, p->len, wlen);
    cr_assert(memcmp(p->data, want, wlen) == 0);
}

Test(multipart, boundary_from_content_type)
{
    cr_assert_str_eq(eg_multipart_boundary(&A, "multipart/form-data; boundary=abc"), "abc");
    cr_assert_str_eq(eg_multipart_boundary(&A, "Multipart/Form-Data;boundary=\"a b;c\""), "a b;c");
    cr_assert_str_eq(
        eg_multipart_boundary(&A, "multipart/form-data; charset=utf-8; BOUNDARY=----WebKitX12"),
        "----WebKitX12");
    cr_assert_null(eg_multipart_boundary(&A, "multipart/mixed; boundary=abc"));
    cr_assert_null(eg_multipart_boundary(&A, "application/json"));
    cr_assert_null(eg_multipart_boundary(&A, "multipart/form-data"));
    cr_assert_null(eg_multipart_boundary(&A, "multipart/form-data; boundary="));
    cr_assert_null(eg_multipart_boundary(&A, NULL));
    char longb[128] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 71); /* the rest stays NUL */
    cr_assert_null(eg_multipart_boundary(&A, longb));
}

Test(multipart, params_quoted_and_escaped)
{
    const char *v = "form-data; name=\"file\"; filename=\"a \\\"q\\\".txt\"; x=1";
    cr_assert_str_eq(eg_multipart_param(&A, v, "name"), "file");
    cr_assert_str_eq(eg_multipart_param(&A, v, "filename"), "a \"q\".txt");
    cr_assert_str_eq(eg_multipart_param(&A, v, "X"), "1");
    cr_assert_null(eg_multipart_param(&A, v, "file"));
    cr_assert_str_eq(eg_multipart_param(&A, "form-data;name=plain ; filename*=UTF-8''x", "name"),
                     "plain");
    cr_assert_null(eg_multipart_param(&A, "form-data; filename*=UTF-8''x", "filename"));
}

Test(multipart, browser_form_with_file_last)
{
    const char body[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"key\"\r\n"
        "\r\n"
        "ws/mem/1\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"policy\"\r\n"
        "\r\n"
        "eyJ4IjoxfQ==\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"empty\"\r\n"
        "\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"r%22e%0Ap.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
        "\x00\x01\r\n--XyZnot-a-delimiter\r\nend\r\n"
        "--XyZ-- \r\n";
    size_t n;
    eg_multipart_part_t *p = parse("XyZ", body, sizeof body - 1, &n);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(p[0].name, "key");
    cr_assert_null(p[0].filename);
    cr_assert_null(p[0].content_type);
    data_eq(&p[0], "ws/mem/1", 8);
    cr_assert_str_eq(p[1].name, "policy");
    data_eq(&p[1], "eyJ4IjoxfQ==", 12);
    cr_assert_str_eq(p[2].name, "empty");
    data_eq(&p[2], "", 0);
    cr_assert_str_eq(p[3].name, "file");
    cr_assert_str_eq(p[3].filename, "r\"e\np.bin");
    cr_assert_str_eq(p[3].content_type, "application/octet-stream");
    /* A line that only starts with the delimiter is data; the closing delimiter may carry
     * transport padding. */
    data_eq(&p[3], "\x00\x01\r\n--XyZnot-a-delimiter\r\nend", 29);
}

Test(multipart, preamble_epilogue_lf_and_folding)
{
    const char body[] = "This is the preamble.\n"
                        "--b\n"
                        "content-disposition: form-data;\n"
                        "\tname=\"a\"\n"
                        "\n"
                        "line1\nline2\n"
                        "--b\n"
                        "\n"
                        "no headers\n"
                        "--b--\n"
                        "epilogue --b\n";
    size_t n;
    eg_multipart_part_t *p = parse("b", body, sizeof body - 1, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(p[0].name, "a");
    data_eq(&p[0], "line1\nline2", 11);
    cr_assert_str_eq(p[1].name, "");
    data_eq(&p[1], "no headers", 10);
}

Test(multipart, closing_delimiter_at_end_without_crlf)
{
    const char body[] = "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--b--";
    size_t n;
    eg_multipart_part_t *p = parse("b", body, sizeof body - 1, &n);
    cr_assert_eq(n, 1);
    data_eq(&p[0], "v", 1);
    /* No parts at all. */
    p = parse("b", "--b--\r\n", 7, &n);
    cr_assert_eq(n, 0);
}

Test(multipart, malformed_bodies)
{
    eg_multipart_part_t *p;
    size_t n;
    const char *why;
    const char *bad[] = {
        "no boundary here",
        "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nvalue without end",
        "--b\r\nContent-Disposition: form-data; name=x",
        "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--b",
        "--bb\r\n\r\nv\r\n--bb--",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        cr_assert_eq(eg_multipart_parse(&A, "b", bad[i], strlen(bad[i]), &p, &n, &why), EG_EINVAL,
                     "case %zu parsed", i);
        cr_assert_not_null(why);
    }
}

Test(multipart, too_many_parts)
{
    eg_buf_t b = EG_BUF_INIT;
    for (int i = 0; i <= EG_MULTIPART_MAX_PARTS; i++)
        eg_buf_printf(&b, "--b\r\nContent-Disposition: form-data; name=f%d\r\n\r\nv\r\n", i);
    eg_buf_puts(&b, "--b--\r\n");
    eg_multipart_part_t *p;
    size_t n;
    const char *why;
    cr_assert_eq(eg_multipart_parse(&A, "b", b.data, b.len, &p, &n, &why), EG_EINVAL);
    cr_assert_str_eq(why, "too many parts in the multipart body");
    eg_buf_free(&b);
}
