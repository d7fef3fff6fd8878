/*
 * brk_peer: who is at the other end of a connection, for the rule that bearer tokens travel
 * only over TLS (GSAP_PLAINTEXT_BEARERS).
 *
 * A bearer token (an API key or a JWT) seen in clear on the network is as good as stolen, so
 * by default the broker accepts one over plain HTTP only from a loopback peer (a sidecar, a
 * local CLI, a TLS-terminating proxy on the same host); from anywhere else it answers 401
 * tls_required without looking at the token. The operator can make it stricter (never: TLS
 * always) or, explicitly, looser (any: behind a trusted network the broker cannot see).
 * This is the rule the SandboxExec service applies to the bearers it accepts.
 *
 * Pure functions: any thread.
 */
#ifndef BRK_PEER_H
#define BRK_PEER_H

#include <sys/socket.h>

enum brk_plaintext_bearers {
    BRK_PLAINTEXT_LOOPBACK = 0, /* default: plain HTTP bearers only from loopback peers */
    BRK_PLAINTEXT_NEVER = 1,    /* bearers only over TLS */
    BRK_PLAINTEXT_ANY = 2,      /* the operator accepts bearers in clear from anywhere */
};

/* brk_plaintext_bearers_parse: "loopback", "never" or "any" to its value; -1 otherwise. */
int brk_plaintext_bearers_parse(const char *s);

/* brk_sockaddr_is_loopback: 1 for 127.0.0.0/8, ::1, an IPv4-mapped IPv6 loopback
 * (::ffff:127.x.y.z) and a Unix socket; 0 otherwise (including len 0: unknown peer). */
int brk_sockaddr_is_loopback(const struct sockaddr *sa, socklen_t len);

/* brk_bearer_transport_ok: 1 when a bearer may be accepted on this connection under policy
 * (enum brk_plaintext_bearers): always over TLS; over plain HTTP per the policy. */
int brk_bearer_transport_ok(int policy, int tls, int loopback);

#endif
