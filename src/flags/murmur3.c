#include "flags/murmur3.h"

#include <string.h>

static uint32_t rotl(uint32_t x, int r)
{
	return x << r | x >> (32 - r);
}

/* The mixing of one 4-byte block into the running hash, before the final avalanche. */
static uint32_t scramble(uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = rotl(k, 15);
	return k * 0x1b873593u;
}

uint32_t murmur3_32(const void *data, size_t len, uint32_t seed)
{
	const unsigned char *p = data;
	uint32_t h = seed;
	size_t blocks = len / 4;
	for (size_t i = 0; i < blocks; i++) {
		/* blocks are read little-endian, whatever the machine */
		uint32_t k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
			     (uint32_t)p[4 * i + 3] << 24;
		h ^= scramble(k);
		h = rotl(h, 13);
		h = h * 5 + 0xe6546b64u;
	}
	const unsigned char *tail = p + blocks * 4;
	uint32_t k = 0;
	switch (len & 3) {
	case 3:
		k ^= (uint32_t)tail[2] << 16;
		/* fall through */
	case 2:
		k ^= (uint32_t)tail[1] << 8;
		/* fall through */
	case 1:
		k ^= tail[0];
		h ^= scramble(k);
	}
	h ^= (uint32_t)len;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}
