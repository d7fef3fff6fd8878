/*
 * brk_pgembed_int: what brk_pgembed.c (the cluster's life) and brk_pgembed_fs.c (its
 * directories and the child that runs as its user) share, and brk_pgroles.c, which writes
 * the embedded cluster's password file and reports like it; nothing else includes it.
 * Main thread only, blocking. Every function reports its own failures on stderr through
 * brk__pge_err (stderr, because a failing initdb or pg_ctl explains itself there too).
 */
#ifndef BRK_PGEMBED_INT_H
#define BRK_PGEMBED_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "brk_pgembed.h"

#define PGE_USER "postgres" /* the cluster's user when the broker runs as root */
#define PGE_MAX_GROUPS 64    /* supplementary groups kept for the postgres user */

typedef struct pge_ident {
    int drop; /* 1: the child switches to uid/gid/groups */
    uid_t uid;
    gid_t gid;
    gid_t groups[PGE_MAX_GROUPS];
    int ngroups;
} pge_ident_t;

/* brk__pge_err: "pgembed: " + the formatted message + newline on stderr. */
void brk__pge_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* brk__pge_ident_init: who runs initdb/pg_ctl: this process's ids, or as root the
 * PGE_USER user and its groups (looked up here, in the parent). Returns 0 or BRK_EIO. */
int brk__pge_ident_init(pge_ident_t *id);

/* brk__pge_run: forks, becomes id, and execs argv[0] with argv (stdout to /dev/null, stderr
 * inherited). With need_dir, the child first checks it can use that directory; with argv
 * NULL it only checks it can search need_dir and exits 0 (yes) or 1 (no). Returns the exit
 * status (0..255), or -1 when the child could not be started or was killed. */
int brk__pge_run(const pge_ident_t *id, char *const argv[], const char *need_dir);

/* brk__pge_ensure_dir: path is a directory with exactly mode, and group gid unless gid is
 * (gid_t)-1; created (one level) when missing. With nofollow a symlink is refused.
 * Returns 0 or BRK_EIO. */
int brk__pge_ensure_dir(const char *path, mode_t mode, gid_t gid, int nofollow);

/* brk__pge_chown_tree: gives everything under root to uid:gid, symlinks themselves, never
 * their targets; refuses a file with other hard links. Returns 0 or BRK_EIO. */
int brk__pge_chown_tree(const char *root, uid_t uid, gid_t gid);

/* brk__pge_path_chars_ok: 1 when p holds no character pg_ctl's shell or PostgreSQL's
 * comma-separated settings would misread (quotes, $, `, \, commas, !, space, controls). */
int brk__pge_path_chars_ok(const char *p);

/* brk__pge_write_private: creates path (exclusively, never through a symlink, mode 0600
 * from the first instant), writes (p, n), gives it to owner's uid:gid when owner is not NULL
 * and owner->drop is set, fsyncs it when sync is set; removes it again on any failure.
 * Shared by the initdb password file and brk_pgroles' password file. Returns 0 or BRK_EIO. */
int brk__pge_write_private(const char *path, const void *p, size_t n, const pge_ident_t *owner,
                           int sync);

/* brk__pge_join: a then b into out (capacity cap). Returns 0 or BRK_EIO when cut. */
int brk__pge_join(char *out, size_t cap, const char *a, const char *b);

#endif
