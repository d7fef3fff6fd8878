/*
 * paced: an open-loop load generator for bench/latency.sh. Sends POST requests at a fixed RATE
 * for SECONDS whatever the answers do (a slow answer does not delay the next request), and
 * measures each latency from the moment the request was due, not from when it was sent, so a
 * stall shows in the figures instead of hiding in fewer requests (coordinated omission).
 *
 *   paced URL TOKEN RATE SECONDS IDS BODY_TEMPLATE [WARMUP_SECONDS]
 *
 * URL: http://HOST:PORT/PATH (an IPv4 address; no TLS). IDS: one context id a line, each used
 * once (BODY_TEMPLATE holds CTX where it goes). WARMUP_SECONDS (default 0): the same rate for
 * that long first, not counted in the figures (connections opened, caches and the database's
 * pages warm), as wrk2 leaves its calibration period out; its p99 is printed as warmup_p99_ms.
 *
 * One thread, epoll, a timerfd armed for the next due time (no 1 ms polling), keep-alive
 * HTTP/1.1 connections with one request in flight each, opened as needed up to MAX_CONNS; past
 * that, due requests wait in a queue (their latency still counts from when they were due).
 * It costs a few per cent of a core at the rates bench/latency.sh uses, so the machine's two
 * cores are left to the broker and PostgreSQL, which are what is measured.
 *
 * Prints one JSON line: due, sent, ok, other, errors, late (measured requests sent more than
 * LATE_MS after they were due: the generator itself fell behind, so the figures are not to be
 * trusted when it is large), achieved (requests/s), p50_ms, p90_ms, p99_ms, max_ms,
 * warmup_p99_ms. due, ok, other and late count the measured requests only.
 *
 * Not part of the broker and not a test; built by bench/latency.sh with cc -O2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 512          /* requests in flight at most */
#define MAX_IDS 10000000       /* ids read from IDS */
#define MAX_ID_LEN 128
#define RX_MAX 65536           /* one response, head and body */
#define TX_MAX 16384           /* one request */
#define LATE_MS 5.0
#define START_DELAY_NS 50000000LL /* first request 50 ms after start */

typedef struct conn {
    int fd;
    long req;                  /* the request in flight, -1 when idle */
    char tx[TX_MAX];
    size_t tx_len, tx_off;
    char rx[RX_MAX];
    size_t rx_len;
} conn_t;

static struct sockaddr_in g_addr;
static char g_host[80], g_path[1024];
static const char *g_token, *g_head, *g_tail;
static size_t g_head_len;
static char **g_ids;
static long g_total, g_skip;
static int64_t g_t0, *g_due_ns;
static double *g_lat, *g_warm;
static long g_nlat, g_nwarm, g_sent, g_ok, g_other, g_errors, g_late, g_done;
static conn_t *g_conns[MAX_CONNS];
static int g_nconns, g_ep;
static long *g_queue, g_qhead, g_qtail; /* due requests waiting for a connection */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "paced: %s\n", msg);
    exit(2);
}

static void record(long req, int status)
{
    double ms = (double)(now_ns() - g_due_ns[req]) / 1e6;
    if (req >= g_skip) {
        g_lat[g_nlat++] = ms;
        if (status == 200)
            g_ok++;
        else if (status > 0)
            g_other++;
        else
            g_errors++;
    } else {
        g_warm[g_nwarm++] = ms;
        if (status != 200)
            g_errors++;
    }
    g_done++;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->rx_len = c->tx_len = c->tx_off = 0;
}

static int conn_open(conn_t *c)
{
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0 && errno != EINPROGRESS) {
        conn_close(c);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void conn_flush(conn_t *c)
{
    while (c->tx_off < c->tx_len) {
        ssize_t n = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);
        if (n > 0) {
            c->tx_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return; /* EPOLLOUT (edge-triggered) resumes it */
        } else {
            break;
        }
    }
    if (c->tx_off < c->tx_len) { /* the write failed */
        record(c->req, 0);
        c->req = -1;
        conn_close(c);
    }
}

