/* cpu_features.h - what the CPU we run on can execute, detected once at run
 * time, so that kernels compiled for several instruction sets (GCC
 * `target` attributes) pick the widest one the machine supports.
 *
 * Detection uses __builtin_cpu_supports, which also checks that the OS
 * saves the wider register state (XCR0), so "avx512f" is only reported when
 * the kernel enables ZMM state.
 *
 * Threads: every function may be called from any thread; the detection
 * runs once (pthread_once) and the result is read-only afterwards.
 */
#ifndef CPU_FEATURES_H
#define CPU_FEATURES_H

#include <stdbool.h>

/* Instruction-set levels of the engine's SIMD kernels, in increasing order:
 * a level is usable when cpu_isa_supported() says so. */
typedef enum cpu_isa {
    CPU_ISA_SCALAR = 0,  /* portable C, any CPU */
    CPU_ISA_AVX2 = 1,    /* AVX2 + FMA (256-bit, 16 registers) */
    CPU_ISA_AVX512 = 2,  /* AVX-512F (+ AVX2, FMA): 512-bit, 32 registers, masks */
    CPU_ISA_COUNT
} cpu_isa;

typedef struct cpu_features {
    bool avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
} cpu_features;

/* The detected features; a pointer to a process-wide constant. */
const cpu_features *cpu_features_get(void);

/* Whether kernels of level isa can run here (CPU_ISA_SCALAR: always). */
bool cpu_isa_supported(cpu_isa isa);

/* The widest supported level. */
cpu_isa cpu_isa_best(void);

/* "scalar", "avx2", "avx512"; "?" for values out of range. */
const char *cpu_isa_name(cpu_isa isa);

#endif
