/* Fuzz target: a request body, through JSON decoding and every field's validation. */
#include <stdint.h>
#include <stdlib.h>

#include "api.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Config c;
        static int init;
        char why[512];
        ApiRequest ar;
        if (!init) {
                config_init(&c);
                c.max_files = 8;
                init = 1;
        }
        if (api_decode_request((const char *)data, size, &c, &ar, why, sizeof why) == 0)
                free(ar.runner);
        return 0;
}
