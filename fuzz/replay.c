/* A main() for fuzz targets built without libFuzzer (gcc, or a quick check in `make test`):
 * runs the target once on each file named on the command line, or on each file of each
 * directory named. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                perror(path);
                return 1;
        }
        size_t cap = 1 << 16, n = 0;
        uint8_t *buf = malloc(cap);
        size_t k;
        while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
                n += k;
                if (n == cap) {
                        uint8_t *nb = realloc(buf, cap *= 2);
                        if (!nb) {
                                free(buf);
                                buf = NULL;
                        } else
                                buf = nb;
                }
        }
        fclose(f);
        if (!buf)
                return 1;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        int bad = 0, count = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
                        DIR *d = opendir(argv[i]);
                        struct dirent *e;
                        while (d && (e = readdir(d))) {
                                if (e->d_name[0] == '.')
                                        continue;
                                char p[4096];
                                snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
                                bad |= run_file(p);
                                count++;
                        }
                        if (d)
                                closedir(d);
                } else {
                        bad |= run_file(argv[i]);
                        count++;
                }
        }
        printf("replayed %d inputs\n", count);
        return bad;
}
