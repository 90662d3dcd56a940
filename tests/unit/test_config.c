/* Configuration: defaults, environment, flags, precedence and every error path. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/config.h"
#include "engram/error.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *fake_get(const char *name)
{
    for (const char *const *p = fake_env; p != NULL && p[0] != NULL; p += 2) {
        if (strcmp(p[0], name) == 0)
            return p[1];
    }
    return NULL;
}

static int from_env(eg_config_t *cfg, const char *const *env, char *err, size_t errlen)
{
    fake_env = env;
    return eg_config_from_env(cfg, fake_get, err, errlen);
}

#define ARGS(...) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), ((char *[]){__VA_ARGS__})

Test(config, defaults)
{
    eg_config_t c;

    eg_config_defaults(&c);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 8080);
    cr_assert_str_eq(c.redis_url, "redis://127.0.0.1:6379/0");
    cr_assert_eq(c.redis_pool, 4);
    cr_assert_eq(c.redis_timeout_ms, 5000);
    cr_assert_eq(c.redis_connect_timeout_ms, 2000);
    cr_assert_eq(c.max_header_bytes, 16384);
    cr_assert_eq(c.max_body_bytes, 10u << 20);
    cr_assert_eq(c.max_url_bytes, 8192);
    cr_assert_eq(c.idle_timeout_ms, 60000);
    cr_assert_eq(c.read_timeout_ms, 30000);
    cr_assert_eq(c.drain_timeout_ms, 10000);
    cr_assert_eq(c.max_connections, 10000);
    cr_assert_eq(c.max_pipeline, 64);
    cr_assert_eq(c.max_output_bytes, 1u << 20);
    cr_assert_eq(c.auth_cache_ttl_ms, 30000);
    cr_assert_eq(c.log_level, EG_LOG_INFO);
    cr_assert(c.access_log);
    cr_assert_str_eq(c.cors_origins, "*");
    cr_assert_str_eq(c.mount[0], "/hindsight");
    cr_assert_str_eq(c.mount[1], "/fency");
    cr_assert_str_eq(c.mount[2], "/faosx");
    cr_assert_str_eq(c.mount[3], "/fiberwise");
    cr_assert_str_eq(c.mount[4], "/cadenya");
    cr_assert_str_eq(eg_config_face_names[0], "hindsight");
    cr_assert_str_eq(eg_config_face_names[4], "cadenya");
}

Test(config, env_sets_everything)
{
    static const char *const env[] = {
        "ENGRAM_LISTEN",
        "0.0.0.0:9000",
        "ENGRAM_REDIS_URL",
        "redis://db:6380/2",
        "ENGRAM_REDIS_POOL",
        "8",
        "ENGRAM_REDIS_TIMEOUT",
        "750ms",
        "ENGRAM_REDIS_CONNECT_TIMEOUT",
        "3",
        "ENGRAM_MAX_HEADER_SIZE",
        "32k",
        "ENGRAM_MAX_BODY_SIZE",
        "1g",
        "ENGRAM_MAX_URL_SIZE",
        "4096",
        "ENGRAM_IDLE_TIMEOUT",
        "2m",
        "ENGRAM_READ_TIMEOUT",
        "10s",
        "ENGRAM_DRAIN_TIMEOUT",
        "0",
        "ENGRAM_MAX_CONNECTIONS",
        "500",
        "ENGRAM_MAX_PIPELINE",
        "16",
        "ENGRAM_MAX_OUTPUT_BUFFER",
        "4m",
        "ENGRAM_AUTH_CACHE_TTL",
        "1h",
        "ENGRAM_LOG_LEVEL",
        "DEBUG",
        "ENGRAM_ACCESS_LOG",
        "off",
        "ENGRAM_CORS_ORIGINS",
        "https://a.example,https://b.example",
        "ENGRAM_MOUNT_HINDSIGHT",
        "/",
        "ENGRAM_MOUNT_FENCY",
        "api/fency/",
        "ENGRAM_MOUNT_FAOSX",
        "/x",
        "ENGRAM_MOUNT_FIBERWISE",
        "/fw",
        "ENGRAM_MOUNT_CADENYA",
        "/c/v1",
        NULL,
    };
    eg_config_t c;
    char err[256] = "";

    eg_config_defaults(&c);
    cr_assert_eq(from_env(&c, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 9000);
    cr_assert_str_eq(c.redis_url, "redis://db:6380/2");
    cr_assert_eq(c.redis_pool, 8);
    cr_assert_eq(c.redis_timeout_ms, 750);
    cr_assert_eq(c.redis_connect_timeout_ms, 3000);
    cr_assert_eq(c.max_header_bytes, 32768);
    cr_assert_eq(c.max_body_bytes, (size_t)1 << 30);
    cr_assert_eq(c.max_url_bytes, 4096);
    cr_assert_eq(c.idle_timeout_ms, 120000);
    cr_assert_eq(c.read_timeout_ms, 10000);
    cr_assert_eq(c.drain_timeout_ms, 0);
    cr_assert_eq(c.max_connections, 500);
    cr_assert_eq(c.max_pipeline, 16);
    cr_assert_eq(c.max_output_bytes, 4u << 20);
    cr_assert_eq(c.auth_cache_ttl_ms, 3600000);
    cr_assert_eq(c.log_level, EG_LOG_DEBUG);
    cr_assert_not(c.access_log);
    cr_assert_str_eq(c.cors_origins, "https://a.example,https://b.example");
    cr_assert_str_eq(c.mount[0], "");
    cr_assert_str_eq(c.mount[1], "/api/fency");
    cr_assert_str_eq(c.mount[2], "/x");
    cr_assert_str_eq(c.mount[3], "/fw");
    cr_assert_str_eq(c.mount[4], "/c/v1");
}

Test(config, empty_env_is_unset_except_mounts)
{
    static const char *const env[] = {
        "ENGRAM_REDIS_POOL", "", "ENGRAM_LOG_LEVEL", "", "ENGRAM_MOUNT_FENCY", "", NULL};
    eg_config_t c;
    char err[256] = "";

    eg_config_defaults(&c);
    cr_assert_eq(from_env(&c, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.redis_pool, 4);
    cr_assert_eq(c.log_level, EG_LOG_INFO);
    cr_assert_str_eq(c.mount[1], "");
}

Test(config, real_getenv)
{
    eg_config_t c;
    char err[256] = "";

    setenv("ENGRAM_REDIS_POOL", "7", 1);
    eg_config_defaults(&c);
    cr_assert_eq(eg_config_from_env(&c, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.redis_pool, 7);
    unsetenv("ENGRAM_REDIS_POOL");
}

Test(config, flags_both_syntaxes)
{
    eg_config_t c;
    char err[256] = "";

    eg_config_defaults(&c);
    cr_assert_eq(
        eg_config_from_args(&c,
                            ARGS("serve", "--listen", ":7000", "--redis-pool=12", "--max-body-size",
                                 "2m", "--access-log=false", "--log-level", "warn",
                                 "--mount-cadenya=/", "--cors-origins", "https://x.example",
                                 "--redis-url=unix:///run/redis.sock", "--auth-cache-ttl=0",
                                 "--read-timeout", "45"),
                            1, err, sizeof(err)),
        0, "%s", err);
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 7000);
    cr_assert_eq(c.redis_pool, 12);
    cr_assert_eq(c.max_body_bytes, 2u << 20);
    cr_assert_not(c.access_log);
    cr_assert_eq(c.log_level, EG_LOG_WARN);
    cr_assert_str_eq(c.mount[4], "");
    cr_assert_str_eq(c.cors_origins, "https://x.example");
    cr_assert_str_eq(c.redis_url, "unix:///run/redis.sock");
    cr_assert_eq(c.auth_cache_ttl_ms, 0);
    cr_assert_eq(c.read_timeout_ms, 45000);
}

Test(config, precedence_flags_over_env_over_defaults)
{
    static const char *const env[] = {
        "ENGRAM_REDIS_POOL", "8", "ENGRAM_MAX_PIPELINE", "32", "ENGRAM_LISTEN",
        "10.0.0.1:81",       NULL};
    eg_config_t c;
    char err[256] = "";

    eg_config_defaults(&c);
    cr_assert_eq(from_env(&c, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(eg_config_from_args(&c, ARGS("serve", "--redis-pool", "16", "--listen", "82"), 1,
                                     err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c.redis_pool, 16);              /* flag beats env */
    cr_assert_eq(c.max_pipeline, 32);            /* env beats default */
    cr_assert_eq(c.max_connections, 10000);      /* default stays */
    cr_assert_str_eq(c.listen_host, "10.0.0.1"); /* a bare port keeps the host */
    cr_assert_eq(c.listen_port, 82);
}

