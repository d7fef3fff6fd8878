/*
 * export: see export.h. The transfer is cli_http_stream's; this file picks the route and the
 * sink, and makes sure a cut transfer never leaves a file that looks complete.
 */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_err.h"
#include "brk_json.h"
#include "exec_env.h"
#include "exec_http.h"
#include "banned.h"

#define EXPORT_ID_MAX 128 /* an invoice or context id, with room to spare */
#define EXPORT_ERR_MAX 256

static int usage(void)
{
    fprintf(stderr, "usage: gsap-broker export invoice|session ID [--out FILE]\n"
                    "  (GSAP_BROKER_URL and GSAP_TOKEN in the environment)\n");
    return 2;
}

/* An id as the routes take them: letters, digits, '_' and '-' only (nothing to escape). */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > EXPORT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

int cli_export(int argc, char **argv)
{
    const char *out_path = NULL, *kind, *id;
    char path[EXPORT_ID_MAX + 64], err[EXPORT_ERR_MAX] = "";
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--out") == 0 && argv[4][0] != '\0'))
        return usage();
    kind = argv[1], id = argv[2];
    if (argc == 5)
        out_path = argv[4];
    if (!id_ok(id))
        return usage();
    if (strcmp(kind, "invoice") == 0)
        snprintf(path, sizeof path, "/billing/invoices/%s/bundle", id);
    else if (strcmp(kind, "session") == 0)
        snprintf(path, sizeof path, "/governance/session/%s/bundle", id);
    else
        return usage();
    const char *url = getenv("GSAP_BROKER_URL"), *insecure = getenv("GSAP_INSECURE");
    char *token = cli_env_take_secret("GSAP_TOKEN");
    if (url == NULL || token == NULL) {
        fprintf(stderr, "gsap-broker export: GSAP_BROKER_URL and GSAP_TOKEN must be set\n");
        free(token);
        return 2;
    }
    cli_http_t h;
    memset(&h, 0, sizeof h);
    if (cli_http_init(&h, url, token, getenv("GSAP_CA_FILE"),
                      insecure != NULL && strcmp(insecure, "1") == 0, err, sizeof err) != 0) {
        fprintf(stderr, "gsap-broker export: %s\n", err);
        free(token);
        return 2;
    }
    FILE *sink = out_path ? fopen(out_path, "wb") : stdout;
    if (sink == NULL) {
        fprintf(stderr, "gsap-broker export: cannot write \"%s\"\n", out_path);
        cli_http_clear(&h);
        free(token);
        return 2;
    }
    cli_http_resp_t r;
    int rc = cli_http_stream(&h, path, sink, &r), code = 0;
    if (out_path != NULL && fclose(sink) != 0 && rc == 0)
        rc = BRK_EIO;
    if (out_path == NULL && fflush(stdout) != 0 && rc == 0)
        rc = BRK_EIO;
    if (rc != 0) {
        fprintf(stderr, "gsap-broker export: the transfer failed or was cut%s%s\n",
                h.tls_error[0] ? ": " : "", h.tls_error);
        code = 1;
    } else if (r.status != 200) {
        const json_t *e = json_object_get(r.json, "error");
        fprintf(stderr, "gsap-broker export: %d %s: %s\n", r.status,
                json_string_value(json_object_get(e, "code"))
                    ? json_string_value(json_object_get(e, "code"))
                    : "",
                json_string_value(json_object_get(e, "message"))
                    ? json_string_value(json_object_get(e, "message"))
                    : "");
        code = 1;
    }
    /* a partial or refused export leaves no file behind to be mistaken for a bundle */
    if (code != 0 && out_path != NULL)
        unlink(out_path);
    cli_http_resp_clear(&r);
    cli_http_clear(&h);
    free(token);
    return code;
}
