/* fe_wire.h -- IPv4/TCP segments, the SYN cookie check and the Miresga option for the C
 * front-end. Pure C (no DPDK): the same definitions as miresga_core/frontend/packet.py,
 * miresga_core/cookie.py and miresga_core/wire/option.py; the constants come from the
 * generated headers (native/xdp/generated/cookie_layout.h, native/xdp/miresga_option.h). */
#ifndef FE_WIRE_H
#define FE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define FE_FIN 0x01
#define FE_SYN 0x02
#define FE_RST 0x04
#define FE_PSH 0x08
#define FE_ACK 0x10

/* Largest packet the machine builds or takes (IPv4 total length is 16 bits). */
#define FE_MAX_PKT 65535

/* One TCP segment; options and payload point into someone else's buffer. */
struct fe_seg {
	uint32_t src, dst;              /* host order */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t window;
	uint16_t ip_id;
	uint8_t ttl;
	const uint8_t *opts;
	uint32_t opts_len;
	const uint8_t *payload;
	uint32_t payload_len;
};

static inline int32_t fe_seq_diff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

/* The Internet checksum (RFC 1071) over data, starting from a partial sum; folded and
 * complemented. */
uint16_t fe_csum(const uint8_t *data, size_t len, uint32_t initial);

/* Parse layer-3 bytes (IPv4 without options + TCP). 0, or -1 with a reason. */
int fe_parse(const uint8_t *raw, size_t len, struct fe_seg *s, const char **why);

/* Encode into out (capacity cap); the length, or -1 when it does not fit or the options
 * are not a multiple of 4 up to 40 bytes. Both checksums are filled in. */
int fe_encode(const struct fe_seg *s, uint8_t *out, size_t cap);

/* The cookie check of miresga_core/cookie.validate. keys: current, and previous or NULL
 * (8 bytes each). Returns 1 and the fields, or 0. wscale -1: none. */
struct fe_cookie_info {
	uint32_t slot;
	uint16_t mss;
	int8_t wscale;
	uint8_t sack;
	uint8_t previous_secret;
};
int fe_cookie_validate(const uint8_t *cur, const uint8_t *prev, uint32_t cookie,
		       uint32_t client, uint16_t cport, uint32_t vip, uint16_t vport,
		       uint64_t now_slot, struct fe_cookie_info *info);
uint32_t fe_cookie_encode(const uint8_t key[8], uint32_t client, uint16_t cport, uint32_t vip,
			  uint16_t vport, uint64_t slot, uint32_t mss_cls, int wscale,
			  int sack);

/* The cookie's MSS class of a SYN's MSS option (0: the SYN had none). */
uint32_t fe_mss_class(uint32_t mss);

/* The 20 option bytes of miresga_core/wire/option.encode. key: 16 bytes. */
void fe_option_encode(uint8_t out[20], const uint8_t key[16], uint32_t seq_base, uint16_t mss,
		      int client_wscale, int switch_wscale, int sack, int key_slot,
		      uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
		      uint32_t seq);

/* The MSS option of a SYN-ACK's options, or 0 when there is none. */
uint16_t fe_mss_option(const uint8_t *opts, uint32_t len);
/* The timestamps option (RFC 7323): 1 and *val, *ecr when present, else 0. */
int fe_ts_option(const uint8_t *opts, uint32_t len, uint32_t *val, uint32_t *ecr);
/* NOP,NOP,TS(tsval, ts_base): 12 bytes after the Miresga option (wire/option.py ts_trailer) */
void fe_ts_trailer(uint8_t out[12], uint32_t tsval, uint32_t ts_base);

#endif /* FE_WIRE_H */
