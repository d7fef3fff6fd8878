/*
 * brk_notify: readiness and stop notices for a service manager (systemd's Type=notify), sent
 * as one datagram to the unix socket named by NOTIFY_SOCKET, the sd_notify protocol, without
 * linking libsystemd. Without NOTIFY_SOCKET nothing is sent. Main thread.
 */
#ifndef BRK_NOTIFY_H
#define BRK_NOTIFY_H

/* brk_notify: sends state ("READY=1", "STOPPING=1", ...; newline-separated assignments).
 * Returns 0 when sent or when there is no NOTIFY_SOCKET, BRK_EIO when it cannot be sent. */
int brk_notify(const char *state);

#endif
