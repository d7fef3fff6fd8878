/*
 * exec_env: what `gsap-broker exec` takes from its environment and what it hands to the
 * governed command.
 *
 * In: the AC, from GSAP_AC or `--ac FILE`, as JSON or as base64 (standard or url-safe, with or
 * without padding) of the JSON, as gsh accepts it. Secrets read from the environment are
 * copied and their bytes in the process's own environment block are overwritten, so
 * /proc/<pid>/environ of exec no longer shows them to the command it runs.
 *
 * Out: the command's environment is exec's minus every GSAP_* and CHRONICLE_* variable: the
 * command is what is being governed, and a broker URL, token or AC in its reach would let it
 * post its own receipt for the context (or use the token for anything else).
 *
 * Main thread of a CLI process; nothing here is thread-safe (it edits the environment).
 */
#ifndef CLI_EXEC_ENV_H
#define CLI_EXEC_ENV_H

#include <stddef.h>

#include <jansson.h>

#define CLI_AC_MAX (64 * 1024) /* bytes of GSAP_AC or of an --ac file, encoded */

/* The prefixes of the variables the command never sees. */
#define CLI_ENV_STRIP_PREFIXES                                                                     \
    {                                                                                              \
        "GSAP_", "CHRONICLE_", NULL                                                                \
    }

/*
 * cli_ac_decode: the AC in text (len bytes; JSON, or base64/base64url of JSON; surrounding
 * white space ignored) as a JSON object into *out (caller owns). Returns 0, BRK_ETOOBIG (over
 * CLI_AC_MAX) or BRK_EINVAL, with err saying why.
 */
int cli_ac_decode(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/*
 * cli_ac_read_file: the contents of path, at most CLI_AC_MAX bytes, into *text (malloc'd,
 * NUL-terminated, caller frees) and *len. Returns 0, BRK_ETOOBIG or BRK_EIO, with err set.
 */
int cli_ac_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);

/*
 * cli_env_take_secret: the value of the environment variable name (NULL when unset or empty)
 * as a malloc'd copy (caller frees), after overwriting the value's bytes in place in the
 * environment block with zeros (the variable stays, empty).
 */
char *cli_env_take_secret(const char *name);

/*
 * cli_env_for_child: a NULL-terminated copy of the current environment without the variables
 * whose names start with a prefix of CLI_ENV_STRIP_PREFIXES. The array is malloc'd (free it);
 * its strings are borrowed from environ. Call it before fork: the child must not allocate.
 */
char **cli_env_for_child(void);

/* cli_env_stripped: 1 when the entry "NAME=value" (or a bare name) is one the command must
 * not see. */
int cli_env_stripped(const char *entry);

#endif
