/*
 * murmur3: MurmurHash3, x86 32-bit variant (Austin Appleby's algorithm), the hash that
 * flagd's `fractional` operation buckets with. Not a cryptographic hash.
 */
#ifndef SLUICE_MURMUR3_H
#define SLUICE_MURMUR3_H

#include <stddef.h>
#include <stdint.h>

/* The hash of len bytes at data with seed (flagd uses seed 0). */
uint32_t murmur3_32(const void *data, size_t len, uint32_t seed);

#endif
