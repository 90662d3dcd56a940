/* engramd's administrative subcommands (keys, workspaces), talking to Redis directly. */
#ifndef ENGRAM_CLI_H
#define ENGRAM_CLI_H

/* Run "keys ..." or "workspaces ..." (argv[0] is the subcommand). Returns the exit status. */
int eg_cli_main(int argc, char **argv);

#endif
