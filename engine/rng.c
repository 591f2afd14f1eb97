/* rng.c - xoshiro256** seeded with splitmix64. See rng.h. */
#include "rng.h"

#include <math.h>

uint64_t rng_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rng__rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng *r, uint64_t seed) {
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&sm);
    /* splitmix64 is a bijection of distinct counter values, so four
     * consecutive outputs cannot all be zero; kept as a guard for the
     * xoshiro invariant anyway. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

uint64_t rng_next_u64(rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rng__rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng__rotl(s[3], 45);
    return result;
}

double rng_uniform(rng *r) {
    /* Top 53 bits scaled by 2^-53: exactly representable, in [0, 1). */
    return (double)(rng_next_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* Reject the lowest 2^64 mod n values so every residue is equally
     * likely; the loop runs more than once with probability < n / 2^64. */
    const uint64_t thresh = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_next_u64(r);
        if (x >= thresh) return x % n;
    }
}

double rng_normal(rng *r) {
    /* 1 - u is in (0, 1], so the log is finite. */
    double u1 = 1.0 - rng_uniform(r);
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}
