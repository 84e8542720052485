// A C++ host linked with librefruntime.a (RefRuntime::refruntime_static) that defines names the
// .NET runtime inside the archive also defines: the global operator new/delete (NativeAOT's C++
// shim has its own), a minipal_* and a SystemNative_* function and g_cpuFeatures. The archive
// keeps only rr_* global (scripts/make-static-archive.sh), so this links without a multiple
// definition, each side uses its own, and the runtime still works. Linking the runtime's pieces
// as NativeAOT ships them fails here with "multiple definition of `operator delete(void*)'".
#include <refruntime.h>

#include <cstdio>
#include <cstdlib>
#include <new>

static long s_hostNews;

void *operator new(std::size_t n)
{
    s_hostNews++;
    if (void *p = std::malloc(n ? n : 1))
        return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }

extern "C" {
int minipal_getcpufeatures(void) { return 42; }
int SystemNative_GetPid(void) { return -1; }
int g_cpuFeatures = 7;
}

int main()
{
    int failures = 0;
    auto check = [&](bool ok, const char *what) {
        if (!ok) {
            std::fprintf(stderr, "  CHECK failed: %s\n", what);
            failures++;
        }
    };
    int *x = new int(3);
    delete x;
    check(s_hostNews == 1, "the host's operator new is the one C++ code gets");
    check(minipal_getcpufeatures() == 42 && SystemNative_GetPid() == -1 && g_cpuFeatures == 7,
          "the host's definitions are the ones the host sees");

    check(rr_version() == ((RR_VERSION_MAJOR << 16) | (RR_VERSION_MINOR << 8) | RR_VERSION_PATCH),
          "rr_version from the archive");
    void *a = nullptr;
    rr_weak_t w;
    check(rr_arc_new(64, 8, nullptr, nullptr, &a) == RR_OK && a != nullptr, "rr_arc_new");
    check(rr_arc_downgrade(a, &w) == RR_OK, "downgrade");
    check(rr_arc_drop(a) == RR_OK, "last strong drop");
    void *again = a;
    check(rr_weak_upgrade(w, &again) == RR_OK && again == nullptr, "never resurrected");
    check(rr_weak_drop(w) == RR_OK, "weak drop");
    check(rr_heap_live_count() == 0, "nothing left allocated");
    std::printf("%s static_host: %d passed, %d failed\n", failures ? "FAIL" : "PASS", failures ? 0 : 1,
                failures ? 1 : 0);
    return failures ? 1 : 0;
}