Test(config, help)
{
    eg_config_t c;
    char err[256] = "";

    eg_config_defaults(&c);
    cr_assert_eq(eg_config_from_args(&c, ARGS("serve", "--help"), 1, err, sizeof(err)), 1);
    cr_assert_eq(
        eg_config_from_args(&c, ARGS("serve", "--redis-pool", "5", "-h"), 1, err, sizeof(err)), 1);
    cr_assert_eq(eg_config_from_args(&c, ARGS("serve"), 1, err, sizeof(err)), 0);
}

static void check_arg_error(const char *flag, const char *value, const char *want)
{
    eg_config_t c;
    char err[512] = "";
    char *argv[] = {"serve", (char *)flag, (char *)value, NULL};
    int argc = value != NULL ? 3 : 2;

    eg_config_defaults(&c);
    cr_assert_eq(eg_config_from_args(&c, argc, argv, 1, err, sizeof(err)), EG_EINVAL,
                 "%s %s should fail", flag, value != NULL ? value : "");
    cr_assert_not_null(strstr(err, want), "error for %s %s was \"%s\", wanted \"%s\"", flag,
                       value != NULL ? value : "", err, want);
}

static void check_env_error(const char *name, const char *value, const char *want)
{
    const char *env[] = {name, value, NULL};
    eg_config_t c;
    char err[512] = "";

    eg_config_defaults(&c);
    cr_assert_eq(from_env(&c, env, err, sizeof(err)), EG_EINVAL, "%s=%s should fail", name, value);
    cr_assert_not_null(strstr(err, want), "error for %s=%s was \"%s\", wanted \"%s\"", name, value,
                       err, want);
}

