/*
 * config: `gsap-broker config check`, the effective configuration as the broker would run
 * with it, and every setting that would stop it. Reads only the environment and the files the
 * settings name; starts nothing and connects to nothing. Main thread of a CLI process.
 */
#ifndef CLI_CONFIG_H
#define CLI_CONFIG_H

#include <stddef.h>

/*
 * cli_config_check: argv[0] is "check"; argc counts it. Prints one "NAME=value" line per
 * setting on stdout ("  (default)" after a value the environment left unset), secrets masked:
 * the password of a database connection string (and any other option libpq flags as secret)
 * is "***", and so are the user info and query of CHRONICLE_WEBHOOK_URL. Then checks what
 * brk_config_load and fn_runtime_settings check, plus the TLS certificate and key (read and
 * matched), the embedded cluster's binaries (when GSAP_DATABASE_URL is unset), the migrations
 * directory and the log file's directory. Each problem is one line on stderr naming the
 * variable. Returns the exit code: 0 valid, 1 an invalid setting, 2 bad usage.
 */
int cli_config_check(int argc, char **argv);

/*
 * cli_mask_conninfo: the libpq connection string (keywords or postgresql:// URI) conninfo as
 * "keyword=value ..." with every secret option's value "***", into out. Returns 0, or -1 when
 * libpq cannot parse it (out then says so).
 */
int cli_mask_conninfo(const char *conninfo, char *out, size_t cap);

#endif
