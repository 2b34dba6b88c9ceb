/* Fuzz target: a `.env` text, through the config reader. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config c;
        char *err = NULL;
        config_init(&c);
        config_apply_dotenv(&c, (const char *)data, size, ".env", &err);
        free(err);
        return 0;
}