Test(config, flag_syntax_errors)
{
    check_arg_error("--nope", "1", "unknown flag \"--nope\"");
    check_arg_error("--nope=1", NULL, "unknown flag \"--nope\"");
    check_arg_error("-x", NULL, "unknown flag \"-x\"");
    check_arg_error("stray", NULL, "unexpected argument \"stray\"");
    check_arg_error("-", NULL, "unexpected argument \"-\"");
    check_arg_error("--", NULL, "unexpected argument \"--\"");
    check_arg_error("--listen", NULL, "--listen requires a value");
    check_arg_error("--listen", "--redis-pool", "--listen requires a value");
    check_arg_error("--help=yes", NULL, "--help takes no value");
}

Test(config, value_errors_name_flag_and_value)
{
    check_arg_error("--redis-pool", "abc",
                    "--redis-pool: invalid value \"abc\": expected an "
                    "integer from 1 to 64");
    check_arg_error("--redis-pool", "0", "--redis-pool: invalid value \"0\"");
    check_arg_error("--redis-pool", "65", "--redis-pool: invalid value \"65\"");
    check_arg_error("--max-connections", "0", "--max-connections: invalid value \"0\"");
    check_arg_error("--max-pipeline", "-1", "--max-pipeline: invalid value \"-1\"");
    check_arg_error("--max-header-size", "0", "--max-header-size: invalid value \"0\"");
    check_arg_error("--max-body-size", "10q",
                    "--max-body-size: invalid value \"10q\": expected "
                    "a size");
    check_arg_error("--max-url-size", "", "--max-url-size: invalid value \"\"");
    check_arg_error("--max-output-buffer=-1m", NULL, "--max-output-buffer: invalid value \"-1m\"");
    check_arg_error("--redis-timeout", "0",
                    "--redis-timeout: invalid value \"0\": expected a "
                    "duration");
    check_arg_error("--redis-connect-timeout", "5x", "--redis-connect-timeout: invalid value");
    check_arg_error("--idle-timeout", "2d", "--idle-timeout: invalid value \"2d\"");
    check_arg_error("--read-timeout", "1.5s", "--read-timeout: invalid value \"1.5s\"");
    check_arg_error("--drain-timeout", "-1", "--drain-timeout: invalid value \"-1\"");
    check_arg_error("--auth-cache-ttl", "forever", "--auth-cache-ttl: invalid value \"forever\"");
    check_arg_error("--log-level", "loud",
                    "--log-level: invalid value \"loud\": expected one of "
                    "debug, info, warn, error, off");
    check_arg_error("--access-log", "maybe",
                    "--access-log: invalid value \"maybe\": expected one "
                    "of on, off, true, false, 1, 0");
    check_arg_error("--cors-origins", "a\r\nX-Evil: 1",
                    "--cors-origins: invalid value "
                    "\"a??X-Evil: 1\"");
    check_arg_error("--redis-url", "http://x",
                    "--redis-url: invalid value \"http://x\": "
                    "expected a redis:// or unix:// URL");
    check_arg_error("--mount-fency", "/a b", "--mount-fency: invalid value \"/a b\"");
    check_arg_error("--mount-fency", "/{id}", "--mount-fency: invalid value \"/{id}\"");
    check_arg_error("--mount-faosx", "/a/../b", "--mount-faosx: invalid value");
    check_arg_error("--mount-hindsight", "/fency",
                    "faces hindsight and fency are both mounted at "
                    "\"/fency\"");
}

