/*
 * brk_pgembed_fs: the embedded cluster's directories, their ownership, and the child process
 * that runs initdb and pg_ctl as the cluster's user (for brk_pgembed.c, via
 * brk_pgembed_int.h).
 *
 * Owns: who the cluster's user is (brk__pge_ident_init), fork/exec as that user
 * (brk__pge_run), directories with an exact mode and group (brk__pge_ensure_dir), giving a
 * tree to that user (brk__pge_chown_tree), private files (brk__pge_write_private), and
 * which path characters the cluster can use.
 * Invariants: NSS lookups happen in the parent only, the child makes system calls only; the
 * child closes every inherited descriptor above 2, resets signal dispositions and the mask,
 * and drops groups, gid and uid before exec (and checks that root cannot be regained);
 * directory checks and changes go through one descriptor, and symlinks are never followed
 * where the cluster's user could plant one. Main thread only, blocking.
 */
#include "brk_pgembed_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brk_err.h"
#include "brk_io.h"
#include "banned.h"

#define PGE_BAD_PATH_CHARS "'\"$`\\,!"

void brk__pge_err(const char *fmt, ...)
{
    va_list ap;

    fputs("pgembed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/*
 * brk__pge_ident_init: who runs initdb/pg_ctl. The user and its groups are looked up here, in the
 * parent, because NSS lookups (initgroups) are not safe in a child forked from a process
 * that may have other threads; the child only makes system calls.
 */
int brk__pge_ident_init(pge_ident_t *id)
{
    struct passwd *pw;
    int n = PGE_MAX_GROUPS;

    memset(id, 0, sizeof *id);
    if (geteuid() != 0) {
        id->uid = geteuid();
        id->gid = getegid();
        return 0;
    }
    errno = 0;
    pw = getpwnam(PGE_USER);
    if (pw == NULL) {
        brk__pge_err("user '%s' not found: as root the embedded cluster runs as that user",
                     PGE_USER);
        return BRK_EIO;
    }
    if (pw->pw_uid == 0) {
        brk__pge_err("user '%s' has uid 0: PostgreSQL refuses to run as root", PGE_USER);
        return BRK_EIO;
    }
    if (getgrouplist(pw->pw_name, pw->pw_gid, id->groups, &n) < 0) {
        brk__pge_err("user '%s' is in more than %d groups", PGE_USER, PGE_MAX_GROUPS);
        return BRK_EIO;
    }
    id->drop = 1;
    id->uid = pw->pw_uid;
    id->gid = pw->pw_gid;
    id->ngroups = n;
    return 0;
}

/* child_say: async-signal-safe message from a forked child. */
static void child_say(const char *a, const char *b, const char *c)
{
    ssize_t unused;

    unused = write(2, "pgembed: ", 9);
    unused = write(2, a, strlen(a));
    unused = write(2, b, strlen(b));
    unused = write(2, c, strlen(c));
    unused = write(2, "\n", 1);
    (void)unused;
}

/*
 * brk__pge_run: forks, becomes id, and execs argv[0] with argv. stdout goes to /dev/null (the
 * broker's stdout carries its JSON log); stderr is inherited, so a failing step explains itself.
 * When need_dir is set, the child first checks that it can use that directory. With argv NULL the
 * child only checks that it can search need_dir and exits 0 (yes) or 1 (no), silently.
 * Returns the exit status (0..255), or -1 when the child could not be started or was killed.
 */
int brk__pge_run(const pge_ident_t *id, char *const argv[], const char *need_dir)
{
    const char *what = argv != NULL ? argv[0] : "a directory check";
    pid_t pid, w;
    int status = 0;

    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        brk__pge_err("cannot fork for '%s': %s", what, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        sigset_t all;
        int sig, fd;

        for (sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        fd = open("/dev/null", O_WRONLY);
        if (fd >= 0 && fd != 1) {
            dup2(fd, 1);
            close(fd);
        }
        if (close_range(3, ~0U, 0) < 0) {
            for (fd = 3; fd < 1024; fd++)
                close(fd);
        }
        if (id->drop) {
            if (setgroups((size_t)id->ngroups, id->groups) < 0 || setgid(id->gid) < 0 ||
                setuid(id->uid) < 0 || setuid(0) == 0) {
                child_say("cannot switch to user ", PGE_USER, "");
                _exit(126);
            }
        }
        if (chdir("/") < 0)
            _exit(126);
        if (argv == NULL) /* a probe: can this user search need_dir (and all above it)? */
            _exit(access(need_dir, X_OK) == 0 ? 0 : 1);
        if (need_dir != NULL && access(need_dir, R_OK | W_OK | X_OK) < 0) {
            child_say("cannot use directory '", need_dir,
                      id->drop ? "' as user " PGE_USER
                                 " (every directory above it must be searchable by that user)"
                               : "'");
            _exit(126);
        }
        execv(argv[0], argv);
        child_say("cannot run '", argv[0], "'");
        _exit(127);
    }
    do {
        w = waitpid(pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        brk__pge_err("cannot wait for '%s': %s", what, strerror(errno));
        return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    brk__pge_err("'%s' was killed by signal %d", what, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -1;
}

/*
 * brk__pge_ensure_dir: path exists as a directory with exactly mode, group gid when gid is not -1.
 * Creates it (one level) when missing; narrows wider permissions. With nofollow, a symlink
 * is refused: as root, the directories under pg/ belong to postgres, who could otherwise
 * point one at /etc and have root chmod it. The checks and changes go through one
 * descriptor, so the path cannot be swapped between them.
 */
int brk__pge_ensure_dir(const char *path, mode_t mode, gid_t gid, int nofollow)
{
    struct stat st;
    int fd = -1, rc = BRK_EIO;

    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        brk__pge_err("cannot create directory '%s': %s", path, strerror(errno));
        goto out;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0 || fstat(fd, &st) < 0) {
        brk__pge_err("cannot open directory '%s': %s", path,
                     errno == ELOOP || errno == ENOTDIR ? "not a directory" : strerror(errno));
        goto out;
    }
    if (gid != (gid_t)-1 && st.st_gid != gid && fchown(fd, (uid_t)-1, gid) < 0) {
        brk__pge_err("cannot set the group of '%s': %s", path, strerror(errno));
        goto out;
    }
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0) {
        brk__pge_err("cannot set the mode of '%s' to %04o: %s", path, (unsigned)mode,
                     strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The tree walk has no user pointer; main thread only, so file-level state is fine. */
static uid_t chown_uid;
static gid_t chown_gid;
static char chown_failed[PATH_MAX];
static const char *chown_why;

/*
 * chown_one: one entry of the walk. Symlinks are changed themselves (lchown), never
 * followed. A file with several hard links that needs changing is refused: it may be a link
 * to a file outside the tree (possible where fs.protected_hardlinks is off).
 */
static int chown_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (st->st_uid == chown_uid && st->st_gid == chown_gid)
        return 0;
    if (type == FTW_NS || type == FTW_DNR)
        chown_why = "cannot read it";
    else if (!S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode) && st->st_nlink > 1)
        chown_why = "it has other hard links";
    else if (lchown(path, chown_uid, chown_gid) < 0)
        chown_why = strerror(errno);
    else
        return 0;
    snprintf(chown_failed, sizeof chown_failed, "%s", path);
    return 1;
}

/* brk__pge_chown_tree: gives everything under root to uid:gid (see chown_one). */
int brk__pge_chown_tree(const char *root, uid_t uid, gid_t gid)
{
    int r;

    chown_uid = uid;
    chown_gid = gid;
    chown_failed[0] = '\0';
    chown_why = NULL;
    r = nftw(root, chown_one, 16, FTW_PHYS);
    if (r != 0) {
        brk__pge_err("cannot give '%s' to user %s: %s", chown_why ? chown_failed : root, PGE_USER,
                     chown_why ? chown_why : strerror(errno));
        return BRK_EIO;
    }
    return 0;
}

int brk__pge_path_chars_ok(const char *p)
{
    for (; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr(PGE_BAD_PATH_CHARS, *p) != NULL)
            return 0;
    }
    return 1;
}

int brk__pge_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s%s", a, b);
    return n < 0 || (size_t)n >= cap ? BRK_EIO : 0;
}

int brk__pge_write_private(const char *path, const void *p, size_t n, const pge_ident_t *owner,
                           int sync)
{
    int fd, rc = 0;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        brk__pge_err("cannot create '%s': %s", path, strerror(errno));
        return BRK_EIO;
    }
    if (brk_write_all(fd, p, n) != 0 ||
        (owner != NULL && owner->drop && fchown(fd, owner->uid, owner->gid) < 0) ||
        (sync && fsync(fd) < 0))
        rc = BRK_EIO;
    if (close(fd) < 0)
        rc = BRK_EIO;
    if (rc < 0) {
        brk__pge_err("cannot write '%s'", path);
        unlink(path);
    }
    return rc;
}
