/* fe_steer.c -- see fe_steer.h. */
#include "fe_steer.h"

#include "fe_machine.h"

unsigned fe_steer_client(uint32_t ip, uint16_t port, unsigned n)
{
	/* a 64-bit finalizer (splitmix64): neighbouring ports and addresses spread evenly */
	uint64_t h = ((uint64_t)ip << 16 | port) + 0x9e3779b97f4a7c15ULL;

	h = (h ^ h >> 30) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ h >> 27) * 0x94d049bb133111ebULL;
	h ^= h >> 31;
	/* multiply-shift range reduction: no modulo bias worth the name, no division */
	return (unsigned)(((h >> 32) * (uint64_t)n) >> 32);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

int mfe_steer(const struct mfe *m, const uint8_t *raw, size_t len, unsigned n)
{
	uint32_t src, dst;
	uint16_t sport, dport;

	/* the checks fe_parse starts with: what passes them here may still be refused there
	 * (in the owner shard), what fails them here is refused by fe_parse anywhere */
	if (len < 40 || raw[0] != 0x45 || raw[9] != 6)
		return -1;
	src = rd32(raw + 12);
	dst = rd32(raw + 16);
	sport = rd16(raw + 20);
	dport = rd16(raw + 22);
	/* to a VIP: from the client; anything else the machine takes is from a backend leg,
	 * addressed to the client (or is not ours, which any shard drops alike) */
	if (mfe_is_vip(m, dst, dport))
		return (int)fe_steer_client(src, sport, n);
	return (int)fe_steer_client(dst, dport, n);
}
