/* Fuzz target: a POST /mcp body, through JSON-RPC checks and dispatch under every revision; a
 * tool call it yields is then answered with the same bytes as the /api answer, which exercises
 * the result translation on untrusted JSON too (a session's answer carries what its code wrote). */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Config c;
        static int init;
        if (!init) {
                config_init(&c);
                init = 1;
        }
        for (int rev = 0; rev < _MCP_REV_MAX; rev++) {
                McpAnswer a;
                if (mcp_handle((const char *)data, size, (McpRevision)rev, rev != 0, &c, &a) < 0)
                        continue;
                free(a.body);
                if (!a.call)
                        continue;
                size_t n;
                free(mcp_call_result(
                        a.call, 200, (const char *)data, size, (const char *)data, size, false, &n));
                free(mcp_call_result(a.call, 410, (const char *)data, size, NULL, 0, false, &n));
                mcp_call_free(a.call);
        }
        return 0;
}
