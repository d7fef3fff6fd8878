/*
 * exec_env: the AC's input forms and the governed command's environment (see exec_env.h).
 *
 * Caveat: overwriting a secret in our own environment block hides it from
 * /proc/<pid>/environ, not from a process that may read our memory (root, or a ptrace-capable
 * process of the same user; exec also marks itself non-dumpable to stop the latter).
 */
#include "exec_env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

extern char **environ;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cli_ac_decode(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
    uint8_t *raw = NULL;
    int rc = BRK_EINVAL, dn;
    json_error_t je;

    *out = NULL;
    if (len > CLI_AC_MAX) {
        snprintf(err, errlen, "the AC is larger than %d bytes", CLI_AC_MAX);
        return BRK_ETOOBIG;
    }
    while (len > 0 && is_space(*text))
        text++, len--;
    while (len > 0 && is_space(text[len - 1]))
        len--;
    if (len > 0 && text[0] == '{') {
        *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(*out)) {
            snprintf(err, errlen, "the AC is not a JSON object: %s", je.text);
            goto out;
        }
        rc = 0;
        goto out;
    }
    /* base64 (RFC 4648 section 4) or base64url (section 5), padded or not, wrapped or not */
    raw = brk_malloc(len + 1);
    if ((dn = brk_b64_decode_lenient(text, len, raw, len + 1)) < 0) {
        snprintf(err, errlen, "the AC is neither JSON nor base64 of JSON");
        goto out;
    }
    *out = json_loadb((const char *)raw, (size_t)dn, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(*out)) {
        snprintf(err, errlen, "the base64-decoded AC is not a JSON object: %s", je.text);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && *out) {
        json_decref(*out);
        *out = NULL;
    }
    free(raw);
    return rc;
}

int cli_ac_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t n = 0;
    int rc = BRK_EIO;

    *text = NULL;
    *len = 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the AC file \"%s\": %s", path, strerror(errno));
        goto out;
    }
    /* One byte more than the limit tells "at the limit" from "over it" without trusting
     * st_size (a pipe or /proc file has none). */
    buf = brk_malloc(CLI_AC_MAX + 2);
    for (;;) {
        ssize_t r = read(fd, buf + n, CLI_AC_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read the AC file \"%s\": %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > CLI_AC_MAX) {
            snprintf(err, errlen, "the AC file \"%s\" is larger than %d bytes", path, CLI_AC_MAX);
            rc = BRK_ETOOBIG;
            goto out;
        }
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

char *cli_env_take_secret(const char *name)
{
    char *v = getenv(name), *copy = NULL;
    size_t nl = strlen(name);

    if (v != NULL && *v != '\0')
        copy = brk_strdup(v);
    /* In place, and every occurrence (an environment may name a variable twice):
     * /proc/<pid>/environ reads the original block, not a copy of it. */
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
            explicit_bzero(*e + nl + 1, strlen(*e + nl + 1));
    return copy;
}

int cli_env_stripped(const char *entry)
{
    static const char *const prefixes[] = CLI_ENV_STRIP_PREFIXES;
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

char **cli_env_for_child(void)
{
    size_t n = 0, k = 0;
    char **out;

    while (environ && environ[n])
        n++;
    out = brk_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (!cli_env_stripped(environ[i]))
            out[k++] = environ[i];
    out[k] = NULL;
    return out;
}