/* Sends request `req` on `c` (idle, possibly closed). */
static void conn_send(conn_t *c, long req)
{
    if (c->fd < 0 && conn_open(c) != 0) {
        record(req, 0);
        return;
    }
    size_t id_len = strlen(g_ids[req]), tail_len = strlen(g_tail);
    size_t body_len = g_head_len + id_len + tail_len;
    int n = snprintf(c->tx, sizeof c->tx,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     g_path, g_host, g_token, body_len);
    if (n < 0 || (size_t)n + body_len > sizeof c->tx)
        die("a request does not fit TX_MAX");
    memcpy(c->tx + n, g_head, g_head_len);
    memcpy(c->tx + n + g_head_len, g_ids[req], id_len);
    memcpy(c->tx + n + g_head_len + id_len, g_tail, tail_len);
    c->tx_len = (size_t)n + body_len;
    c->tx_off = c->rx_len = 0;
    c->req = req;
    g_sent++;
    if (req >= g_skip && (double)(now_ns() - g_due_ns[req]) / 1e6 > LATE_MS)
        g_late++;
    conn_flush(c);
}

/* An idle connection (an open one first), or NULL when MAX_CONNS are busy. */
static conn_t *conn_idle(void)
{
    conn_t *closed = NULL;
    for (int i = 0; i < g_nconns; i++) {
        if (g_conns[i]->req >= 0)
            continue;
        if (g_conns[i]->fd >= 0)
            return g_conns[i];
        if (closed == NULL)
            closed = g_conns[i];
    }
    if (closed != NULL)
        return closed;
    if (g_nconns == MAX_CONNS)
        return NULL;
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        die("out of memory");
    c->fd = -1;
    c->req = -1;
    g_conns[g_nconns++] = c;
    return c;
}

/* The complete response's length when rx holds one, else 0; its status in *status. */
static size_t response_len(conn_t *c, int *status)
{
    char *end = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->rx) + 4;
    long clen = -1;
    *status = (c->rx_len > 12 && memcmp(c->rx, "HTTP/1.", 7) == 0) ? atoi(c->rx + 9) : -1;
    for (char *p = memchr(c->rx, '\n', head); p != NULL && p < end;
         p = memchr(p + 1, '\n', head - (size_t)(p + 1 - c->rx)))
        if (strncasecmp(p + 1, "content-length:", 15) == 0)
            clen = strtol(p + 16, NULL, 10);
    if (clen < 0 || *status < 0)
        return (size_t)-1; /* chunked or garbled: not something the broker sends */
    return c->rx_len >= head + (size_t)clen ? head + (size_t)clen : 0;
}

static void conn_readable(conn_t *c)
{
    for (;;) {
        if (c->rx_len == sizeof c->rx)
            goto fail;
        ssize_t n = read(c->fd, c->rx + c->rx_len, sizeof c->rx - c->rx_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            goto fail;
        c->rx_len += (size_t)n;
        if (c->req < 0)
            goto fail; /* bytes nobody asked for */
        int status;
        size_t len = response_len(c, &status);
        if (len == (size_t)-1)
            goto fail;
        if (len > 0) {
            record(c->req, status);
            c->req = -1;
            c->rx_len = 0; /* one request in flight: nothing can follow it */
            return;
        }
    }
fail:
    if (c->req >= 0)
        record(c->req, 0);
    c->req = -1;
    conn_close(c);
}

/* Sends the queued requests, oldest first, while a connection is free. */
static void send_queued(void)
{
    conn_t *c;
    while (g_qhead < g_qtail && (c = conn_idle()) != NULL)
        conn_send(c, g_queue[g_qhead++]);
}

static void arm(int tfd, int64_t at_ns)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = at_ns / 1000000000LL;
    its.it_value.tv_nsec = at_ns % 1000000000LL;
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, long n, double p)
{
    if (n == 0)
        return 0;
    long i = (long)(p * (double)n);
    return v[i < n ? i : n - 1];
}

static void read_ids(const char *path, long need)
{
    FILE *f = fopen(path, "r");
    char line[MAX_ID_LEN];
    long n = 0;
    if (f == NULL)
        die("cannot open IDS");
    g_ids = calloc((size_t)need, sizeof *g_ids);
    while (g_ids != NULL && n < need && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] != '\0' && (g_ids[n] = strdup(line)) != NULL)
            n++;
    }
    fclose(f);
    if (n < need) {
        fprintf(stderr, "paced: %ld requests due but only %ld ids\n", need, n);
        exit(2);
    }
}

