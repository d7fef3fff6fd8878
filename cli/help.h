/*
 * help: the one description of the command line. `gsap-broker --help`, `gsap-broker help
 * COMMAND`, `gsap-broker COMMAND --help` and the man page (`gsap-broker help --man`, shipped
 * as docs/gsap-broker.1) are all printed from the tables in help.c, so they cannot disagree.
 * A subcommand or option added to the dispatcher gets its entry there (it_ops checks that
 * every command the usage lists answers --help, and that the man page is the committed one).
 */
#ifndef CLI_HELP_H
#define CLI_HELP_H

#include <stdio.h>

#define GSAP_BROKER_VERSION "0.1.0"

/* The git commit the binary was built from (`git describe --always --dirty`), or "unknown"
 * outside a git checkout: written at build time by tools/version.cmake. */
extern const char gsap_build_commit[];

/* cli_help_usage: the synopsis of every command, then a pointer to `help COMMAND`. Returns the
 * exit code for a usage message on f: 0 on stdout, 2 on stderr. */
int cli_help_usage(FILE *f);

/*
 * cli_help_lookup: the number of words of argv (argc of them, without the program name) that
 * name a command of the table ("keys create" is two), or 0 when they name none.
 */
int cli_help_lookup(int argc, char **argv);

/*
 * cli_help_main: `help` (argv[0]) with its arguments: none, the usage; COMMAND words, that
 * command's help; --man, the man page in roff. Returns the exit code (2: no such command).
 */
int cli_help_main(int argc, char **argv);

/* cli_help_command: the help of the command named by the words of argv (argc of them), on
 * stdout. Returns 0, or 2 with a message on stderr when there is no such command. */
int cli_help_command(int argc, char **argv);

/* cli_help_print: the help of the one-word command name ("exec") on f, from the same table.
 * Returns 0, or 2 when there is no such command. Main thread. */
int cli_help_print(FILE *f, const char *name);

#endif
