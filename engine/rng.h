/* rng.h - a small seeded pseudo-random generator for the engine.
 *
 * xoshiro256** (Blackman & Vigna) with its 256-bit state filled from a 64-bit
 * seed by splitmix64, as its authors recommend. Not cryptographic. The output
 * stream is a pure function of the seed: the sampler relies on that for
 * "same seed, same tokens", and training code for reproducible runs.
 *
 * Threads: an rng is plain data owned by its user; no shared state. Two
 * threads may use two rngs at once, never one rng.
 */
#ifndef RNG_H
#define RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];  /* xoshiro256** state; never all zero after rng_seed */
} rng;

/* One step of splitmix64: advances *state by the golden-ratio increment and
 * returns the mixed value. Usable on its own to derive sub-seeds. */
uint64_t rng_splitmix64(uint64_t *state);

/* Seeds r from seed (any value, 0 included). */
void rng_seed(rng *r, uint64_t seed);

/* Next 64 uniformly distributed bits. */
uint64_t rng_next_u64(rng *r);

/* Uniform double in [0, 1) with 53 random bits (never 1.0). */
double rng_uniform(rng *r);

/* Uniform integer in [0, n) without modulo bias (rejection of the
 * 2^64 mod n lowest values). n == 0 returns 0. */
uint64_t rng_below(rng *r, uint64_t n);

/* Standard normal deviate (Box-Muller; uses two uniforms per call, keeps no
 * spare so the stream position is easy to reason about). */
double rng_normal(rng *r);

#endif
