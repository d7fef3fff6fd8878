/*
 * exec_http: the broker client of `gsap-broker exec`: GSAP_BROKER_URL parsed once, one
 * blocking request at a time over libevent's evhttp (a CLI has nothing else to do meanwhile),
 * http:// or https:// (broker/brk_tls_client: certificate and host name verified against the
 * system store or GSAP_CA_FILE).
 *
 * The bearer token is sent only where a role is needed, and never over plain http to a host
 * that is not loopback unless the caller allowed it (GSAP_INSECURE=1): cli_http_init refuses.
 *
 * Main thread of a CLI process; each request makes and frees its own event_base.
 */
#ifndef CLI_EXEC_HTTP_H
#define CLI_EXEC_HTTP_H

#include <stddef.h>
#include <stdio.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#define CLI_HTTP_MAX_RESPONSE (1024 * 1024) /* bytes of a broker response body read at most */
#define CLI_HTTP_TIMEOUT_S 30               /* connect, send and receive, per request */
#define CLI_HTTP_RETRIES 3                  /* extra tries after a connection error or a 5xx */
#define CLI_HTTP_BACKOFF_MS 250             /* before the first retry; doubled each time */
#define CLI_HTTP_HOST_MAX 256
#define CLI_HTTP_PREFIX_MAX 512 /* path prefix of GSAP_BROKER_URL */
#define CLI_HTTP_TOKEN_MAX 900
#define CLI_HTTP_ERR_MAX 256

/* A broker to talk to. Filled by cli_http_init, released by cli_http_clear. */
typedef struct cli_http {
    const char *url;              /* as given (borrowed) */
    int tls;                      /* https */
    char host[CLI_HTTP_HOST_MAX]; /* for connect(), IPv6 brackets removed */
    char host_header[CLI_HTTP_HOST_MAX + 8];
    unsigned short port;
    char prefix[CLI_HTTP_PREFIX_MAX]; /* path of the URL without trailing slashes */
    const char *token;                /* borrowed; NULL: no Authorization header */
    SSL_CTX *tls_ctx;                 /* owned, https only */
    char tls_error[CLI_HTTP_ERR_MAX]; /* why the last transfer failed in TLS, else "" */
} cli_http_t;

/* A response: status, body (NUL-terminated, owned, NULL when empty), json (the body when it
 * is a JSON object, owned, else NULL). Release with cli_http_resp_clear. */
typedef struct cli_http_resp {
    int status;
    char *body;
    size_t len;
    json_t *json;
} cli_http_resp_t;

/*
 * cli_http_init: parses url (http[s]://host[:port][/prefix], no user info), and for https
 * makes the TLS context from ca_file (NULL: the system store). token (may be NULL) and url
 * are borrowed and must outlive *h. insecure allows a token over plain http to a host that is
 * not loopback. Returns 0; BRK_EINVAL (malformed URL), BRK_EFORBIDDEN (a token over plain
 * http to a non-loopback host) or BRK_ECRYPTO (the CA file), with err (errlen) saying why.
 */
int cli_http_init(cli_http_t *h, const char *url, const char *token, const char *ca_file,
                  int insecure, char *err, size_t errlen);

/* cli_http_clear: releases the TLS context; *h may be initialized again. */
void cli_http_clear(cli_http_t *h);

/*
 * cli_http_once: one request to path below the URL's prefix. body (NUL-terminated JSON) and
 * idempotency_key may be NULL. On 0, *out holds the response (any status); the caller clears
 * it. Failures, with *out empty: BRK_EIO (refused, reset: the broker cannot be reached),
 * BRK_ETIMEDOUT, BRK_ECRYPTO (TLS failed: h->tls_error says why), BRK_ETOOBIG (body over
 * CLI_HTTP_MAX_RESPONSE), BRK_ENOMEM.
 */
int cli_http_once(cli_http_t *h, enum evhttp_cmd_type method, const char *path, const char *body,
                  const char *idempotency_key, cli_http_resp_t *out);

/*
 * cli_http_retry: cli_http_once, tried again up to CLI_HTTP_RETRIES times after BRK_EIO,
 * BRK_ETIMEDOUT or a 5xx, with a doubling pause. Only for requests whose repetition is
 * harmless (GETs, a POST under an Idempotency-Key, an identical CR). Returns as the last try.
 */
int cli_http_retry(cli_http_t *h, enum evhttp_cmd_type method, const char *path, const char *body,
                   const char *idempotency_key, cli_http_resp_t *out);

/*
 * cli_http_stream: GET path, writing a 200's body to sink as it arrives (chunk by chunk, in
 * bounded memory, whatever its length); *out gets the status, and for another status its
 * body (at most CLI_HTTP_MAX_RESPONSE). Returns as cli_http_once; BRK_EIO too when the sink
 * could not be written or the body was cut (a stream the broker ended as broken).
 */
int cli_http_stream(cli_http_t *h, const char *path, FILE *sink, cli_http_resp_t *out);

/* cli_http_unreachable: 1 when rc (from the functions above) means the broker could not be
 * reached at all (refused, reset, timed out), as opposed to a TLS or protocol failure. */
int cli_http_unreachable(int rc);

void cli_http_resp_clear(cli_http_resp_t *r);

/* cli_http_sleep_ms: sleeps ms milliseconds, resuming after signals. */
void cli_http_sleep_ms(long ms);

#endif
