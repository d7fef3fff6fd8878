/*
 * exec_spool: the receipt spool of `gsap-broker exec` (gsh's self-authorized fallback).
 *
 * When GSAP_SELF_AUTH=1 and the broker cannot be reached, exec runs the command anyway and
 * writes its Completion Receipt (with "self_authorized": true) to a new file in
 * GSAP_SPOOL_DIR; `gsap-broker exec --flush-spool` later posts every spooled receipt to
 * POST /governance/complete/.
 *
 * The directory is created 0700; an existing one must be a directory owned by this user and
 * writable by nobody else, else it is refused (another user could plant or remove receipts).
 * Files are "cr-<UTC time>-<random>.json", 0600, written under a temporary name and renamed,
 * so a flush never reads half a receipt. A flush removes a file only after the broker's 200;
 * a definitive refusal (4xx other than 401, 403, 404 context_not_found, 408 and 429) renames it
 * to "<name>.rejected" and reports it, so the evidence stays for a person to look at. Both kinds
 * count towards CLI_SPOOL_MAX_FILES.
 *
 * Main thread of a CLI process; blocking file and network I/O.
 */
#ifndef CLI_EXEC_SPOOL_H
#define CLI_EXEC_SPOOL_H

#include <stddef.h>
#include <stdio.h>

#include "exec_http.h"

#define CLI_SPOOL_MAX_FILES 1000        /* spooled and rejected receipts kept at most */
#define CLI_SPOOL_MAX_BYTES (64 * 1024) /* one spooled receipt, bytes */
#define CLI_SPOOL_DIR_MODE 0700
#define CLI_SPOOL_FILE_MODE 0600
#define CLI_SPOOL_NAME_MAX 96
#define CLI_SPOOL_PREFIX "cr-"
#define CLI_SPOOL_SUFFIX ".json"
#define CLI_SPOOL_REJECTED ".rejected"

/*
 * cli_spool_open: opens dir (creating it CLI_SPOOL_DIR_MODE when create and it is missing) and
 * checks it: a directory, not a symbolic link, owned by the effective user, no group or world
 * write bit. On 0 *dirfd is an O_DIRECTORY descriptor the caller closes. Returns BRK_EIO or
 * BRK_EFORBIDDEN (wrong owner or mode), with err saying why.
 */
int cli_spool_open(const char *dir, int create, int *dirfd, char *err, size_t errlen);

/* cli_spool_count: the spool's files (spooled and rejected), or BRK_EIO. */
int cli_spool_count(int dirfd);

/*
 * cli_spool_write: writes body (a CR, NUL-terminated JSON) to a new spool file; its name goes
 * to name (CLI_SPOOL_NAME_MAX). Returns 0, BRK_ELIMIT (CLI_SPOOL_MAX_FILES files already),
 * BRK_ETOOBIG (body over CLI_SPOOL_MAX_BYTES) or BRK_EIO, with err saying why.
 */
int cli_spool_write(int dirfd, const char *body, char name[CLI_SPOOL_NAME_MAX], char *err,
                    size_t errlen);

/* What a flush did. */
typedef struct cli_spool_report {
    int posted;      /* accepted (200) and removed */
    int kept;        /* still spooled: to be posted again later */
    int rejected;    /* refused for good, renamed to .rejected */
    int stop_rc;     /* why the flush stopped early: 0, or a cli_http error (BRK_EIO, ...) */
    int stop_status; /* or the HTTP status that stopped it (401, 403, 429, 5xx), else 0 */
} cli_spool_report_t;

/*
 * cli_spool_flush: posts every spooled receipt, oldest name first, with h. Writes one line per
 * file that was not posted to log ("<file>: <why>"). Stops at the first transfer failure, 5xx,
 * 401, 403 or 429 (each would fail every other file too); a 404 context_not_found (the broker
 * does not accept self-authorized receipts) keeps the file and goes on. Fills *rep.
 */
void cli_spool_flush(int dirfd, cli_http_t *h, FILE *log, cli_spool_report_t *rep);

#endif
