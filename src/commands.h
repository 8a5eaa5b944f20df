/*
 * commands: the entry point of every `sluice` subcommand.
 *
 * Each takes the arguments after the subcommand's name (argv[0] is the subcommand) and returns
 * the process exit status. Exit statuses are the same for every command (docs/cli.md):
 *   0  success (for `deploy --wait`: promoted)
 *   1  the answer is "no": a check refused, a deployment rolled back or failed, a judge failed
 *   2  usage error or invalid input (the message says which file/field/position)
 *   3  the server could not be reached or answered with an internal error
 *   4  not found (no such service, release, deployment)
 */
#ifndef SLUICE_COMMANDS_H
#define SLUICE_COMMANDS_H

enum {
	EXIT_OK = 0,
	EXIT_NO = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_NOTFOUND = 4,
};

/* control plane and data plane modes */
int cmd_server(int argc, char **argv);
int cmd_proxy(int argc, char **argv);

/* clients of the control plane API (src/cli/client.c and friends) */
int cmd_apply(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_deploy(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_can_i_deploy(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_token(int argc, char **argv);  /* src/cli/token.c */
int cmd_notify(int argc, char **argv); /* src/cli/notify.c */
int cmd_audit(int argc, char **argv);
int cmd_flags(int argc, char **argv);  /* src/cli/flags.c */
int cmd_flag(int argc, char **argv);

/* offline tools */
int cmd_judge(int argc, char **argv);    /* src/cli/judge.c */
int cmd_contract(int argc, char **argv); /* src/cli/contract.c */
int cmd_load(int argc, char **argv);     /* src/cli/load.c */

#endif
