/* Flow hashes of the client (address, port): CRC32 picks the lb_index bucket, CRC32C
 * gives the two Bloom filter probes (low and high 16 bits). Both are standard reflected
 * CRCs (init and xorout 0xffffffff) over the 6 bytes address || port in network order:
 * the polynomials a Tofino hash unit computes natively, and zlib.crc32 / crc32c in Python
 * (miresga_core/dataplane/flowhash.py). Not keyed: they spread load, they guard nothing. */
#ifndef MIRESGA_SWITCH_HASH_H
#define MIRESGA_SWITCH_HASH_H

#include <linux/types.h>

#define CRC32_POLY 0xedb88320u  /* IEEE 802.3, reflected */
#define CRC32C_POLY 0x82f63b78u /* Castagnoli, reflected */

static __always_inline __u32 crc32_6(const __u8 b[6], __u32 poly)
{
	__u32 crc = 0xffffffffu;

#pragma unroll
	for (int i = 0; i < 6; i++) {
		crc ^= b[i];
#pragma unroll
		for (int j = 0; j < 8; j++)
			crc = (crc >> 1) ^ (poly & (0u - (crc & 1)));
	}
	return ~crc;
}

/* addr and port in network order, as in the packet */
static __always_inline void flow_bytes(__u8 out[6], __be32 addr, __be16 port)
{
	__builtin_memcpy(out, &addr, 4);
	__builtin_memcpy(out + 4, &port, 2);
}

#endif /* MIRESGA_SWITCH_HASH_H */
