/*
 * A few lines of test scaffolding shared by the C tests of the espgcm C ABI:
 * checks that count instead of stopping, and the closing "N passed, N failed"
 * line that tests/c_programs.rs looks for.
 */
#ifndef ESPGCM_TEST_CHECK_H
#define ESPGCM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espgcm.h"

static unsigned long checks_passed;
static unsigned long checks_failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            checks_passed++;                                                           \
        } else {                                                                       \
            checks_failed++;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

/* A call must return exactly `want`. */
#define CHECK_RC(expr, want)                                                           \
    do {                                                                               \
        int rc_ = (expr);                                                              \
        int want_ = (want);                                                            \
        if (rc_ == want_) {                                                            \
            checks_passed++;                                                           \
        } else {                                                                       \
            checks_failed++;                                                           \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__, \
                    __LINE__, #expr, rc_, espgcm_result_str(rc_), want_,               \
                    espgcm_result_str(want_));                                         \
        }                                                                              \
    } while (0)

/* Whether `n` bytes at `p` are all zero. */
static inline int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* Print the closing line and return the exit status. */
static inline int finish(const char *name) {
    printf("%s: %lu passed, %lu failed\n", name, checks_passed, checks_failed);
    return checks_failed == 0 && checks_passed > 0 ? 0 : 1;
}

#endif
