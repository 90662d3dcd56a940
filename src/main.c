/* engramd entry point: "serve" (the default) runs the server; "keys" and "workspaces" are
 * administrative subcommands (src/cli.c). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/cli.h"
#include "engram/config.h"
#include "engram/consolidate.h"
#include "engram/error.h"
#include "engram/events.h"
#include "engram/faces.h"
#include "engram/http.h"
#include "engram/library.h"
#include "engram/llm.h"
#include "engram/log.h"
#include "engram/mental_models.h"
#include "engram/mindex.h"
#include "engram/reflect.h"
#include "engram/retain.h"
#include "engram/store.h"
#include "engram/tasks.h"
#include "engram/tenancy.h"
#include "engram/util.h"
#include "engram/webhooks.h"

typedef struct {
    uv_loop_t *loop;
    eg_config_t cfg;
    eg_router_t *router;
    eg_server_t *server;
    uv_signal_t sigterm, sigint;
    uv_timer_t bootstrap;
    bool stopping;
} app_t;

static void on_store_closed(void *udata)
{
    app_t *app = udata;

    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->bootstrap, NULL);
}

static void on_webhooks_stopped(void *udata)
{
    app_t *app = udata;

    eg_log_info("webhook deliveries stopped; closing Redis");
    eg_llm_shutdown(); /* every user of a model or the embedder has stopped by now */
    eg_mindex_shutdown();
    eg_store_shutdown(on_store_closed, app);
}

static void on_tasks_stopped(void *udata)
{
    app_t *app = udata;

    /* Running webhook attempts get a few seconds to finish and be logged while Redis is up. */
    eg_log_info("agent task worker stopped; stopping webhook deliveries");
    eg_webhooks_stop(on_webhooks_stopped, app);
}

static void on_consolidation_stopped(void *udata)
{
    app_t *app = udata;

    /* Runs still going are taken over by another process (or this one after a restart). */
    eg_log_info("consolidation worker stopped; stopping the agent task worker");
    eg_tasks_stop(on_tasks_stopped, app);
}

static void on_retain_stopped(void *udata)
{
    app_t *app = udata;

    eg_log_info("retain worker stopped; stopping the consolidation worker");
    eg_consolidate_stop(on_consolidation_stopped, app);
}

static void on_reflect_stopped(void *udata)
{
    app_t *app = udata;

    /* Running retain jobs finish (or are left to be taken over) before Redis closes. */
    eg_log_info("mental-model refresh worker stopped; stopping the retain worker");
    eg_retain_stop(on_retain_stopped, app);
}

static void on_library_stopped(void *udata)
{
    app_t *app = udata;

    /* Library syncs index through retain: they stop first. */
    eg_log_info("library worker stopped; stopping the mental-model refresh worker");
    eg_reflect_stop(on_reflect_stopped, app);
}

static void on_drained(void *udata)
{
    app_t *app = udata;

    eg_log_info("all connections closed; stopping the library worker");
    eg_library_stop(on_library_stopped, app);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;

    if (app->stopping) {
        eg_log_warn("second %s: exiting now", signum == SIGINT ? "SIGINT" : "SIGTERM");
        exit(1);
    }
    app->stopping = true;
    eg_log_info("%s: draining %zu connection(s), up to %llu ms",
                signum == SIGINT ? "SIGINT" : "SIGTERM", eg_server_conn_count(app->server),
                (unsigned long long)app->cfg.drain_timeout_ms);
    uv_timer_stop(&app->bootstrap);
    eg_server_drain(app->server, on_drained, app);
}

static void on_bootstrapped(void *udata, int err, const eg_workspace_t *ws)
{
    app_t *app = udata;

    if (err) {
        eg_log_warn("creating the default workspace failed (%s); retrying", eg_strerror(err));
        return;
    }
    uv_timer_stop(&app->bootstrap);
    eg_log_debug("default workspace %s ready", ws->id);
}

/* The default account and workspace are created as soon as Redis answers (retried each second
 * while it does not). */
static void on_bootstrap_timer(uv_timer_t *t)
{
    app_t *app = t->data;

    if (!eg_store_up())
        return;
    if (eg_tenancy_bootstrap(on_bootstrapped, app) != 0)
        return;
    uv_timer_set_repeat(t, 5000); /* a reply is on its way; retry later only if it failed */
}

