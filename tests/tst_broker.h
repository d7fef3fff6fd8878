/*
 * tst_broker: the integration-test harness. It runs the real broker binary ($GSAP_BROKER_BIN)
 * as a child process on a free 127.0.0.1 port against a test database, runs its CLI with the
 * same environment, and talks HTTP/1.1 to it with a small blocking client (plain sockets, one
 * connection per request, Connection: close).
 *
 * Everything here is for test programs: blocking, single-threaded, and on internal failure it
 * reports to stderr and returns -1 (or NULL) rather than hiding the problem. Only
 * tst_keys_create and the tst_call family (which assert a status) abort the running Check test
 * themselves.
 *
 * Caveats: the free port is found by binding port 0 and closing it again, so another process
 * could take it before the broker binds it (the start then fails rather than hangs). A broker
 * child gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG), so a test that
 * crashes or times out under CK_FORK does not leave a broker running; start brokers from the
 * test's main thread. The HTTP functions keep no state and may be called from several threads
 * at once (for races); the broker functions may not.
 */
#ifndef TST_BROKER_H
#define TST_BROKER_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/*
 * A broker under test. Plain value struct owned by the caller (usually a static or a local of
 * the test). pid is 0 when no broker is running. dir is the broker's GSAP_DATA_DIR, a fresh
 * directory under /tmp that also holds broker.log (logpath) and the harness's record of the
 * environment (so restart and the CLI use the same). conninfo is GSAP_DATABASE_URL ("" for
 * the broker's embedded default cluster).
 */
typedef struct tst_broker {
    pid_t pid;
    unsigned short port;
    char dir[256];
    char conninfo[512];
    char logpath[300];
} tst_broker_t;

/*
 * tst_broker_start: fills *b and starts the broker: picks a free port, makes the data
 * directory, and runs `$GSAP_BROKER_BIN serve` with the environment
 *   PATH (inherited), ASAN_/UBSAN_/LSAN_OPTIONS (inherited when set),
 *   GSAP_DATABASE_URL=conninfo (left out when conninfo is NULL: embedded default),
 *   GSAP_LISTEN=127.0.0.1:<port>, GSAP_DATA_DIR=<dir>, GSAP_THREADS=2,
 * then each "NAME=value" of extra_env (NULL-terminated array, may be NULL), which overrides a
 * variable of the same name. stdout and stderr are appended to b->logpath. Waits until
 * GET /healthz answers 200 (polling every 50 ms, for up to 30 s); if the broker exits or does
 * not get healthy, prints the log's tail to stderr, kills it and returns -1.
 * Returns 0 with the broker running. extra_env is copied; the caller keeps ownership.
 * The directory stays after stop (for the log); tst_broker_clear removes it.
 */
int tst_broker_start(tst_broker_t *b, const char *conninfo, const char *const *extra_env);

/* tst_free_port: a 127.0.0.1 TCP port nobody listens on now (bound to port 0 and closed, so
 * another process may still take it first). 0, or -1 when the socket calls failed. */
int tst_free_port(unsigned short *port);

/*
 * tst_broker_restart: starts the broker of *b again after tst_broker_stop or tst_broker_kill,
 * with the same port, directory, database and environment. Returns 0 when healthy, else -1
 * (as tst_broker_start). Fails when the broker is still running.
 */
int tst_broker_restart(tst_broker_t *b);

/*
 * tst_broker_stop: sends SIGTERM and waits up to 30 s for the broker to exit (then SIGKILL).
 * Returns its exit status (0 for a clean graceful stop), 128 + the signal number when a signal
 * ended it (a sanitizer abort, or the SIGKILL after the time limit), or -1 when no broker was
 * running. b->pid is 0 afterwards.
 */
int tst_broker_stop(tst_broker_t *b);

/* tst_broker_kill: SIGKILL and reap (a crash, for recovery tests). b->pid is 0 afterwards. */
void tst_broker_kill(tst_broker_t *b);

/*
 * tst_broker_clear: kills the broker if it still runs and removes its directory (unless the
 * environment variable GSAP_TEST_KEEP is set, for post-mortems). *b can be started anew.
 */
void tst_broker_clear(tst_broker_t *b);

/* tst_broker_log: the whole log file as a NUL-terminated string; caller frees. NULL on error. */
char *tst_broker_log(const tst_broker_t *b);

/*
 * tst_broker_cli: runs `$GSAP_BROKER_BIN arg0 ...` (NULL-terminated arguments) with the same
 * environment as the server of *b (so `keys create` reaches the same database), stdin from
 * /dev/null, stderr appended to the log. Waits for it (killed after 60 s).
 * Returns its stdout with trailing newlines stripped (malloc'd, caller frees), or NULL when
 * it could not be run. *exit_status (may be NULL) gets the exit code, 128 + signal when a
 * signal ended it, or -1 when it could not be run. b need not be running, only started once.
 */
char *tst_broker_cli(tst_broker_t *b, int *exit_status, const char *arg0, ...);

/*
 * tst_keys_create: runs `keys create --tenant TENANT --role ROLES` and returns the token, the
 * one line the command prints (malloc'd, caller frees). Aborts the running test (ck_abort_msg)
 * when the command fails or prints anything but one non-empty line.
 */
char *tst_keys_create(tst_broker_t *b, const char *tenant, const char *roles);

/*
 * A parsed HTTP response, owned by the caller: release with tst_resp_clear.
 * head: the status line and header lines as received, each ending in "\r\n" (the blank line
 *       that ends the head is not included); NUL-terminated.
 * body: the body after removing chunked framing, NUL-terminated (body_len excludes the NUL;
 *       it may contain NUL bytes). Empty, not NULL, when there is no body.
 * json: the body parsed with jansson (any JSON value, \u0000 allowed), or NULL when it does
 *       not parse.
 */
typedef struct tst_resp {
    int status;
    char *head;
    char *body;
    size_t body_len;
    json_t *json;
} tst_resp_t;

/*
 * tst_http: one request to 127.0.0.1:port on a new connection. Sends "METHOD path HTTP/1.1",
 * Host, the caller's headers (a string of "Name: value\r\n" lines, may be NULL),
 * Content-Length when body is not NULL, and Connection: close; then body_len bytes of body.
 * Reads the response until the server closes or the message is complete (30 s receive
 * timeout), skipping 1xx interim responses; understands Content-Length, chunked and
 * read-until-close bodies. Returns 0 with *out filled, or -1 (connection refused, timeout,
 * malformed response) with *out zeroed. *out is overwritten, not cleared first.
 */
int tst_http(unsigned short port, const char *method, const char *path, const char *headers,
             const char *body, size_t body_len, tst_resp_t *out);

/*
 * tst_resp_header: the value of the first header called name (case-insensitive), without
 * surrounding whitespace, copied into buf (truncated to cap - 1 bytes, NUL-terminated).
 * Returns buf, or NULL when there is no such header.
 */
const char *tst_resp_header(const tst_resp_t *r, const char *name, char *buf, size_t cap);

/* tst_resp_clear: frees what *r holds and zeroes it; safe on a zeroed or cleared response. */
void tst_resp_clear(tst_resp_t *r);

/* tst_get: GET path, with "Authorization: Bearer token" when token is not NULL. As tst_http. */
int tst_get(unsigned short port, const char *path, const char *token, tst_resp_t *out);

/*
 * tst_post_json: POST path with the NUL-terminated json as body, Content-Type:
 * application/json, and "Authorization: Bearer token" when token is not NULL. As tst_http.
 */
int tst_post_json(unsigned short port, const char *path, const char *token, const char *json,
                  tst_resp_t *out);

/*
 * tst_call: METHOD path on 127.0.0.1:port (as tst_http), with "Authorization: Bearer token"
 * when token is not NULL and, when body is not NULL, the NUL-terminated body as
 * Content-Type: application/json. Aborts the running test (ck_assert) when the request gets
 * no response or the status is not expect. Returns the response; the caller owns it and
 * releases it with tst_resp_clear.
 */
tst_resp_t tst_call(unsigned short port, const char *method, const char *path, const char *token,
                    const char *body, int expect);

/*
 * tst_call_json: as tst_call; when code is not NULL, also aborts the test unless the body is
 * an error with that code ({"error":{"code"}}). Returns the parsed body (a new reference,
 * caller json_decref()s; NULL when the body is not JSON); the response itself is released.
 */
json_t *tst_call_json(unsigned short port, const char *method, const char *path, const char *token,
                      const char *body, int expect, const char *code);

/* tst_expect_status: tst_call_json, keeping nothing: a request that must answer status (and
 * the error code, when code is not NULL). */
void tst_expect_status(unsigned short port, const char *method, const char *path, const char *token,
                       const char *body, int status, const char *code);

/*
 * tst_raw: sends n bytes exactly as given on a new connection to 127.0.0.1:port, then reads
 * until the server closes the connection (or resets it, or 10 s pass without data). *reply
 * gets what arrived (malloc'd, NUL-terminated, caller frees; may contain NUL bytes).
 * Returns the number of bytes received, or -1 (and *reply NULL) when it could not connect.
 * A server that closes before reading everything is fine: the reply is still read.
 */
int tst_raw(unsigned short port, const void *bytes, size_t n, char **reply);

#endif
