/* Which zygote a run needs: the lean one, unless its code names a module that only the full
 * zygote has loaded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct Route Route;

/* Builds the table from space-separated module names. Returns 0 or -ENOMEM / -EINVAL. */
int route_new(const char *modules, Route **ret);
void route_free(Route *r);

/* True when the text (a runner request, JSON: escapes such as \n separate words) contains one of
 * the names as a whole identifier. Conservative by design: a name in a comment or a string also
 * counts; the cost of a wrong "full" is only speed, and a wrong "lean" is only an import. */
bool route_needs_full(const Route *r, const char *text, size_t n);
