/* What confines the server from outside, read when a sandbox cannot be made, so that the
 * start-up refusal names the container setting that caused it instead of a list of guesses. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The step value for a clone that failed in the zygote, before any seal step ran. */
#define CONFINE_CLONE (-1)

typedef struct Confinement {
        bool seccomp; /* "Seccomp: 2": a filter this process did not install (we install none) */
        char apparmor[64]; /* the enforced AppArmor profile; "" when none or unconfined */
        char proc_covered[160]; /* paths mounted over parts of /proc (masked paths), "" if none */
} Confinement;

/* Fills c from /proc/self; what cannot be read stays unset. Returns 0 or -errno (of
 * /proc/self/status, which every kernel has). Does not log. */
int confine_read(Confinement *c);

/* The parsers behind confine_read, each on the text of one file. */
void confine_parse_status(Confinement *c, const char *status);
void confine_parse_apparmor(Confinement *c, const char *attr_current);
void confine_parse_mountinfo(Confinement *c, const char *mountinfo);

/* When a failure of `step` (a SealStep, or CONFINE_CLONE) with the positive errno `error` can
 * be caused by what c saw, writes one sentence per cause into buf, each naming the container
 * flag that lifts it, and returns buf; otherwise returns "" (buf untouched). */
const char *confine_hint(const Confinement *c, int step, int error, char *buf, size_t n);
