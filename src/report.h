/* The runner's report (runner.py _run): what a run sends back besides its output and its exit
 * code. It is written by a process user code controls, so it is judged once, on the HTTP
 * thread, with limits on size, nodes and depth that hold BEFORE the JSON parser allocates, and
 * then against its schema and the server's caps; only a report that passes reaches an answer.
 * Pure functions, no I/O, no logging (fuzzed through fuzz/fuzz-answer.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* Bytes the runner keeps of an exception's type, message and traceback in the report (it cuts
 * them; the whole traceback is in the output anyway). Handed to the runner in its request's
 * "limits" as "error_bytes", so the number is written once. */
#define REPORT_ERROR_BYTES 65536

/* The longest returned file name the report may carry (PATH_MAX). */
#define REPORT_NAME_MAX 4096

/* The most bytes a well-formed report can take under c: the cap of the buffer that collects it
 * (pool_submit). Derived from the caps the runner obeys; see the formula in report.c. */
uint64_t report_cap(const Config *c);

/* Parses and checks a complete report of len bytes. Returns 0 and the checked report (an object
 * with only the keys and types runner.py writes, every value within c's caps) in *ret; or
 * -EBADMSG and a reason, meant for the client, in why; or -ENOMEM. Memory used stays a small
 * multiple of len whatever the JSON's shape: the node count and depth are checked by a scan of
 * the bytes before the JSON parser runs. Does not log. */
int report_parse(const char *data, size_t len, const Config *c, json_t **ret, char *why, size_t whyn);
