/*
 * backup: see backup.h.
 *
 * pg_dump and pg_restore (from GSAP_PG_BIN) are given the connection through a service file
 * written 0600 into the backup directory and removed afterwards, never on their command line:
 * a command line is readable by every local user (ps), and a GSAP_DATABASE_URL may hold a
 * password.
 */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_migrate.h"
#include "cli.h"
#include "help.h"
#include "banned.h"

#define BACKUP_PATH_MAX 1024
#define BACKUP_SERVICE_FILE ".pg_service.conf" /* in DIR while pg_dump/pg_restore run */
#define BACKUP_SERVICE "gsap"
#define BACKUP_KEYS_MAX 256    /* files in keys/ (a key per rotation) */
#define BACKUP_READ_CHUNK 65536

/* out = a "/" b; BRK_ETOOBIG (out cut) when it does not fit. */
static int join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? BRK_ETOOBIG : 0;
}

static int say(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "gsap-broker: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* SHA-256 of a file as hex (65 bytes). 0 or BRK_EIO. */
static int file_sha256(const char *path, char hex[65], long long *size)
{
    unsigned char buf[BACKUP_READ_CHUNK], md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    FILE *f = fopen(path, "rb");
    size_t n;
    int rc = BRK_EIO;

    *size = 0;
    if (f == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        *size += (long long)n;
    }
    if (ferror(f) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        goto out;
    brk_hex(md, 32, hex);
    rc = 0;
out:
    if (f)
        fclose(f);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Copies src to dst (created new, mode 0600). 0 or BRK_EIO. */
static int copy_file(const char *src, const char *dst)
{
    char buf[BACKUP_READ_CHUNK];
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    ssize_t n;
    int rc = 0;
    if (in < 0 || out < 0) {
        rc = BRK_EIO;
        goto done;
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            rc = BRK_EIO;
            break;
        }
    if (n < 0 || fsync(out) != 0)
        rc = BRK_EIO;
done:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

/* The regular files of dir, sorted by name, as a JSON array of strings. */
static json_t *list_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    json_t *arr;
    char *names[BACKUP_KEYS_MAX];
    size_t n = 0;
    if (d == NULL)
        return errno == ENOENT ? json_array() : NULL; /* a broker that never served: no keys */
    while ((de = readdir(d)) != NULL && n < BACKUP_KEYS_MAX) {
        char p[BACKUP_PATH_MAX];
        struct stat st;
        if (de->d_name[0] != '.' && join(p, sizeof p, dir, de->d_name) == 0 &&
            lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    /* insertion sort: a handful of names */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(names[i]));
        free(names[i]);
    }
    return arr;
}

/* 1 when path does not exist or is an empty directory. */
static int absent_or_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int empty = 1;
    if (d == NULL)
        return errno == ENOENT;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

/* Writes the conninfo's options as service BACKUP_SERVICE into DIR/BACKUP_SERVICE_FILE. */
static int write_service(const char *dir, const char *conninfo, char *path, size_t cap)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    FILE *f = NULL;
    int fd, rc = BRK_EIO;
    snprintf(path, cap, "%s/" BACKUP_SERVICE_FILE, dir);
    if (opts == NULL)
        return BRK_EINVAL;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        goto out;
    fprintf(f, "[" BACKUP_SERVICE "]\n");
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (o->val != NULL && o->val[0] != '\0' && strchr(o->val, '\n') == NULL)
            fprintf(f, "%s=%s\n", o->keyword, o->val);
    rc = fflush(f) == 0 ? 0 : BRK_EIO;
out:
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    PQconninfoFree(opts);
    return rc;
}

/* Runs argv (argv[0] a path) with PGSERVICEFILE=service; 0 when it exited 0. */
static int run_tool(char *const argv[], const char *service)
{
    int st;
    pid_t pid = fork();
    if (pid < 0)
        return BRK_EIO;
    if (pid == 0) {
        setenv("PGSERVICEFILE", service, 1);
        unsetenv("PGPASSWORD"); /* only what the connection string says */
        execv(argv[0], argv);
        fprintf(stderr, "gsap-broker: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return BRK_EIO;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : BRK_EIO;
}

static const char *owner_conninfo(const app_t *a)
{
    return a->cfg.owner_conninfo ? a->cfg.owner_conninfo : a->cfg.conninfo;
}

int cli_backup(int argc, char **argv)
{
    char p[BACKUP_PATH_MAX], keys[BACKUP_PATH_MAX], service[BACKUP_PATH_MAX], tool[BACKUP_PATH_MAX];
    char dbarg[64], filearg[BACKUP_PATH_MAX + 16], hex[65], now[32];
    const char *dir;
    app_t a = {0};
    json_t *man = NULL, *files = NULL, *names = NULL, *v;
    long long size;
    size_t i;
    int rc = 1, opened = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: gsap-broker backup DIR\n");
        return 2;
    }
    dir = argv[1];
    umask(077); /* the dump and the keys are secrets; so is everything written here */
    if (!absent_or_empty(dir))
        return say("backup: %s exists and is not empty%s", dir, "") + 1;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return say("backup: cannot create %s: %s", dir, strerror(errno));
    chmod(dir, 0700);
    brk_log_set_quiet(1);
    if (cli_app_open(&a) != 0)
        goto out;
    opened = 1;

    /* 1. the database, one snapshot */
    if (write_service(dir, owner_conninfo(&a), service, sizeof service) != 0) {
        say("backup: cannot write %s%s", service, "");
        goto out;
    }
    snprintf(tool, sizeof tool, "%s/pg_dump", a.cfg.pg_bin);
    snprintf(dbarg, sizeof dbarg, "--dbname=service=" BACKUP_SERVICE);
    snprintf(filearg, sizeof filearg, "--file=%s/" CLI_BACKUP_DUMP, dir);
    char *const dump_argv[] = {tool, "--format=custom", "--no-password", dbarg, filearg, NULL};
    int drc = run_tool(dump_argv, service);
    unlink(service);
    if (drc != 0) {
        say("backup: pg_dump failed (%s)%s", tool, "");
        goto out;
    }

    /* 2. the signing keys, after the dump: a superset of the keys that signed what it holds */
    snprintf(p, sizeof p, "%s/keys", a.cfg.data_dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    if ((names = list_files(p)) == NULL) {
        say("backup: cannot list the signing keys in %s: %s", p, strerror(errno));
        goto out;
    }
    if (mkdir(keys, 0700) != 0) {
        say("backup: cannot create %s: %s", keys, strerror(errno));
        goto out;
    }

    /* 3. the manifest, last: a directory without one is no backup */
    files = json_object();
    snprintf(tool, sizeof tool, "%s/" CLI_BACKUP_DUMP, dir);
    if (file_sha256(tool, hex, &size) != 0)
        goto out;
    json_object_set_new(files, CLI_BACKUP_DUMP, json_pack("{s:s,s:I}", "sha256", hex, "bytes",
                                                          (json_int_t)size));
    json_array_foreach(names, i, v)
    {
        char src[BACKUP_PATH_MAX], dst[BACKUP_PATH_MAX], rel[BACKUP_PATH_MAX];
        if (join(src, sizeof src, p, json_string_value(v)) != 0 ||
            join(dst, sizeof dst, keys, json_string_value(v)) != 0 ||
            join(rel, sizeof rel, "keys", json_string_value(v)) != 0 || copy_file(src, dst) != 0 ||
            file_sha256(dst, hex, &size) != 0) {
            say("backup: cannot copy %s: %s", src, strerror(errno));
            goto out;
        }
        json_object_set_new(files, rel, json_pack("{s:s,s:I}", "sha256", hex, "bytes",
                                                  (json_int_t)size));
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    man = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:O}", "format", CLI_BACKUP_FORMAT, "created_at",
                    now, "version", GSAP_BROKER_VERSION, "commit", gsap_build_commit, "schema",
                    brk_migrate_expected(a.cfg.migrations_dir), "method", "pg_dump --format=custom",
                    "files", files);
    snprintf(p, sizeof p, "%s/" CLI_BACKUP_MANIFEST, dir);
    if (man == NULL || json_dump_file(man, p, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
        chmod(p, 0600) != 0) {
        say("backup: cannot write %s%s", p, "");
        goto out;
    }
    json_dumpf(man, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("\n");
    rc = 0;
out:
    if (opened)
        cli_app_close(&a);
    else
        brk_config_clear(&a.cfg);
    json_decref(man);
    json_decref(files);
    json_decref(names);
    return rc;
}

/* Checks DIR's manifest and every file it names. 0, or 2 with a message. */
static int check_backup(const char *dir, json_t **out)
{
    char p[BACKUP_PATH_MAX], hex[65];
    json_error_t jerr;
    json_t *man, *files, *v;
    const char *name;
    long long size;

    snprintf(p, sizeof p, "%s/" CLI_BACKUP_MANIFEST, dir);
    man = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    if (man == NULL)
        return say("restore: %s: no manifest, or not JSON (an incomplete backup?)%s", p, "") + 1;
    const char *fmt = json_string_value(json_object_get(man, "format"));
    files = json_object_get(man, "files");
    if (fmt == NULL || strcmp(fmt, CLI_BACKUP_FORMAT) != 0 || !json_is_object(files) ||
        json_object_get(files, CLI_BACKUP_DUMP) == NULL) {
        json_decref(man);
        return say("restore: %s is not a " CLI_BACKUP_FORMAT " manifest%s", p, "") + 1;
    }
    json_object_foreach(files, name, v)
    {
        const char *want = json_string_value(json_object_get(v, "sha256"));
        /* names are "gsap.dump" or "keys/<file>": nothing that climbs out of DIR */
        if (strstr(name, "..") != NULL || name[0] == '/' || want == NULL) {
            json_decref(man);
            return say("restore: the manifest names \"%s\"%s", name, "") + 1;
        }
        if (join(p, sizeof p, dir, name) != 0 || file_sha256(p, hex, &size) != 0 ||
            strcmp(hex, want) != 0) {
            json_decref(man);
            return say("restore: %s is missing or damaged (SHA-256 differs from the manifest)%s",
                       p, "") + 1;
        }
    }
    *out = man;
    return 0;
}

int cli_restore(int argc, char **argv)
{
    char p[BACKUP_PATH_MAX], service[BACKUP_PATH_MAX], tool[BACKUP_PATH_MAX], err[256];
    char dbarg[64], filearg[BACKUP_PATH_MAX + 16];
    const char *dir, *name;
    app_t a = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;
    json_t *man = NULL, *v;
    int rc = 1, opened = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: gsap-broker restore DIR\n");
        return 2;
    }
    dir = argv[1];
    if ((rc = check_backup(dir, &man)) != 0)
        return rc;
    rc = 1;
    if (brk_config_load(&a.cfg, err, sizeof err) != 0) {
        say("%s%s", err, "");
        goto out;
    }
    if (!absent_or_empty(a.cfg.data_dir)) {
        say("restore: GSAP_DATA_DIR %s is not empty: restore only into a new data directory%s",
            a.cfg.data_dir, "");
        rc = 2;
        goto out;
    }
    brk_config_clear(&a.cfg);

    /* the keys first: the broker's keyring is whatever GSAP_DATA_DIR/keys holds */
    brk_log_set_quiet(1);
    if (cli_app_open(&a) != 0)
        goto out;
    opened = 1;
    snprintf(p, sizeof p, "%s/keys", a.cfg.data_dir);
    if (mkdir(p, 0700) != 0) {
        say("restore: cannot create %s: %s", p, strerror(errno));
        goto out;
    }
    json_object_foreach(json_object_get(man, "files"), name, v)
    {
        char src[BACKUP_PATH_MAX], dst[BACKUP_PATH_MAX];
        if (strncmp(name, "keys/", 5) != 0)
            continue;
        if (join(src, sizeof src, dir, name) != 0 ||
            join(dst, sizeof dst, a.cfg.data_dir, name) != 0 || copy_file(src, dst) != 0) {
            say("restore: cannot copy %s: %s", src, strerror(errno));
            goto out;
        }
    }

    /* the database: empty, then the dump in one transaction, as the schema owner */
    if ((c = cli_connect(&a)) == NULL)
        goto out;
    res = PQexec(c, "SELECT to_regclass('schema_migrations') IS NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        say("restore: the database is not empty (it has schema_migrations)%s%s", "", "");
        rc = 2;
        goto out;
    }
    if (write_service(dir, owner_conninfo(&a), service, sizeof service) != 0) {
        say("restore: cannot write %s%s", service, "");
        goto out;
    }
    snprintf(tool, sizeof tool, "%s/pg_restore", a.cfg.pg_bin);
    snprintf(dbarg, sizeof dbarg, "--dbname=service=" BACKUP_SERVICE);
    snprintf(filearg, sizeof filearg, "%s/" CLI_BACKUP_DUMP, dir);
    /* --no-owner / --no-privileges: the new cluster's roles own and use it (cli_migrate grants
     * the runtime role), whatever the names in the old one were */
    char *const restore_argv[] = {tool,          "--no-owner",    "--no-privileges",
                                  "--exit-on-error", "--single-transaction", "--no-password",
                                  dbarg,         filearg,         NULL};
    int rrc = run_tool(restore_argv, service);
    unlink(service);
    if (rrc != 0) {
        say("restore: pg_restore failed (%s)%s", tool, "");
        goto out;
    }
    if (cli_migrate(&a, c) != 0)
        goto out;
    PQclear(res);
    res = PQexec(c, "SELECT (SELECT count(*) FROM acs), (SELECT count(*) FROM crs), "
                    "(SELECT count(*) FROM invoices), (SELECT count(*) FROM api_keys)");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        printf("{\"restored_from\": \"%s\", \"acs\": %s, \"crs\": %s, \"invoices\": %s, "
               "\"api_keys\": %s}\n",
               json_string_value(json_object_get(man, "created_at")), PQgetvalue(res, 0, 0),
               PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    rc = 0;
out:
    PQclear(res);
    if (c)
        PQfinish(c);
    if (opened)
        cli_app_close(&a);
    else
        brk_config_clear(&a.cfg);
    json_decref(man);
    return rc;
}
