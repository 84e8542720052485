// Compiles refruntime.h as C++17 (with and without RR_INLINE, see CMakeLists.txt) and checks that
// the declarations link and behave from C++: extern "C" linkage, bool returns, the initializer.
#include <refruntime.h>

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(std::is_standard_layout<rr_refcount_t>::value, "C layout");
static_assert(sizeof(rr_refcount_t) == sizeof(int32_t), "one int32_t");

int main()
{
    int failures = 0;
    auto check = [&](bool ok, const char *what) {
        if (!ok) {
            std::fprintf(stderr, "  CHECK failed: %s\n", what);
            failures++;
        }
    };
    rr_refcount_t r = RR_REFCOUNT_INIT(1);
    rr_refcount_inc(&r);
    check(rr_refcount_read(&r) == 2, "inc");
    check(!rr_refcount_dec_and_test(&r), "dec_and_test to 1");
    check(rr_refcount_dec_and_test(&r), "dec_and_test to 0");
    check(!rr_refcount_inc_not_zero(&r), "inc_not_zero on 0");
    check(rr_refcount_read(nullptr) == 0, "read(nullptr)");
    check(rr_take_last_error() == RR_EINVAL, "nullptr reported");
    check(std::strcmp(rr_status_str(RR_OK), "success") == 0, "status string");
    std::printf("%s header_cxx: %d passed, %d failed\n", failures ? "FAIL" : "PASS", failures ? 0 : 1,
                failures ? 1 : 0);
    return failures ? 1 : 0;
}
