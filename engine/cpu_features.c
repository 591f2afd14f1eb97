/* cpu_features.c - run-time CPU feature detection; see cpu_features.h. */
#include "cpu_features.h"

#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static cpu_features cpu__feat;
static pthread_once_t cpu__once = PTHREAD_ONCE_INIT;

static void cpu__detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    cpu__feat.avx = __builtin_cpu_supports("avx");
    cpu__feat.avx2 = __builtin_cpu_supports("avx2");
    cpu__feat.fma = __builtin_cpu_supports("fma");
    cpu__feat.avx512f = __builtin_cpu_supports("avx512f");
    cpu__feat.avx512bw = __builtin_cpu_supports("avx512bw");
    cpu__feat.avx512vl = __builtin_cpu_supports("avx512vl");
    cpu__feat.avx512vnni = __builtin_cpu_supports("avx512vnni");
    /* clang before 16 knows neither "f16c" nor "avx512bf16" as feature
     * strings: ask cpuid (leaf 1 ECX bit 29; leaf 7 sub-leaf 1 EAX bit 5);
     * the OS's register-state checks are avx's and avx512f's */
    unsigned a = 0, b = 0, c = 0, d = 0;
    cpu__feat.f16c = cpu__feat.avx && __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
    cpu__feat.avx512bf16 = cpu__feat.avx512f && __get_cpuid_count(7, 1, &a, &b, &c, &d) &&
                           (a >> 5 & 1);
#endif
}

const cpu_features *cpu_features_get(void)
{
    pthread_once(&cpu__once, cpu__detect);
    return &cpu__feat;
}

bool cpu_isa_supported(cpu_isa isa)
{
    const cpu_features *f = cpu_features_get();
    switch (isa) {
    case CPU_ISA_SCALAR:
        return true;
    case CPU_ISA_AVX2:
        return f->avx2 && f->fma;
    case CPU_ISA_AVX512:
        return f->avx512f && f->avx2 && f->fma;
    default:
        return false;
    }
}

cpu_isa cpu_isa_best(void)
{
    if (cpu_isa_supported(CPU_ISA_AVX512))
        return CPU_ISA_AVX512;
    if (cpu_isa_supported(CPU_ISA_AVX2))
        return CPU_ISA_AVX2;
    return CPU_ISA_SCALAR;
}

const char *cpu_isa_name(cpu_isa isa)
{
    static const char *const names[CPU_ISA_COUNT] = {"scalar", "avx2", "avx512"};
    return (unsigned)isa < CPU_ISA_COUNT ? names[isa] : "?";
}
