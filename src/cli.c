/* Administrative subcommands: keys create|list|revoke, workspaces create|list. They run the same
 * async tenancy code as the server on a private loop, so there is one implementation of every
 * write. Each command is a small state machine (STYLE.md §9): bootstrap the default workspace,
 * resolve the target workspace when needed, then act. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engram/cli.h"
#include "engram/config.h"
#include "engram/error.h"
#include "engram/log.h"
#include "engram/store.h"
#include "engram/tenancy.h"
#include "engram/util.h"

typedef enum { CMD_KEYS_CREATE, CMD_KEYS_LIST, CMD_KEYS_REVOKE, CMD_WS_CREATE, CMD_WS_LIST } cmd_t;

typedef enum { STEP_CONNECT, STEP_BOOTSTRAP, STEP_RESOLVE, STEP_ACT, STEP_DONE } step_t;

typedef struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    cmd_t cmd;
    step_t step;
    int status; /* exit status */
    uint64_t waited_ms;
    uint64_t connect_timeout_ms;
    const char *workspace; /* name or id as given */
    const char *name;
    const char *arg; /* key id or workspace name */
    bool publishable;
    eg_workspace_t ws;
} cli_t;

static void cli_next(cli_t *cli);

static void cli_finish(cli_t *cli, int status)
{
    cli->status = status;
    cli->step = STEP_DONE;
    uv_timer_stop(&cli->timer);
    uv_close((uv_handle_t *)&cli->timer, NULL);
    eg_store_shutdown(NULL, NULL);
}

static void cli_fail(cli_t *cli, const char *what, int err)
{
    fprintf(stderr, "engramd: %s: %s\n", what, eg_strerror(err));
    cli_finish(cli, 1);
}

static void print_time(int64_t ms)
{
    char when[32];
    if (ms <= 0) {
        fputs("-", stdout);
        return;
    }
    eg_time_iso8601(ms, when);
    fputs(when, stdout);
}

static void on_key_created(void *udata, int err, const eg_apikey_t *key, const char *secret)
{
    cli_t *cli = udata;

    if (err) {
        cli_fail(cli, "creating the key failed", err);
        return;
    }
    printf("id: %s\nworkspace: %s (%s)\nkind: %s\nname: %s\n", key->id, cli->ws.name, cli->ws.id,
           eg_apikey_kind_name(key->kind), key->name);
    printf("%s\n", secret);
    cli_finish(cli, 0);
}

static void on_keys_listed(void *udata, int err, const eg_apikey_t *keys, size_t n)
{
    cli_t *cli = udata;

    if (err) {
        cli_fail(cli, "listing keys failed", err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s\t%s\t%s\t%s\t", keys[i].id, keys[i].workspace_id,
               eg_apikey_kind_name(keys[i].kind), keys[i].name);
        print_time(keys[i].created_ms);
        fputs("\t", stdout);
        print_time(keys[i].last_used_ms);
        fputs("\n", stdout);
    }
    cli_finish(cli, 0);
}

static void on_key_revoked(void *udata, int err)
{
    cli_t *cli = udata;

    if (err == EG_ENOTFOUND) {
        fprintf(stderr, "engramd: no API key with id %s\n", cli->arg);
        cli_finish(cli, 1);
        return;
    }
    if (err) {
        cli_fail(cli, "revoking the key failed", err);
        return;
    }
    printf("revoked %s\n", cli->arg);
    cli_finish(cli, 0);
}

static void on_ws_created(void *udata, int err, const eg_workspace_t *ws)
{
    cli_t *cli = udata;

    if (err == EG_ECONFLICT) {
        fprintf(stderr, "engramd: a workspace named '%s' already exists\n", cli->arg);
        cli_finish(cli, 1);
        return;
    }
    if (err) {
        cli_fail(cli, "creating the workspace failed", err);
        return;
    }
    printf("%s\t%s\n", ws->id, ws->name);
    cli_finish(cli, 0);
}

