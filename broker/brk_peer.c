/* brk_peer: peer classification for the TLS-only bearer rule; see brk_peer.h. */
#include "brk_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "banned.h"

int brk_plaintext_bearers_parse(const char *s)
{
    if (s == NULL || strcmp(s, "loopback") == 0)
        return BRK_PLAINTEXT_LOOPBACK;
    if (strcmp(s, "never") == 0)
        return BRK_PLAINTEXT_NEVER;
    if (strcmp(s, "any") == 0)
        return BRK_PLAINTEXT_ANY;
    return -1;
}

int brk_sockaddr_is_loopback(const struct sockaddr *sa, socklen_t len)
{
    if (sa == NULL || len == 0)
        return 0;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        /* a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d */
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(a);
    }
    return sa->sa_family == AF_UNIX;
}

int brk_bearer_transport_ok(int policy, int tls, int loopback)
{
    if (tls)
        return 1;
    switch (policy) {
    case BRK_PLAINTEXT_ANY:
        return 1;
    case BRK_PLAINTEXT_NEVER:
        return 0;
    default:
        return loopback;
    }
}