static void parse_url(const char *url)
{
    unsigned port;
    char host[64];
    int used = 0;
    if (sscanf(url, "http://%63[0-9.]:%u%n", host, &port, &used) != 2 || port == 0 ||
        port > 65535 || url[used] != '/' || strlen(url + used) >= sizeof g_path)
        die("URL must be http://IPV4:PORT/PATH");
    snprintf(g_host, sizeof g_host, "%s:%u", host, port);
    snprintf(g_path, sizeof g_path, "%s", url + used);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1)
        die("URL's host is not an IPv4 address");
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 8)
        die("usage: paced URL TOKEN RATE SECONDS IDS BODY_TEMPLATE [WARMUP_SECONDS]");
    parse_url(argv[1]);
    g_token = argv[2];
    double rate = atof(argv[3]), seconds = atof(argv[4]), warmup = argc > 7 ? atof(argv[7]) : 0;
    if (!(rate > 0 && rate <= 1e6) || !(seconds > 0 && seconds <= 3600) || !(warmup >= 0 && warmup <= 3600))
        die("RATE, SECONDS or WARMUP_SECONDS out of range");
    const char *ctx = strstr(argv[6], "CTX");
    if (ctx == NULL)
        die("BODY_TEMPLATE has no CTX");
    g_head = argv[6];
    g_head_len = (size_t)(ctx - argv[6]);
    g_tail = ctx + 3;
    g_skip = (long)(rate * warmup);
    g_total = g_skip + (long)(rate * seconds);
    if (g_total <= g_skip || g_total > MAX_IDS)
        die("no request, or more than MAX_IDS, are due");
    read_ids(argv[5], g_total);
    g_due_ns = calloc((size_t)g_total, sizeof *g_due_ns);
    g_lat = calloc((size_t)g_total, sizeof *g_lat);
    g_warm = calloc((size_t)g_skip + 1, sizeof *g_warm);
    g_queue = calloc((size_t)g_total, sizeof *g_queue);
    if (!g_due_ns || !g_lat || !g_warm || !g_queue)
        die("out of memory");

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if ((g_ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || tfd < 0)
        die("epoll or timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, tfd, &tev);

    g_t0 = now_ns() + START_DELAY_NS;
    for (long i = 0; i < g_total; i++)
        g_due_ns[i] = g_t0 + (int64_t)((double)i * 1e9 / rate);
    long next = 0;
    arm(tfd, g_due_ns[0]);
    while (g_done < g_total) {
        struct epoll_event evs[64];
        int n = epoll_wait(g_ep, evs, 64, 1000);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    die("timerfd read");
                continue;
            }
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_readable(c);
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT) && c->req >= 0)
                conn_flush(c);
        }
        int64_t now = now_ns();
        while (next < g_total && g_due_ns[next] <= now)
            g_queue[g_qtail++] = next++;
        send_queued();
        if (next < g_total)
            arm(tfd, g_due_ns[next]);
    }
    int64_t end = now_ns();

    qsort(g_lat, (size_t)g_nlat, sizeof *g_lat, cmp_double);
    qsort(g_warm, (size_t)g_nwarm, sizeof *g_warm, cmp_double);
    double span_s = (double)(end - g_due_ns[g_skip]) / 1e9;
    printf("{\"due\":%ld,\"sent\":%ld,\"ok\":%ld,\"other\":%ld,\"errors\":%ld,\"late\":%ld,"
           "\"achieved\":%.0f,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
           "\"warmup_p99_ms\":%.2f}\n",
           g_total - g_skip, g_sent, g_ok, g_other, g_errors, g_late,
           (double)(g_total - g_skip) / span_s, quantile(g_lat, g_nlat, 0.5),
           quantile(g_lat, g_nlat, 0.9), quantile(g_lat, g_nlat, 0.99),
           g_nlat ? g_lat[g_nlat - 1] : 0, quantile(g_warm, g_nwarm, 0.99));
    return 0;
}