static int serve(int argc, char **argv, int first)
{
    static app_t app;
    static eg_llm_config_t llm_cfg; /* static: reachable on every early exit */
    char err[512];
    int rc;

    eg_config_defaults(&app.cfg);
    if (eg_config_from_env(&app.cfg, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "engramd: %s\n", err);
        return 2;
    }
    rc = eg_config_from_args(&app.cfg, argc, argv, first, err, sizeof(err));
    if (rc == 1) {
        eg_config_usage(stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "engramd: %s (see engramd --help)\n", err);
        return 2;
    }
    if (eg_llm_config_from_env(&llm_cfg, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "engramd: %s\n", err);
        return 2;
    }
    eg_log_set_level(app.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (eg_random_init() != 0) {
        eg_log_error("cannot seed the random generator");
        return 1;
    }

    app.loop = uv_default_loop();
    eg_store_opts_t so = {
        .url = app.cfg.redis_url,
        .pool = app.cfg.redis_pool,
        .cmd_timeout_ms = app.cfg.redis_timeout_ms,
        .connect_timeout_ms = app.cfg.redis_connect_timeout_ms,
    };
    if (eg_store_init(app.loop, &so) != 0) {
        eg_log_error("invalid Redis URL: %s", app.cfg.redis_url);
        return 2;
    }
    eg_tenancy_init(app.loop, app.cfg.auth_cache_ttl_ms);
    eg_mindex_init(app.loop, app.cfg.index_memory_bytes);
    rc = eg_llm_start(app.loop, &llm_cfg);
    eg_llm_config_free(&llm_cfg);
    if (rc != 0) {
        fprintf(stderr, "engramd: the LLM providers could not be set up (see the log)\n");
        return 2;
    }
    if (eg_webhooks_start(app.loop) != 0)
        return 2;
    if (eg_retain_start(app.loop) != 0)
        return 2;
    if (eg_reflect_start() != 0)
        return 2;
    if (eg_consolidate_start(app.loop) != 0)
        return 2;
    if (eg_library_start(app.loop) != 0)
        return 2;
    if (eg_tasks_start(app.loop) != 0)
        return 2;
    eg_mm_init();

    app.router = eg_router_new();
    if (eg_faces_mount_all(app.router, &app.cfg) != 0) {
        eg_log_error("route table is inconsistent (duplicate or malformed route)");
        return 1;
    }
    app.server = eg_server_new(app.loop, &app.cfg, app.router);
    rc = eg_server_listen(app.server);
    if (rc != 0) {
        eg_log_error("cannot listen on %s:%d: %s", app.cfg.listen_host, app.cfg.listen_port,
                     uv_strerror(rc));
        return 1;
    }
    eg_log_info("engramd %s listening on http://%s:%d (redis %s)", ENGRAM_VERSION,
                app.cfg.listen_host, eg_server_port(app.server), app.cfg.redis_url);

    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_timer_init(app.loop, &app.bootstrap);
    app.bootstrap.data = &app;
    uv_timer_start(&app.bootstrap, on_bootstrap_timer, 0, 1000);

    uv_run(app.loop, UV_RUN_DEFAULT);

    eg_server_free(app.server);
    eg_router_free(app.router);
    eg_events_shutdown();
    eg_tenancy_shutdown();
    uv_loop_close(app.loop);
    eg_log_info("engramd stopped");
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: engramd [serve] [flags]         run the server (see engramd serve --help)\n"
            "       engramd keys create [--workspace W] [--publishable] [--name N]\n"
            "       engramd keys list [--workspace W]\n"
            "       engramd keys revoke ID\n"
            "       engramd workspaces create NAME\n"
            "       engramd workspaces list\n"
            "       engramd --version\n"
            "Subcommands reach Redis through --redis-url or ENGRAM_REDIS_URL.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
            printf("engramd %s\n", ENGRAM_VERSION);
            return 0;
        }
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            usage(stdout);
            eg_config_usage(stdout);
            return 0;
        }
        return serve(argc, argv, 1);
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc, argv, 2);
    if (strcmp(argv[1], "keys") == 0 || strcmp(argv[1], "workspaces") == 0)
        return eg_cli_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "engramd: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
