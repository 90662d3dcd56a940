/* Metrics: Prometheus text rendering, labels, histograms and gauges. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram/metrics.h"

static char *render(void)
{
    eg_buf_t b = EG_BUF_INIT;

    eg_metrics_render(&b);
    return b.data; /* caller frees */
}

static void assert_has(const char *text, const char *line)
{
    cr_assert_not_null(strstr(text, line), "missing \"%s\" in:\n%s", line, text);
}

static void setup(void)
{
    eg_metrics_reset();
}

TestSuite(metrics, .init = setup, .fini = eg_metrics_reset);

Test(metrics, empty_render_has_help_and_type)
{
    char *t = render();

    assert_has(t, "# HELP engram_http_requests_total ");
    assert_has(t, "# TYPE engram_http_requests_total counter\n");
    assert_has(t, "# TYPE engram_http_request_duration_seconds histogram\n");
    assert_has(t, "# TYPE engram_http_connections_open gauge\n");
    assert_has(t, "engram_http_connections_open 0\n");
    assert_has(t, "# TYPE engram_http_connections_rejected_total counter\n");
    assert_has(t, "engram_http_connections_rejected_total 0\n");
    assert_has(t, "# TYPE engram_redis_commands_total counter\n");
    assert_has(t, "engram_redis_commands_total 0\n");
    assert_has(t, "# TYPE engram_redis_errors_total counter\n");
    assert_has(t, "# TYPE engram_redis_command_duration_seconds histogram\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"+Inf\"} 0\n");
    assert_has(t, "engram_redis_command_duration_seconds_count 0\n");
    free(t);
}

Test(metrics, http_counter_per_label_set)
{
    char *t;

    eg_metrics_http("/v1/banks/{bank_id}", "GET", 200, 0.001);
    eg_metrics_http("/v1/banks/{bank_id}", "GET", 200, 0.002);
    eg_metrics_http("/v1/banks/{bank_id}", "GET", 404, 0.002);
    eg_metrics_http("/v1/banks/{bank_id}", "POST", 201, 0.002);
    eg_metrics_http(NULL, "GET", 404, 0.0001);
    t = render();
    assert_has(t, "engram_http_requests_total{route=\"/v1/banks/{bank_id}\",method=\"GET\","
                  "status=\"200\"} 2\n");
    assert_has(t, "engram_http_requests_total{route=\"/v1/banks/{bank_id}\",method=\"GET\","
                  "status=\"404\"} 1\n");
    assert_has(t, "engram_http_requests_total{route=\"/v1/banks/{bank_id}\",method=\"POST\","
                  "status=\"201\"} 1\n");
    assert_has(t, "engram_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} "
                  "1\n");
    /* The histogram is per route and method, not per status. */
    assert_has(t, "engram_http_request_duration_seconds_count{route=\"/v1/banks/{bank_id}\","
                  "method=\"GET\"} 3\n");
    free(t);
}

Test(metrics, histogram_buckets_are_cumulative)
{
    static const char *const want[] = {
        "le=\"0.0001\"} 1\n", "le=\"0.00025\"} 1\n", "le=\"0.0005\"} 2\n", "le=\"0.001\"} 3\n",
        "le=\"0.0025\"} 3\n", "le=\"0.005\"} 4\n",   "le=\"0.01\"} 4\n",   "le=\"0.025\"} 4\n",
        "le=\"0.05\"} 4\n",   "le=\"0.1\"} 4\n",     "le=\"0.25\"} 4\n",   "le=\"0.5\"} 4\n",
        "le=\"1\"} 4\n",      "le=\"2.5\"} 4\n",     "le=\"5\"} 4\n",      "le=\"10\"} 4\n",
        "le=\"+Inf\"} 5\n",
    };
    const char *prefix = "engram_http_request_duration_seconds_bucket{route=\"/x\","
                         "method=\"GET\",";
    char line[256];
    char *t;

    eg_metrics_http("/x", "GET", 200, 0.00005);
    eg_metrics_http("/x", "GET", 200, 0.0003);
    eg_metrics_http("/x", "GET", 200, 0.001); /* exactly on a bound: le is inclusive */
    eg_metrics_http("/x", "GET", 200, 0.003);
    eg_metrics_http("/x", "GET", 200, 20);
    t = render();
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(line, sizeof(line), "%s%s", prefix, want[i]);
        assert_has(t, line);
    }
    assert_has(t, "engram_http_request_duration_seconds_sum{route=\"/x\",method=\"GET\"} "
                  "20.00435\n");
    assert_has(t, "engram_http_request_duration_seconds_count{route=\"/x\",method=\"GET\"} 5\n");
    free(t);
}

Test(metrics, label_values_are_escaped)
{
    char *t;

    eg_metrics_http("/a\"b\\c\nd", "GE\"T", 400, 0.1);
    t = render();
    assert_has(t, "engram_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"GE\\\"T\","
                  "status=\"400\"} 1\n");
    free(t);
}

Test(metrics, connections)
{
    char *t;

    eg_metrics_conn_open(1);
    eg_metrics_conn_open(1);
    eg_metrics_conn_open(1);
    eg_metrics_conn_open(-1);
    eg_metrics_conn_rejected();
    eg_metrics_conn_rejected();
    t = render();
    assert_has(t, "engram_http_connections_open 2\n");
    assert_has(t, "engram_http_connections_rejected_total 2\n");
    free(t);
}

