/* The HTTP server: libmicrohttpd, routing, body limits, suspended requests. */
#pragma once

#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "pool.h"

typedef struct Http Http;

/* Starts listening on HOST:PORT and serving in libmicrohttpd's thread. Takes auth (loaded by
 * the caller before anything slow, so a bad key set fails fast), also on failure. Writes the
 * bound port to *ret_port. Returns 0, or -errno with a reason in why. */
int http_start(
        const Config *c, Pool *pool, Auth *auth, Http **ret, uint16_t *ret_port, char *why, size_t whyn);

/* Stops accepting connections (requests in flight continue). */
/* SIGTERM: from now on /health?ready=1 answers 503 and new stateless work and new sessions are
 * refused with 503 (a balancer retries them elsewhere), while the server still listens. */
void http_drain(Http *h);
void http_quiesce(Http *h);

/* Waits until no request is being handled (idle keep-alive connections do not count), at most
 * ms milliseconds, so that answers already made are sent before the daemon stops. */
void http_wait_idle(Http *h, uint64_t ms);

/* Stops the daemon and frees it; every job must be finished (pool_stop) before. */
void http_stop(Http *h);
