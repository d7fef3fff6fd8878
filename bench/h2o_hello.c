/*
 * h2o_hello: the baseline for bench/get_rate.sh. The same server layout as the broker
 * (broker/brk_server.c) with nothing behind it: one h2o_evloop_t + h2o_context_t per thread
 * sharing one h2o_globalconf_t, one SO_REUSEPORT listener per thread, HTTP/1.1, and a handler
 * that answers every request with a small JSON body and an explicit Content-Length.
 *
 *   h2o_hello HOST PORT THREADS
 *
 * Runs until SIGTERM or SIGINT (the default action: the process just ends). Not part of the
 * broker and not a test; built by bench/get_rate.sh with
 *   cc -O2 bench/h2o_hello.c $(pkg-config --cflags --libs libh2o-evloop) -DH2O_USE_LIBUV=0 -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#define MAX_THREADS 64
#define BACKLOG 1024
#define ACCEPT_BURST 32

static h2o_globalconf_t g_conf;
static const char *g_host;
static const char *g_port;

typedef struct worker {
    pthread_t thread;
    int listen_fd;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
} worker_t;

static worker_t g_workers[MAX_THREADS];

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = sizeof body - 1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, sizeof body - 1);
    return 0;
}

static int bind_listener(void)
{
    struct addrinfo hints = {0}, *ai = NULL;
    int fd, one = 1, rc;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(g_host, g_port, &hints, &ai)) != 0) {
        fprintf(stderr, "h2o_hello: %s:%s: %s\n", g_host, g_port, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0) {
        fprintf(stderr, "h2o_hello: cannot listen on %s:%s: %s\n", g_host, g_port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    worker_t *w = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &g_conf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = g_conf.hosts;
    h2o_socket_t *listener = h2o_evloop_socket_create(w->loop, w->listen_fd,
                                                      H2O_SOCKET_FLAG_DONT_READ);
    listener->data = w;
    h2o_socket_read_start(listener, on_accept);
    for (;;)
        h2o_evloop_run(w->loop, INT32_MAX);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: h2o_hello HOST PORT THREADS\n");
        return 2;
    }
    g_host = argv[1];
    g_port = argv[2];
    int n = atoi(argv[3]);
    if (n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "h2o_hello: THREADS must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&g_conf);
    g_conf.server_name = h2o_iovec_init(H2O_STRLIT("h2o_hello"));
    h2o_hostconf_t *host = h2o_config_register_host(&g_conf, h2o_iovec_init(H2O_STRLIT("default")),
                                                    65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;

    /* Bind every listener before serving, so a busy port is an error at start. */
    for (int i = 0; i < n; i++)
        if ((g_workers[i].listen_fd = bind_listener()) < 0)
            return 1;
    for (int i = 1; i < n; i++)
        if (pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]) != 0) {
            perror("h2o_hello: pthread_create");
            return 1;
        }
    fprintf(stderr, "h2o_hello: listening on %s:%s with %d threads\n", g_host, g_port, n);
    worker_main(&g_workers[0]);
    return 0;
}
