/* SipHash-2-4 of a fixed 24-byte message (three little-endian 64-bit words), for the tag of
 * the Miresga SYN option. Straight-line code: no loops, no helpers. Same function as
 * miresga_core/wire/siphash.py; tests compare the two through BPF_PROG_TEST_RUN. */
#ifndef MIRESGA_AGENT_SIPHASH_H
#define MIRESGA_AGENT_SIPHASH_H

#include <linux/types.h>

#define SIP_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                             \
	do {                                                                  \
		v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32); \
		v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                    \
		v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                    \
		v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32); \
	} while (0)
#define SIP_COMPRESS(m)                                                       \
	do {                                                                  \
		v3 ^= (m); SIP_ROUND; SIP_ROUND; v0 ^= (m);                   \
	} while (0)

static __always_inline __u64 siphash24_24(__u64 k0, __u64 k1, __u64 m0, __u64 m1, __u64 m2)
{
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	const __u64 b = 24ULL << 56; /* message length in the last block, no tail bytes */

	SIP_COMPRESS(m0);
	SIP_COMPRESS(m1);
	SIP_COMPRESS(m2);
	SIP_COMPRESS(b);
	v2 ^= 0xff;
	SIP_ROUND; SIP_ROUND; SIP_ROUND; SIP_ROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

#endif