Test(config, listen_errors)
{
    check_arg_error("--listen", "localhost",
                    "--listen: invalid value \"localhost\": expected "
                    "host:port");
    check_arg_error("--listen", "host:", "--listen: invalid value \"host:\"");
    check_arg_error("--listen", "host:70000", "--listen: invalid value \"host:70000\"");
    check_arg_error("--listen", "host:-1", "--listen: invalid value");
    check_arg_error("--listen", "::1:80", "--listen: invalid value \"::1:80\"");
    check_arg_error("--listen", "[::1]", "--listen: invalid value \"[::1]\"");
    check_arg_error("--listen", "bad host:80", "--listen: invalid value");
}

Test(config, env_errors_name_variable)
{
    check_env_error("ENGRAM_REDIS_POOL", "100",
                    "ENGRAM_REDIS_POOL: invalid value \"100\": "
                    "expected an integer from 1 to 64");
    check_env_error("ENGRAM_LISTEN", "nope", "ENGRAM_LISTEN: invalid value \"nope\"");
    check_env_error("ENGRAM_MAX_BODY_SIZE", "0", "ENGRAM_MAX_BODY_SIZE: invalid value \"0\"");
    check_env_error("ENGRAM_IDLE_TIMEOUT", "soon", "ENGRAM_IDLE_TIMEOUT: invalid value \"soon\"");
    check_env_error("ENGRAM_ACCESS_LOG", "2", "ENGRAM_ACCESS_LOG: invalid value \"2\"");
    check_env_error("ENGRAM_LOG_LEVEL", "trace", "ENGRAM_LOG_LEVEL: invalid value \"trace\"");
    check_env_error("ENGRAM_MOUNT_CADENYA", "/a//b", "ENGRAM_MOUNT_CADENYA: invalid value");
    check_env_error("ENGRAM_MOUNT_FAOSX", "/fency",
                    "ENGRAM_MOUNT_*: faces fency and faosx are "
                    "both mounted at \"/fency\"");
}

Test(config, redis_url_error_masks_password)
{
    check_arg_error("--redis-url", "https://user:s3cret@host:6379",
                    "invalid value \"https://***@host:6379\"");
    check_env_error("ENGRAM_REDIS_URL", "redis:/user:s3cret@host", "ENGRAM_REDIS_URL: invalid");
}

Test(config, long_value_is_truncated_in_message)
{
    char big[600];
    char err[512] = "";
    eg_config_t c;
    char *argv[] = {"serve", "--log-level", big, NULL};

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    eg_config_defaults(&c);
    cr_assert_eq(eg_config_from_args(&c, 3, argv, 1, err, sizeof(err)), EG_EINVAL);
    cr_assert_not_null(strstr(err, "...\": expected one of"), "%s", err);
    cr_assert_lt(strlen(err), 400);
}

Test(config, failed_value_leaves_field_alone)
{
    eg_config_t c;
    char err[256];

    eg_config_defaults(&c);
    cr_assert_eq(
        eg_config_from_args(&c, ARGS("serve", "--listen", "host:99999"), 1, err, sizeof(err)),
        EG_EINVAL);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 8080);
}

