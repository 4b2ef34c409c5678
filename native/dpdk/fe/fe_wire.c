/* fe_wire.c -- see fe_wire.h. Checksums are computed over the whole segment when one is
 * built (the machine builds new segments; it never edits a received one in place). */
#include "fe_wire.h"

#include <string.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "../../xdp/agent_siphash.h"
#include "../../xdp/miresga_option.h"
#include "../../xdp/switch_cookie.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static uint32_t csum_add(const uint8_t *data, size_t len, uint32_t sum)
{
	uint64_t s = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(data[i] << 8 | data[i + 1]);
	if (len & 1)
		s += (uint32_t)data[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

uint16_t fe_csum(const uint8_t *data, size_t len, uint32_t initial)
{
	return (uint16_t)(~csum_add(data, len, initial) & 0xffff);
}

int fe_parse(const uint8_t *raw, size_t len, struct fe_seg *s, const char **why)
{
	unsigned total, doff;

	if (len < 40) { *why = "too short for IPv4 + TCP"; return -1; }
	if (raw[0] != 0x45) { *why = "not IPv4 without options"; return -1; }
	if (raw[9] != 6) { *why = "not TCP"; return -1; }
	if (rd16(raw + 6) & 0x3fff) { *why = "IP fragment"; return -1; }
	total = rd16(raw + 2);
	if (total < 40 || total > len) { *why = "IP total length does not fit"; return -1; }
	doff = (unsigned)(raw[32] >> 4) * 4;
	if (doff < 20 || doff > total - 20) { *why = "TCP data offset out of range"; return -1; }
	s->src = rd32(raw + 12);
	s->dst = rd32(raw + 16);
	s->ip_id = rd16(raw + 4);
	s->ttl = raw[8];
	s->sport = rd16(raw + 20);
	s->dport = rd16(raw + 22);
	s->seq = rd32(raw + 24);
	s->ack = rd32(raw + 28);
	s->flags = raw[33] & 0x3f;
	s->window = rd16(raw + 34);
	s->opts = raw + 40;
	s->opts_len = doff - 20;
	s->payload = raw + 20 + doff;
	s->payload_len = total - 20 - doff;
	return 0;
}

int fe_encode(const struct fe_seg *s, uint8_t *out, size_t cap)
{
	size_t tcp_len = 20 + (size_t)s->opts_len + s->payload_len;
	uint8_t pseudo[12];
	uint32_t sum;

	if (s->opts_len % 4 || s->opts_len > 40 || 20 + tcp_len > cap || 20 + tcp_len > 65535)
		return -1;
	memset(out, 0, 40);
	out[0] = 0x45;
	wr16(out + 2, (uint16_t)(20 + tcp_len));
	wr16(out + 4, s->ip_id);
	wr16(out + 6, 0x4000);
	out[8] = s->ttl;
	out[9] = 6;
	wr32(out + 12, s->src);
	wr32(out + 16, s->dst);
	wr16(out + 10, fe_csum(out, 20, 0));
	wr16(out + 20, s->sport);
	wr16(out + 22, s->dport);
	wr32(out + 24, s->seq);
	wr32(out + 28, s->ack);
	out[32] = (uint8_t)((5 + s->opts_len / 4) << 4);
	out[33] = s->flags;
	wr16(out + 34, s->window);
	if (s->opts_len)
		memcpy(out + 40, s->opts, s->opts_len);
	if (s->payload_len)
		memcpy(out + 40 + s->opts_len, s->payload, s->payload_len);
	memcpy(pseudo, out + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	wr16(pseudo + 10, (uint16_t)tcp_len);
	sum = csum_add(pseudo, 12, 0);
	wr16(out + 36, fe_csum(out + 20, tcp_len, sum));
	return (int)(20 + tcp_len);
}

uint32_t fe_cookie_encode(const uint8_t key[8], uint32_t client, uint16_t cport, uint32_t vip,
			  uint16_t vport, uint64_t slot, uint32_t mss_cls, int wscale, int sack)
{
	uint32_t ws = wscale < 0 ? COOKIE_WSCALE_NONE
		      : (uint32_t)(wscale > COOKIE_WSCALE_MAX ? COOKIE_WSCALE_MAX : wscale);

	return miresga_cookie(le32(key), le32(key + 4), client, vip, cport, vport, (uint32_t)slot,
			      mss_cls & 3, ws, sack ? 1 : 0);
}

uint32_t fe_mss_class(uint32_t mss) { return miresga_mss_class(mss); }

static const uint16_t mss_classes[COOKIE_N_MSS_CLASSES] = {
	COOKIE_MSS_CLASS_0, COOKIE_MSS_CLASS_1, COOKIE_MSS_CLASS_2, COOKIE_MSS_CLASS_3,
};

int fe_cookie_validate(const uint8_t *cur, const uint8_t *prev, uint32_t cookie,
		       uint32_t client, uint16_t cport, uint32_t vip, uint16_t vport,
		       uint64_t now_slot, struct fe_cookie_info *info)
{
	uint32_t code = cookie >> COOKIE_SLOT_POS, mss_cls = (cookie >> COOKIE_MSS_POS) & 3;
	uint32_t ws = (cookie >> COOKIE_WSCALE_POS) & 0xf, sack = (cookie >> COOKIE_SACK_POS) & 1;
	const uint8_t *keys[2] = {cur, prev};
	int i, k;

	for (i = 0; i < 2; i++) {
		uint64_t slot = now_slot - (uint64_t)i;

		if ((slot & 3) != code)
			continue;
		for (k = 0; k < 2; k++) {
			uint32_t c;

			if (!keys[k])
				continue;
			c = miresga_cookie(le32(keys[k]), le32(keys[k] + 4), client, vip, cport, vport,
					   (uint32_t)slot, mss_cls, ws, sack);
			if ((c & COOKIE_HASH_MASK) == (cookie & COOKIE_HASH_MASK)) {
				info->slot = (uint32_t)slot;
				info->mss = mss_classes[mss_cls];
				info->wscale = ws == COOKIE_WSCALE_NONE ? -1 : (int8_t)ws;
				info->sack = (uint8_t)sack;
				info->previous_secret = (uint8_t)k;
				return 1;
			}
		}
	}
	return 0;
}

void fe_option_encode(uint8_t out[20], const uint8_t key[16], uint32_t seq_base, uint16_t mss,
		      int client_wscale, int switch_wscale, int sack, int key_slot,
		      uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
		      uint32_t seq)
{
	uint8_t msg[MIRESGA_OPT_MSG_LEN];
	uint8_t flags = (sack ? MIRESGA_OPT_F_SACK_OK : 0) |
			(client_wscale >= 0 ? MIRESGA_OPT_F_WSCALE_OK : 0) |
			(key_slot ? MIRESGA_OPT_F_KEY_SLOT : 0);
	uint64_t tag;
	int i;

	out[0] = MIRESGA_OPT_KIND;
	out[1] = MIRESGA_OPT_LEN;
	wr16(out + 2, MIRESGA_OPT_EXID);
	out[4] = (uint8_t)(MIRESGA_OPT_VERSION << 4 | flags);
	out[5] = client_wscale >= 0 ? (uint8_t)(client_wscale << 4 | (switch_wscale & 0xf)) : 0;
	wr16(out + 6, mss);
	wr32(out + 8, seq_base);
	wr32(msg, saddr);
	wr32(msg + 4, daddr);
	wr16(msg + 8, sport);
	wr16(msg + 10, dport);
	wr32(msg + 12, seq);
	memcpy(msg + 16, out + 4, 8);
	tag = siphash24_24(le64(key), le64(key + 8), le64(msg), le64(msg + 8), le64(msg + 16));
	for (i = 0; i < 8; i++)
		out[MIRESGA_OPT_TAG_OFF + i] = (uint8_t)(tag >> (8 * i));
}

/* Offset of the first option `kind` of exactly `olen` bytes, or -1 (frontend/machine.py
 * _find_option). */
static int find_option(const uint8_t *o, uint32_t len, uint8_t kind, uint8_t olen)
{
	uint32_t i = 0;

	while (i < len) {
		if (o[i] == 0)
			break;
		if (o[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || o[i + 1] < 2)
			break;
		if (o[i] == kind && o[i + 1] == olen && i + olen <= len)
			return (int)i;
		i += o[i + 1];
	}
	return -1;
}

uint16_t fe_mss_option(const uint8_t *o, uint32_t len)
{
	int at = find_option(o, len, 2, 4);

	return at < 0 ? 0 : rd16(o + at + 2);
}

int fe_ts_option(const uint8_t *o, uint32_t len, uint32_t *val, uint32_t *ecr)
{
	int at = find_option(o, len, MIRESGA_OPT_TS_KIND, MIRESGA_OPT_TS_LEN);

	if (at < 0)
		return 0;
	*val = rd32(o + at + 2);
	*ecr = rd32(o + at + 6);
	return 1;
}

void fe_ts_trailer(uint8_t out[MIRESGA_OPT_TS_TRAILER_LEN], uint32_t tsval, uint32_t ts_base)
{
	out[0] = 1;
	out[1] = 1;
	out[2] = MIRESGA_OPT_TS_KIND;
	out[3] = MIRESGA_OPT_TS_LEN;
	wr32(out + 4, tsval);
	wr32(out + 8, ts_base);
}