static void on_ws_listed(void *udata, int err, const eg_workspace_t *ws, size_t n)
{
    cli_t *cli = udata;

    if (err) {
        cli_fail(cli, "listing workspaces failed", err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s\t%s\n", ws[i].id, ws[i].name);
    cli_finish(cli, 0);
}

static void on_ws(void *udata, int err, const eg_workspace_t *ws)
{
    cli_t *cli = udata;

    if (err == EG_ENOTFOUND) {
        fprintf(stderr, "engramd: no workspace named or with id '%s'\n", cli->workspace);
        cli_finish(cli, 1);
        return;
    }
    if (err) {
        cli_fail(cli,
                 cli->step == STEP_BOOTSTRAP ? "creating the default workspace failed"
                                             : "looking up the workspace failed",
                 err);
        return;
    }
    cli->ws = *ws;
    cli->step++;
    cli_next(cli);
}

static void cli_next(cli_t *cli)
{
    int rc = 0;

    switch (cli->step) {
    case STEP_CONNECT:
        return; /* the timer moves on once Redis is up */
    case STEP_BOOTSTRAP:
        rc = eg_tenancy_bootstrap(on_ws, cli);
        break;
    case STEP_RESOLVE:
        if (cli->workspace == NULL || (cli->cmd != CMD_KEYS_CREATE && cli->cmd != CMD_KEYS_LIST)) {
            cli->step++;
            cli_next(cli);
            return;
        }
        rc = eg_workspace_get(cli->workspace, on_ws, cli);
        break;
    case STEP_ACT:
        switch (cli->cmd) {
        case CMD_KEYS_CREATE:
            rc = eg_apikey_create(cli->ws.id, cli->publishable ? EG_KEY_PUBLISHABLE : EG_KEY_SECRET,
                                  cli->name ? cli->name : "cli", on_key_created, cli);
            break;
        case CMD_KEYS_LIST:
            rc = eg_apikey_list(cli->ws.id, on_keys_listed, cli);
            break;
        case CMD_KEYS_REVOKE:
            rc = eg_apikey_revoke(NULL, cli->arg, on_key_revoked, cli);
            break;
        case CMD_WS_CREATE:
            rc = eg_workspace_create(cli->arg, on_ws_created, cli);
            break;
        case CMD_WS_LIST:
            rc = eg_workspace_list(on_ws_listed, cli);
            break;
        }
        break;
    case STEP_DONE:
        return;
    }
    if (rc)
        cli_fail(cli, "request failed", rc);
}

static void on_connect_poll(uv_timer_t *t)
{
    cli_t *cli = t->data;

    if (cli->step != STEP_CONNECT)
        return;
    if (eg_store_up()) {
        uv_timer_stop(t);
        cli->step = STEP_BOOTSTRAP;
        cli_next(cli);
        return;
    }
    cli->waited_ms += 50;
    if (cli->waited_ms >= cli->connect_timeout_ms) {
        fprintf(stderr, "engramd: cannot reach Redis: %s\n", eg_store_last_error());
        cli_finish(cli, 1);
    }
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "engramd: %s\n(see engramd --help)\n", msg);
    return 2;
}

int eg_cli_main(int argc, char **argv)
{
    eg_config_t cfg;
    cli_t cli;
    char err[512];
    int i;

    memset(&cli, 0, sizeof(cli));
    eg_config_defaults(&cfg);
    cfg.log_level = EG_LOG_WARN;
    if (eg_config_from_env(&cfg, NULL, err, sizeof(err)) != 0)
        return usage_error(err);
    if (argc < 2)
        return usage_error("missing action (create, list or revoke)");

    const char *group = argv[0], *action = argv[1];
    if (strcmp(group, "keys") == 0 && strcmp(action, "create") == 0)
        cli.cmd = CMD_KEYS_CREATE;
    else if (strcmp(group, "keys") == 0 && strcmp(action, "list") == 0)
        cli.cmd = CMD_KEYS_LIST;
    else if (strcmp(group, "keys") == 0 && strcmp(action, "revoke") == 0)
        cli.cmd = CMD_KEYS_REVOKE;
    else if (strcmp(group, "workspaces") == 0 && strcmp(action, "create") == 0)
        cli.cmd = CMD_WS_CREATE;
    else if (strcmp(group, "workspaces") == 0 && strcmp(action, "list") == 0)
        cli.cmd = CMD_WS_LIST;
    else
        return usage_error("unknown action");

    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--workspace") == 0 && v) {
            cli.workspace = v;
            i++;
        } else if (strcmp(a, "--name") == 0 && v) {
            cli.name = v;
            i++;
        } else if (strcmp(a, "--redis-url") == 0 && v) {
            snprintf(cfg.redis_url, sizeof(cfg.redis_url), "%s", v);
            i++;
        } else if (strcmp(a, "--publishable") == 0) {
            cli.publishable = true;
        } else if (a[0] != '-' && cli.arg == NULL) {
            cli.arg = a;
        } else {
            fprintf(stderr, "engramd: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if ((cli.cmd == CMD_KEYS_REVOKE || cli.cmd == CMD_WS_CREATE) && cli.arg == NULL)
        return usage_error(cli.cmd == CMD_KEYS_REVOKE ? "keys revoke needs a key id"
                                                      : "workspaces create needs a name");
    if ((cli.cmd == CMD_KEYS_CREATE || cli.cmd == CMD_KEYS_LIST || cli.cmd == CMD_WS_LIST) &&
        cli.arg)
        return usage_error("unexpected positional argument");
    if (cli.workspace && strcmp(cli.workspace, EG_DEFAULT_WORKSPACE) == 0 &&
        cli.cmd == CMD_KEYS_CREATE)
        cli.workspace = NULL; /* bootstrap already yields the default workspace */

    eg_log_set_level(cfg.log_level);
    if (eg_random_init() != 0)
        return usage_error("cannot seed the random generator");

    cli.loop = uv_default_loop();
    cli.connect_timeout_ms = cfg.redis_connect_timeout_ms + 3000;
    eg_store_opts_t so = {.url = cfg.redis_url,
                          .pool = 1,
                          .cmd_timeout_ms = cfg.redis_timeout_ms,
                          .connect_timeout_ms = cfg.redis_connect_timeout_ms};
    if (eg_store_init(cli.loop, &so) != 0)
        return usage_error("invalid Redis URL");
    uv_timer_init(cli.loop, &cli.timer);
    cli.timer.data = &cli;
    uv_timer_start(&cli.timer, on_connect_poll, 0, 50);
    uv_run(cli.loop, UV_RUN_DEFAULT);
    uv_loop_close(cli.loop);
    fflush(stdout);
    return cli.status;
}