Test(config, parse_listen)
{
    eg_config_t c;

    eg_config_defaults(&c);
    cr_assert_eq(eg_config_parse_listen(&c, "0.0.0.0:9000"), 0);
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 9000);
    cr_assert_eq(eg_config_parse_listen(&c, "localhost:0"), 0);
    cr_assert_str_eq(c.listen_host, "localhost");
    cr_assert_eq(c.listen_port, 0);
    cr_assert_eq(eg_config_parse_listen(&c, "65535"), 0);
    cr_assert_str_eq(c.listen_host, "localhost");
    cr_assert_eq(c.listen_port, 65535);
    cr_assert_eq(eg_config_parse_listen(&c, ":8081"), 0);
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 8081);
    cr_assert_eq(eg_config_parse_listen(&c, "[::1]:8080"), 0);
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.listen_port, 8080);
    cr_assert_eq(eg_config_parse_listen(&c, "[::]:80"), 0);
    cr_assert_str_eq(c.listen_host, "::");

    cr_assert_eq(eg_config_parse_listen(&c, ""), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, NULL), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, ":"), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, "65536"), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, "[]:80"), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, "[::1:80"), EG_EINVAL);
    cr_assert_eq(eg_config_parse_listen(&c, "h:8a"), EG_EINVAL);
    cr_assert_str_eq(c.listen_host, "::", "failed parses leave the config alone");
    cr_assert_eq(c.listen_port, 80);
}

static void check_prefix(const char *in, const char *want)
{
    char out[128];

    cr_assert_eq(eg_config_normalize_prefix(in, out, sizeof(out)), 0, "prefix \"%s\"", in);
    cr_assert_str_eq(out, want, "prefix \"%s\"", in);
}

Test(config, normalize_prefix)
{
    char small[5];

    check_prefix("", "");
    check_prefix("/", "");
    check_prefix("//", "");
    check_prefix("hindsight", "/hindsight");
    check_prefix("/hindsight", "/hindsight");
    check_prefix("/hindsight/", "/hindsight");
    check_prefix("/a/b/", "/a/b");
    check_prefix("/v1.0/x~y_z-w", "/v1.0/x~y_z-w");
    check_prefix("/a.b", "/a.b");

    cr_assert_eq(eg_config_normalize_prefix("/a//b", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/a/./b", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/..", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/a{b}", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/a b", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/a?b", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("/a%20", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix(NULL, small, sizeof(small)), EG_EINVAL);
    /* "/abcd" needs 6 bytes with its NUL. */
    cr_assert_eq(eg_config_normalize_prefix("abcd", small, sizeof(small)), EG_EINVAL);
    cr_assert_eq(eg_config_normalize_prefix("abc", small, sizeof(small)), 0);
    cr_assert_str_eq(small, "/abc");
}

Test(config, usage_lists_every_flag)
{
    static const char *const want[] = {
        "--listen",
        "ENGRAM_LISTEN",
        "127.0.0.1:8080",
        "--redis-url",
        "ENGRAM_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "--redis-pool",
        "ENGRAM_REDIS_POOL",
        "--redis-timeout",
        "ENGRAM_REDIS_TIMEOUT",
        "--redis-connect-timeout",
        "ENGRAM_REDIS_CONNECT_TIMEOUT",
        "--max-header-size",
        "ENGRAM_MAX_HEADER_SIZE",
        "default 16k",
        "--max-body-size",
        "ENGRAM_MAX_BODY_SIZE",
        "default 10m",
        "--max-url-size",
        "ENGRAM_MAX_URL_SIZE",
        "default 8k",
        "--idle-timeout",
        "ENGRAM_IDLE_TIMEOUT",
        "default 60s",
        "--read-timeout",
        "ENGRAM_READ_TIMEOUT",
        "--drain-timeout",
        "ENGRAM_DRAIN_TIMEOUT",
        "--max-connections",
        "ENGRAM_MAX_CONNECTIONS",
        "default 10000",
        "--max-pipeline",
        "ENGRAM_MAX_PIPELINE",
        "--max-output-buffer",
        "ENGRAM_MAX_OUTPUT_BUFFER",
        "--auth-cache-ttl",
        "ENGRAM_AUTH_CACHE_TTL",
        "--log-level",
        "ENGRAM_LOG_LEVEL",
        "default info",
        "--access-log",
        "ENGRAM_ACCESS_LOG",
        "--cors-origins",
        "ENGRAM_CORS_ORIGINS",
        "default *",
        "--mount-hindsight",
        "ENGRAM_MOUNT_HINDSIGHT",
        "default /hindsight",
        "--mount-fency",
        "ENGRAM_MOUNT_FENCY",
        "--mount-faosx",
        "ENGRAM_MOUNT_FAOSX",
        "--mount-fiberwise",
        "ENGRAM_MOUNT_FIBERWISE",
        "--mount-cadenya",
        "ENGRAM_MOUNT_CADENYA",
        "default /cadenya",
        "--help",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    eg_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}
