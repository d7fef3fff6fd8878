/*
 * verify: `gsap-broker verify BUNDLE.json`, the offline check of an audit bundle (format and
 * checks: gov_bundle.h). No database, no network, no configuration: only the file. Main
 * thread of a CLI process.
 */
#ifndef CLI_VERIFY_H
#define CLI_VERIFY_H

#define CLI_VERIFY_MAX_BYTES (64u * 1024 * 1024) /* the largest bundle file read */
#define CLI_VERIFY_MAX_TEXT "67108864"           /* the same, for messages */

/*
 * cli_verify: argv[0] "verify", optionally "--keys" FILE (the broker's published key document,
 * /.well-known/gsap-broker.json, kept apart: the bundle's keys must be its keys), then the
 * bundle file ("-" reads stdin). Prints one line per
 * check ("PASS item" or "FAIL item: why") and a last line: "OK: N checks hold" or
 * "FAILED: M of N checks; first: item". Returns the exit code: 0 everything holds, 1 a check
 * failed (or the file is no JSON bundle), 2 bad usage or an unreadable file.
 */
int cli_verify(int argc, char **argv);

#endif
