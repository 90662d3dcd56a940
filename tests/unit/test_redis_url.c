/* eg_redis_url_parse: schemes, userinfo, IPv6, ports, db range, unix sockets. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"

static void quiet(void)
{
    eg_log_set_level(EG_LOG_OFF);
}

TestSuite(redis_url, .init = quiet);

Test(redis_url, host_only_defaults)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://localhost", &u), 0);
    cr_assert_str_eq(u.host, "localhost");
    cr_assert_eq(u.port, 6379);
    cr_assert_eq(u.db, 0);
    cr_assert_str_empty(u.user);
    cr_assert_str_empty(u.password);
    cr_assert_str_empty(u.unix_path);
}

Test(redis_url, port_and_db)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://127.0.0.1:6390/3", &u), 0);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 6390);
    cr_assert_eq(u.db, 3);
    cr_assert_eq(eg_redis_url_parse("redis://h/", &u), 0);
    cr_assert_eq(u.db, 0);
    cr_assert_eq(eg_redis_url_parse("redis://h:1/15", &u), 0);
    cr_assert_eq(u.port, 1);
    cr_assert_eq(u.db, 15);
}

Test(redis_url, userinfo)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://alice:s3cret@db.internal:7000/2", &u), 0);
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.password, "s3cret");
    cr_assert_str_eq(u.host, "db.internal");
    cr_assert_eq(u.port, 7000);
    cr_assert_eq(u.db, 2);

    cr_assert_eq(eg_redis_url_parse("redis://:onlypass@h", &u), 0);
    cr_assert_str_empty(u.user);
    cr_assert_str_eq(u.password, "onlypass");

    /* No ':' in userinfo: the whole thing is the password (as redis-cli reads it). */
    cr_assert_eq(eg_redis_url_parse("redis://bare@h", &u), 0);
    cr_assert_str_empty(u.user);
    cr_assert_str_eq(u.password, "bare");
}

Test(redis_url, percent_decoded_password)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://:p%40ss%3Aw%2Frd%25@h:1", &u), 0);
    cr_assert_str_eq(u.password, "p@ss:w/rd%");
    cr_assert_eq(eg_redis_url_parse("redis://u%20x:y@h", &u), 0);
    cr_assert_str_eq(u.user, "u x");
    cr_assert_eq(eg_redis_url_parse("redis://:bad%4@h", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://:bad%zz@h", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://:nul%00@h", &u), EG_EINVAL);
}

Test(redis_url, ipv6)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://[::1]:6380/1", &u), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 1);
    cr_assert_eq(eg_redis_url_parse("redis://:pw@[fe80::1:2]", &u), 0);
    cr_assert_str_eq(u.host, "fe80::1:2");
    cr_assert_eq(u.port, 6379);
    cr_assert_str_eq(u.password, "pw");
    cr_assert_eq(eg_redis_url_parse("redis://[::1", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://[]:1", &u), EG_EINVAL);
}

Test(redis_url, unix_socket)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("unix:///var/run/redis/redis.sock", &u), 0);
    cr_assert_str_eq(u.unix_path, "/var/run/redis/redis.sock");
    cr_assert_str_empty(u.host);
    cr_assert_eq(u.db, 0);
    cr_assert_eq(eg_redis_url_parse("unix:///tmp/r.sock?db=7", &u), 0);
    cr_assert_str_eq(u.unix_path, "/tmp/r.sock");
    cr_assert_eq(u.db, 7);
    cr_assert_eq(eg_redis_url_parse("unix://:pw@/tmp/r.sock", &u), 0);
    cr_assert_str_eq(u.password, "pw");
    cr_assert_str_eq(u.unix_path, "/tmp/r.sock");
    cr_assert_eq(eg_redis_url_parse("unix://relative.sock", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("unix:///tmp/r.sock?db=16", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("unix:///tmp/r.sock?timeout=1", &u), EG_EINVAL);
}

Test(redis_url, rejects)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("rediss://h:6380", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("http://h", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("h:6379", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h:0", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h:65536", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h:", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h:12x", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h/16", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h/-1", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h/1/2", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h/abc", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h?x=1", &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse(NULL, &u), EG_EINVAL);
    cr_assert_eq(eg_redis_url_parse("redis://h", NULL), EG_EINVAL);
}

Test(redis_url, failure_clears_output)
{
    eg_redis_url_t u;

    cr_assert_eq(eg_redis_url_parse("redis://:secret@h/99", &u), EG_EINVAL);
    cr_assert_str_empty(u.password);
    cr_assert_str_empty(u.host);
}

Test(redis_url, too_long)
{
    eg_redis_url_t u;
    char url[600];

    memset(url, 'a', sizeof(url));
    memcpy(url, "redis://", 8);
    url[sizeof(url) - 1] = '\0';
    cr_assert_eq(eg_redis_url_parse(url, &u), EG_EINVAL);
}