Test(metrics, redis)
{
    char *t;

    eg_metrics_redis(0.0002, false);
    eg_metrics_redis(0.003, false);
    eg_metrics_redis(6.0, true);
    t = render();
    assert_has(t, "engram_redis_commands_total 3\n");
    assert_has(t, "engram_redis_errors_total 1\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"0.00025\"} 1\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"0.005\"} 2\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"5\"} 2\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"10\"} 3\n");
    assert_has(t, "engram_redis_command_duration_seconds_bucket{le=\"+Inf\"} 3\n");
    assert_has(t, "engram_redis_command_duration_seconds_sum 6.0032\n");
    assert_has(t, "engram_redis_command_duration_seconds_count 3\n");
    free(t);
}

Test(metrics, named_gauges)
{
    char *t;

    eg_metrics_gauge_set("engram_redis_connected", "1 when Redis is reachable.", 0);
    eg_metrics_gauge_set("engram_redis_connected", "ignored second help", 1);
    eg_metrics_gauge_set("engram_index_banks", NULL, 12.5);
    eg_metrics_gauge_set("bad name", "x", 1);
    eg_metrics_gauge_set("9starts_with_digit", "x", 1);
    eg_metrics_gauge_set("", "x", 1);
    t = render();
    assert_has(t, "# HELP engram_redis_connected 1 when Redis is reachable.\n"
                  "# TYPE engram_redis_connected gauge\n"
                  "engram_redis_connected 1\n");
    assert_has(t, "# TYPE engram_index_banks gauge\nengram_index_banks 12.5\n");
    cr_assert_null(strstr(t, "bad name"));
    cr_assert_null(strstr(t, "9starts"));
    cr_assert_null(strstr(t, "ignored"));
    free(t);
}

Test(metrics, many_series_survive_growth)
{
    char route[64], line[160];
    char *t;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 500; i++) {
            snprintf(route, sizeof(route), "/r/%d", i);
            eg_metrics_http(route, "GET", 200 + (i % 3), 0.01);
        }
    }
    t = render();
    for (int i = 0; i < 500; i++) {
        snprintf(line, sizeof(line),
                 "engram_http_requests_total{route=\"/r/%d\",method=\"GET\",status=\"%d\"} 3\n", i,
                 200 + (i % 3));
        assert_has(t, line);
    }
    free(t);
}

Test(metrics, every_sample_line_is_well_formed)
{
    char *t, *save = NULL;

    eg_metrics_http("/x", "GET", 200, 0.01);
    eg_metrics_redis(0.01, false);
    eg_metrics_gauge_set("engram_up", "Up.", 1);
    t = render();
    for (char *line = strtok_r(t, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *sp, *end;

        if (line[0] == '#') {
            cr_assert(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0, "%s",
                      line);
            continue;
        }
        cr_assert(strncmp(line, "engram_", 7) == 0, "%s", line);
        sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "%s", line);
        strtod(sp + 1, &end);
        cr_assert_eq(*end, '\0', "bad value in %s", line);
    }
    free(t);
}

Test(metrics, reset_drops_everything)
{
    char *t;

    eg_metrics_http("/gone", "GET", 200, 0.01);
    eg_metrics_gauge_set("engram_gone", "x", 3);
    eg_metrics_redis(0.1, true);
    eg_metrics_conn_open(5);
    eg_metrics_reset();
    t = render();
    cr_assert_null(strstr(t, "/gone"));
    cr_assert_null(strstr(t, "engram_gone"));
    assert_has(t, "engram_redis_errors_total 0\n");
    assert_has(t, "engram_http_connections_open 0\n");
    free(t);
    /* Usable again after a reset. */
    eg_metrics_http("/back", "GET", 200, 0.01);
    t = render();
    assert_has(t, "route=\"/back\"");
    free(t);
}

Test(metrics, long_route_and_null_method_are_counted)
{
    char route[300], want[400];
    char *t;

    memset(route, 'r', sizeof(route) - 1);
    route[0] = '/';
    route[sizeof(route) - 1] = '\0';
    eg_metrics_http(route, "GET", 200, 0.01);
    eg_metrics_http(route, "GET", 200, 0.01);
    eg_metrics_http("/m", NULL, 500, 0.01);
    t = render();
    snprintf(want, sizeof(want), "{route=\"%s\",method=\"GET\",status=\"200\"} 2\n", route);
    assert_has(t, want);
    assert_has(t, "engram_http_requests_total{route=\"/m\",method=\"\",status=\"500\"} 1\n");
    free(t);
}

Test(metrics, same_labels_different_status_after_memo)
{
    char *t;

    /* Alternate statuses so a cached series must never be reused for the wrong labels. */
    for (int i = 0; i < 10; i++)
        eg_metrics_http("/alt", "GET", i % 2 ? 500 : 200, 0.01);
    t = render();
    assert_has(t, "engram_http_requests_total{route=\"/alt\",method=\"GET\",status=\"200\"} 5\n");
    assert_has(t, "engram_http_requests_total{route=\"/alt\",method=\"GET\",status=\"500\"} 5\n");
    assert_has(t, "engram_http_request_duration_seconds_count{route=\"/alt\",method=\"GET\"} 10\n");
    free(t);
}
