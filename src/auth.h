/* API keys: loaded once, compared in constant time, never logged. */
#pragma once

#include <stdbool.h>

#include "config.h"

typedef struct Auth Auth;

/* Reads API_KEYS and API_KEYS_FILE. Returns 0, or -errno with a reason (which never contains a
 * key) in why. Each of the two that is set must yield at least one key (else -ENOKEY): a keys
 * file of comments only must not start a server without authentication. Does not log. */
int auth_new(const Config *c, Auth **ret, char *why, size_t whyn);
void auth_free(Auth *a);

/* True when keys are configured. */
bool auth_enabled(const Auth *a);

/* True when the Authorization header value is "Bearer <one of the keys>". The time taken does
 * not depend on which key matched, or how much of one did. */
bool auth_check(const Auth *a, const char *authorization);

/* Which key authorization names: its index among the configured keys (what a session's owner
 * is recorded as, so that no key is kept anywhere else), 0 when no keys are configured (every
 * client is the same owner), -1 when it names none. Constant time as auth_check. */
int auth_owner(const Auth *a, const char *authorization);
