/* Internet checksum helpers: incremental updates (RFC 1624, eqn. 3) and a full sum over
 * a bounded header. Values are used as they lie in the packet, so byte order does not
 * matter as long as old and new come from the same place. */
#ifndef MIRESGA_SWITCH_CSUM_H
#define MIRESGA_SWITCH_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* HC' = ~(~HC + ~m + m') */
static __always_inline void csum_replace2(__u16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~old;
	sum += new;
	*check = csum_fold32(sum);
}

static __always_inline void csum_replace4(__u16 *check, __u32 old, __u32 new)
{
	csum_replace2(check, (__u16)old, (__u16)new);
	csum_replace2(check, (__u16)(old >> 16), (__u16)(new >> 16));
}

/* Ones' complement sum of n 16-bit words (n a compile-time constant). */
static __always_inline __u32 csum_words(const __u16 *p, int n, __u32 sum)
{
#pragma unroll
	for (int i = 0; i < n; i++)
		sum += p[i];
	return sum;
}

#endif /* MIRESGA_SWITCH_CSUM_H */
