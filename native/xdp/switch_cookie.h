/* The Miresga SYN cookie in C: HalfSipHash-2-4 over 16 bytes, and the cookie layout.
 *
 * The definition is miresga_core/cookie.py (the layout constants come from the generated
 * cookie_layout.h). This header has no BPF dependencies so a host program can check it
 * against tests/vectors/cookie.toml (native/xdp/tests/cookie_vectors.c). */
#ifndef MIRESGA_SWITCH_COOKIE_H
#define MIRESGA_SWITCH_COOKIE_H

#include <linux/types.h>
#include "generated/cookie_layout.h"

#define HSIP_ROTL(x, b) (__u32)(((x) << (b)) | ((x) >> (32 - (b))))

#define HSIP_ROUND(v0, v1, v2, v3)                                                      \
	do {                                                                            \
		v0 += v1; v1 = HSIP_ROTL(v1, 5); v1 ^= v0; v0 = HSIP_ROTL(v0, 16);      \
		v2 += v3; v3 = HSIP_ROTL(v3, 8); v3 ^= v2;                              \
		v0 += v3; v3 = HSIP_ROTL(v3, 7); v3 ^= v0;                              \
		v2 += v1; v1 = HSIP_ROTL(v1, 13); v1 ^= v2; v2 = HSIP_ROTL(v2, 16);     \
	} while (0)

/* One message word: c = 2 compression rounds. */
#define HSIP_WORD(m)                                                                    \
	do {                                                                            \
		v3 ^= (m); HSIP_ROUND(v0, v1, v2, v3); HSIP_ROUND(v0, v1, v2, v3);      \
		v0 ^= (m);                                                              \
	} while (0)

/* HalfSipHash-2-4, 32-bit output, of the 16-byte message m0..m3 (little-endian words). */
static inline __u32 halfsiphash24_4w(__u32 k0, __u32 k1, __u32 m0, __u32 m1, __u32 m2,
				     __u32 m3)
{
	__u32 v0 = k0, v1 = k1, v2 = 0x6c796765u ^ k0, v3 = 0x74656462u ^ k1;
	__u32 b = (__u32)16 << 24; /* length byte, no tail bytes */

	HSIP_WORD(m0);
	HSIP_WORD(m1);
	HSIP_WORD(m2);
	HSIP_WORD(m3);
	HSIP_WORD(b);
	v2 ^= 0xff;
	HSIP_ROUND(v0, v1, v2, v3);
	HSIP_ROUND(v0, v1, v2, v3);
	HSIP_ROUND(v0, v1, v2, v3);
	HSIP_ROUND(v0, v1, v2, v3);
	return v1 ^ v3;
}

/* MSS class: the largest COOKIE_MSS_CLASS_n <= mss; mss 0 means "no option". */
static inline __u32 miresga_mss_class(__u32 mss)
{
	if (mss >= COOKIE_MSS_CLASS_3)
		return 3;
	if (mss >= COOKIE_MSS_CLASS_2)
		return 2;
	if (mss >= COOKIE_MSS_CLASS_1)
		return 1;
	return 0;
}

/* The cookie. Addresses and ports are host-order integers; ws_code is the client's
 * window scale (<= 14) or COOKIE_WSCALE_NONE. */
static inline __u32 miresga_cookie(__u32 k0, __u32 k1, __u32 client, __u32 vip,
				   __u32 client_port, __u32 vip_port, __u32 slot,
				   __u32 mss_cls, __u32 ws_code, __u32 sack)
{
	__u32 w3 = (slot & COOKIE_SLOT_MSG_MASK) << 8 | mss_cls << 5 | ws_code << 1 | sack;
	__u32 h = halfsiphash24_4w(k0, k1, client, vip, client_port << 16 | vip_port, w3);

	return (slot & 3) << COOKIE_SLOT_POS | mss_cls << COOKIE_MSS_POS |
	       ws_code << COOKIE_WSCALE_POS | sack << COOKIE_SACK_POS | (h & COOKIE_HASH_MASK);
}

#endif /* MIRESGA_SWITCH_COOKIE_H */
