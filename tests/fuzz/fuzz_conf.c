/*
 * fuzz_conf.c - libFuzzer target: the configuration parser (conf/).
 *
 * The input is a libconfig document handed to rs_conf_load_string() on a
 * fresh config (defaults) and then on one that already holds the result, so
 * both "defaults" and "override" paths run.  Every accepted config is also
 * dumped (the `config show` path) to touch every string it owns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static void emit(const char *key, const char *value, void *ctx)
{
    size_t *n = ctx;
    *n += strlen(key) + (value ? strlen(value) : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    rs_conf *c = rs_conf_new();
    if (c) {
        rs_error err = RS_ERROR_INIT;
        if (rs_conf_load_string(c, text, &err) == 0) {
            size_t n = 0;
            rs_conf_dump(c, emit, &n);
            rs_error_clear(&err);
            (void)rs_conf_load_string(c, text, &err);
        } else if (!rs_error_isset(&err)) {
            abort();    /* a failure must say why */
        }
        rs_conf_free(c);
    }
    free(text);
    return 0;
}
