/*
 * brk_stream: a response whose body a route produces chunk by chunk, asynchronously, in
 * bounded memory (h2o's generator API; chunked transfer coding on HTTP/1.1, DATA frames on
 * HTTP/2). For exports too large to hold: a million invoice lines cost one page of them.
 *
 * The cycle: the route starts the stream (status and headers go out with the first chunk),
 * appends one chunk and flushes it. When h2o has handed that chunk to the connection it asks
 * for the next one by calling the route's `more` callback, which typically submits the next
 * database page (brk_req_db) and, in that batch's continuation, appends and flushes again.
 * The last flush is final. At most one chunk is in flight, and its buffer is reused for the
 * next, so memory stays at the largest chunk (at most BRK_STREAM_CHUNK_MAX).
 *
 * Failure after the status line is out cannot become an error reply: brk_stream_abort ends
 * the response as broken (HTTP/1.1 closes the connection before the last chunk), so a client
 * never mistakes a cut export for a complete one. A client that goes away mid-stream simply
 * ends it: the request's memory (this stream included) is released by h2o, a batch still in
 * flight finishes without its continuation (brk_http's rule), and `more` is not called again.
 *
 * The request is logged (status, time to the first chunk) when the stream starts.
 * Threads: the request's loop thread only.
 */
#ifndef BRK_STREAM_H
#define BRK_STREAM_H

#include <stddef.h>

#include "brk_http.h"

#define BRK_STREAM_CHUNK_MAX (4u << 20) /* bytes of one chunk (BRK_ETOOBIG above) */

typedef struct brk_stream brk_stream_t;

/* more: h2o wants the next chunk. Called on the loop thread while the client is still there,
 * usually from the loop later, but from inside brk_stream_flush when h2o takes the chunk at
 * once (an empty one), so it should only start work (a database batch), not flush itself. It
 * must lead to exactly one brk_stream_flush or brk_stream_abort (now or from a later
 * continuation). */
typedef void (*brk_stream_more)(brk_req_t *r, brk_stream_t *s);

/*
 * brk_stream_start: answers r with status, content_type and the headers added so far
 * (brk_reply_add_header), with no Content-Length, and returns the stream, owned by the
 * request (released with it: never freed by the caller). arg is the route's, returned by
 * brk_stream_arg. After this, r counts as answered (brk_reply_* do nothing). Returns NULL,
 * doing nothing, when the client is already gone or r was answered.
 */
brk_stream_t *brk_stream_start(brk_req_t *r, int status, const char *content_type,
                               brk_stream_more more, void *arg);

/* brk_stream_arg: the arg given to brk_stream_start. */
void *brk_stream_arg(const brk_stream_t *s);

/* brk_stream_append: adds (p, n) to the chunk being built. Returns 0, or BRK_ETOOBIG when
 * the chunk would pass BRK_STREAM_CHUNK_MAX (nothing is added). Not while a chunk is in
 * flight (between a non-final flush and the next `more`): returns BRK_EINVAL then. */
int brk_stream_append(brk_stream_t *s, const void *p, size_t n);

/* brk_stream_flush: sends the chunk built so far (possibly empty). final: it ends the body,
 * and `more` is not called again; otherwise `more` is called once h2o wants more. */
void brk_stream_flush(brk_stream_t *s, int final);

/* brk_stream_abort: ends the response as broken (see above) and logs why (msg: lowercase,
 * static or copied). Nothing else may be called on s afterwards. */
void brk_stream_abort(brk_stream_t *s, const char *msg);

#endif
