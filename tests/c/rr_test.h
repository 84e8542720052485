/* A minimal test harness for RefRuntime's C tests: CHECK macros, a case table, a summary. */
#ifndef RR_TEST_H
#define RR_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every C test is built twice; MODE names the build in the case names and the summary. */
#ifdef RR_INLINE
#define MODE "inline"
#else
#define MODE "export"
#endif

static int rr_test_failures;

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
            rr_test_failures++;                                                                 \
        }                                                                                       \
    } while (0)

#define CHECK_EQ(a, b)                                                                          \
    do {                                                                                        \
        long long rr_a_ = (long long)(a), rr_b_ = (long long)(b);                               \
        if (rr_a_ != rr_b_) {                                                                   \
            fprintf(stderr, "  %s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n",      \
                    __FILE__, __LINE__, #a, rr_a_, #b, rr_b_);                                  \
            rr_test_failures++;                                                                 \
        }                                                                                       \
    } while (0)

struct rr_test_case {
    const char *name;
    void (*fn)(void);
};

/* Runs every case (or the one named in argv[1]); prints one line per case and a summary. */
static int rr_test_main(const char *suite, const struct rr_test_case *cases, size_t n, int argc,
                        char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        int before = rr_test_failures;
        cases[i].fn();
        if (rr_test_failures == before) {
            passed++;
            printf("PASS %s.%s\n", suite, cases[i].name);
        } else {
            failed++;
            printf("FAIL %s.%s\n", suite, cases[i].name);
        }
        fflush(stdout);
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

#endif
