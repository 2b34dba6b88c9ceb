/* Python package names as users write them in PREINSTALL_LIBS, mapped to what the zygote imports
 * and to what apt installs. pip names, module names and Debian names disagree often enough
 * ("scikit-learn" is imported as "sklearn" and shipped as "python3-sklearn", "pytz" is shipped as
 * "python3-tz") that guessing is wrong for the popular ones, so they are listed here; any other
 * name falls back to the usual convention. Names are folded the way pip folds them for the
 * separators we accept: case-insensitively and with '_' and '-' alike. */
#include "pylibs.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "util/macro.h"
#include "util/str.h"

/* pylibs_foreach's contract: tokens up to this many bytes. pip names are far shorter. */
#define PYLIBS_TOKEN_MAX 127

typedef struct PyLib {
        const char *name; /* folded: lower-case, '-' for '_' */
        const char *module;
        const char *debian; /* may not exist in every Debian release, e.g. python3-pyarrow */
} PyLib;

static const PyLib pylibs[] = {
        {"attrs", "attr", "python3-attr"},
        {"beautifulsoup4", "bs4", "python3-bs4"},
        {"bokeh", "bokeh", "python3-bokeh"},
        {"bs4", "bs4", "python3-bs4"},
        {"cv2", "cv2", "python3-opencv"},
        {"dateutil", "dateutil", "python3-dateutil"},
        {"h5py", "h5py", "python3-h5py"},
        {"jinja2", "jinja2", "python3-jinja2"},
        {"joblib", "joblib", "python3-joblib"},
        {"lxml", "lxml", "python3-lxml"},
        {"matplotlib", "matplotlib", "python3-matplotlib"},
        {"msgpack", "msgpack", "python3-msgpack"},
        {"networkx", "networkx", "python3-networkx"},
        {"nltk", "nltk", "python3-nltk"},
        {"numexpr", "numexpr", "python3-numexpr"},
        {"numpy", "numpy", "python3-numpy"},
        {"opencv-contrib-python", "cv2", "python3-opencv"},
        {"opencv-python", "cv2", "python3-opencv"},
        {"opencv-python-headless", "cv2", "python3-opencv"},
        {"openpyxl", "openpyxl", "python3-openpyxl"},
        {"pandas", "pandas", "python3-pandas"},
        {"pil", "PIL", "python3-pil"},
        {"pillow", "PIL", "python3-pil"},
        {"plotly", "plotly", "python3-plotly"},
        {"protobuf", "google.protobuf", "python3-protobuf"},
        {"pyarrow", "pyarrow", "python3-pyarrow"},
        {"python-dateutil", "dateutil", "python3-dateutil"},
        {"python-docx", "docx", "python3-docx"},
        {"pytz", "pytz", "python3-tz"},
        {"pyyaml", "yaml", "python3-yaml"},
        {"requests", "requests", "python3-requests"},
        {"scikit-image", "skimage", "python3-skimage"},
        {"scikit-learn", "sklearn", "python3-sklearn"},
        {"scipy", "scipy", "python3-scipy"},
        {"seaborn", "seaborn", "python3-seaborn"},
        {"shapely", "shapely", "python3-shapely"},
        {"skimage", "skimage", "python3-skimage"},
        {"sklearn", "sklearn", "python3-sklearn"},
        {"statsmodels", "statsmodels", "python3-statsmodels"},
        {"sympy", "sympy", "python3-sympy"},
        {"tables", "tables", "python3-tables"},
        {"tabulate", "tabulate", "python3-tabulate"},
        {"xlrd", "xlrd", "python3-xlrd"},
        {"xlsxwriter", "xlsxwriter", "python3-xlsxwriter"},
        {"yaml", "yaml", "python3-yaml"},
};

static bool name_char_ok(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
}

static char lower(char ch) {
        /* Not tolower(): its result depends on the locale, and names are ASCII by the check above. */
        return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Returns the length of `package`, or -EINVAL unless it is [A-Za-z0-9._-]+. */
static int check_name(const char *package) {
        size_t n;

        if (!package || !package[0])
                return -EINVAL;
        for (n = 0; package[n]; n++)
                if (!name_char_ok(package[n]))
                        return -EINVAL;
        return n > INT_MAX ? -ENAMETOOLONG : (int)n;
}

/* Writes the valid name `package` of length n into buf, lower-case, with `sep` for both '_' and
 * '-'. Returns 0 or -ENAMETOOLONG. */
static int fold(const char *package, size_t n, char sep, char *buf, size_t size) {
        if (n >= size)
                return -ENAMETOOLONG;
        for (size_t i = 0; i < n; i++)
                buf[i] = package[i] == '_' || package[i] == '-' ? sep : lower(package[i]);
        buf[n] = '\0';
        return 0;
}

/* The table entry for a valid name of length n, or NULL. */
static const PyLib *lookup(const char *package, size_t n) {
        char key[PYLIBS_TOKEN_MAX + 1];

        /* Longer than any table entry: skip the lookup rather than fail on the key buffer. */
        if (fold(package, n, '-', key, sizeof(key)) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(pylibs); i++)
                if (strcmp(pylibs[i].name, key) == 0)
                        return &pylibs[i];
        return NULL;
}

int pylibs_module(const char *package, char *buf, size_t size) {
        const PyLib *lib;
        int n;

        n = check_name(package);
        if (n < 0)
                return n;

        lib = lookup(package, n);
        if (lib)
                return str_copy(buf, size, lib->module);

        return fold(package, n, '_', buf, size);
}

int pylibs_debian(const char *package, char *buf, size_t size) {
        static const char prefix[] = "python3-";
        const size_t plen = sizeof(prefix) - 1;
        const PyLib *lib;
        int n;

        n = check_name(package);
        if (n < 0)
                return n;

        lib = lookup(package, n);
        if (lib)
                return str_copy(buf, size, lib->debian);

        if (size <= plen)
                return -ENAMETOOLONG;
        memcpy(buf, prefix, plen);
        /* '_' is not allowed in Debian package names; Debian spells "typing_extensions" as
         * python3-typing-extensions, so fold it to '-' like the table keys. */
        return fold(package, n, '-', buf + plen, size - plen);
}

static bool is_separator(char ch) {
        return ch == ' ' || ch == '\t' || ch == ',';
}

int pylibs_foreach(const char *list, int (*fn)(const char *token, void *userdata), void *userdata) {
        char token[PYLIBS_TOKEN_MAX + 1];
        const char *p = list ? list : "";
        int r;

        for (;;) {
                size_t n;

                while (is_separator(*p))
                        p++;
                if (!*p)
                        return 0;

                n = strcspn(p, " \t,");
                if (n > PYLIBS_TOKEN_MAX)
                        return -ENAMETOOLONG;
                memcpy(token, p, n);
                token[n] = '\0';
                p += n;

                r = fn(token, userdata);
                if (r < 0)
                        return r;
        }
}
