// SPDX-License-Identifier: Apache-2.0
/* In-kernel splice for the `kernel` data plane (docs/splice.md).
 *
 * Theory of operation. Both sockets of a proxied pair sit in a SOCKHASH keyed by their
 * socket cookie, with this stream verdict (no stream parser) attached to it. Every byte a
 * member socket receives goes through splice_verdict, which counts it in the socket's
 * splice_state.seen (its offset in the socket's receive stream) and either
 *   - gives it to user space (SK_PASS): the default, e.g. request and response heads;
 *   - or redirects it out of the peer socket (bpf_sk_redirect_hash, egress), when user
 *     space armed this socket with splice_ctl {peer, start, end, gen} and the bytes lie in
 *     [start, end).
 * Ordering rule: redirected bytes overtake any byte still queued for user space, so an
 * arming only becomes active when the first message after it starts exactly at `start`
 * (= what user space had read when it armed): then nothing is queued unread. Otherwise the
 * arming is declined and user space relays; it may arm again later.
 * A bounded arming (a response body of known length) ends at `end`: the verdict emits a
 * splice_event on the ring buffer when a redirected skb ends exactly there, and later bytes
 * go to user space again (the next response head). An skb that crosses `end` (a backend
 * sending more than the response) is given to user space whole; user space learns how
 * many bytes were spliced before it from splice_state.spliced, and writes nothing to the
 * client before the redirected bytes reached the client's send queue (see splice.py).
 * Tunnels use end = SPLICE_END_UNBOUNDED.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "splice_shared.h"

#define SPLICE_LINEAR_MAX (256 * 1024)

/* the sockets taking part, by cookie: redirect targets */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} splice_socks SEC(".maps");

/* armings, written by user space only */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct splice_ctl);
} splice_ctl SEC(".maps");

/* stream counters, created (zeroed) by user space, updated here */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct splice_state);
} splice_state SEC(".maps");

/* "arming reached its end": user space polls this fd in its event loop */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} splice_events SEC(".maps");

static __always_inline void notify_end(__u64 cookie, const struct splice_ctl *ctl)
{
	struct splice_event *ev = bpf_ringbuf_reserve(&splice_events, sizeof(*ev), 0);

	if (!ev)
		return; /* ring full: user space notices through its timeout */
	ev->kind = SPLICE_EV_END;
	ev->cookie = cookie;
	ev->gen = ctl->gen;
	ev->end = ctl->end;
	ev->head_len = 0;
	bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP); /* adaptive wakeups can be lost */
}

/* ----------------------------------------------------------- response heads
 * ARM_RESPONSE: the first skb of the next response must hold its whole head (at most
 * SPLICE_HEAD_MAX bytes), a status that has a body (not 1xx, 204, 304), a Content-Length
 * of at least ctl->min_body and no Transfer-Encoding, and nothing past the response's
 * end. Then the whole response (head too) is spliced and user space gets a copy of the
 * head in an EV_HEAD event; otherwise the whole response goes to user space. */

#define HMASK (SPLICE_HEAD_MAX - 1)

/* the event under construction (per CPU): heads are parsed in place, then copied out */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct splice_event);
} splice_scratch SEC(".maps");

struct head_scan {
	__u32 n;     /* bytes of the skb copied into the scratch head */
	__u32 hlen;  /* head length found, 0 = none */
	__s64 body;  /* Content-Length, -1 = none yet */
	__u32 bad;   /* Transfer-Encoding or a malformed Content-Length */
};

static __always_inline struct splice_event *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&splice_scratch, &zero);
}

/* case-insensitive header names, char by char: no string literals (libbpf 1.1 cannot
 * load .rodata.str sections) */
#define LC(h, i, k) ((h)[((i) + (k)) & HMASK] | 0x20)

static __always_inline int is_content_length(const __u8 *h, __u32 i)
{
	return LC(h, i, 0) == 'c' && LC(h, i, 1) == 'o' && LC(h, i, 2) == 'n' &&
	       LC(h, i, 3) == 't' && LC(h, i, 4) == 'e' && LC(h, i, 5) == 'n' &&
	       LC(h, i, 6) == 't' && LC(h, i, 7) == '-' && LC(h, i, 8) == 'l' &&
	       LC(h, i, 9) == 'e' && LC(h, i, 10) == 'n' && LC(h, i, 11) == 'g' &&
	       LC(h, i, 12) == 't' && LC(h, i, 13) == 'h' && LC(h, i, 14) == ':';
}

static __always_inline int is_transfer_encoding(const __u8 *h, __u32 i)
{
	return LC(h, i, 0) == 't' && LC(h, i, 1) == 'r' && LC(h, i, 2) == 'a' &&
	       LC(h, i, 3) == 'n' && LC(h, i, 4) == 's' && LC(h, i, 5) == 'f' &&
	       LC(h, i, 6) == 'e' && LC(h, i, 7) == 'r' && LC(h, i, 8) == '-' &&
	       LC(h, i, 9) == 'e' && LC(h, i, 10) == 'n' && LC(h, i, 11) == 'c' &&
	       LC(h, i, 12) == 'o' && LC(h, i, 13) == 'd' && LC(h, i, 14) == 'i' &&
	       LC(h, i, 15) == 'n' && LC(h, i, 16) == 'g' && LC(h, i, 17) == ':';
}

/* bpf_loop callback: find the empty line that ends the head */
static long find_head_end(__u32 i, void *arg)
{
	struct head_scan *scan = arg;
	struct splice_event *ev = scratch();
	const __u8 *h;

	if (!ev || i + 3 >= scan->n)
		return 1;
	h = ev->head;
	if (h[i & HMASK] == '\r' && h[(i + 1) & HMASK] == '\n' && h[(i + 2) & HMASK] == '\r' &&
	    h[(i + 3) & HMASK] == '\n') {
		scan->hlen = i + 4;
		return 1;
	}
	return 0;
}

/* bpf_loop callback: at each line start, look for Content-Length / Transfer-Encoding */
static long find_length(__u32 i, void *arg)
{
	struct head_scan *scan = arg;
	struct splice_event *ev = scratch();
	const __u8 *h;
	__u32 j, digits = 0;
	__s64 value = 0;

	if (!ev || i >= scan->hlen)
		return 1;
	h = ev->head;
	if (i == 0 || h[(i - 1) & HMASK] != '\n')
		return 0;
	if (is_transfer_encoding(h, i)) {
		scan->bad = 1;
		return 1;
	}
	if (scan->body >= 0 || !is_content_length(h, i))
		return 0;
	j = i + 15; /* strlen("content-length:") */
	for (int k = 0; k < 8 && (h[j & HMASK] == ' ' || h[j & HMASK] == '\t'); k++)
		j++;
	for (int k = 0; k < 18; k++) {
		__u8 c = h[(j + k) & HMASK];

		if (c < '0' || c > '9')
			break;
		value = value * 10 + (c - '0');
		digits++;
	}
	if (!digits) {
		scan->bad = 1;
		return 1;
	}
	scan->body = value;
	return 0;
}

static __always_inline int status_has_body(const __u8 *h)
{
	int status;

	if (h[0] != 'H' || h[1] != 'T' || h[2] != 'T' || h[3] != 'P' || h[4] != '/' ||
	    h[8] != ' ')
		return 0;
	if (h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' ||
	    h[11] > '9')
		return 0;
	status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
	return status >= 200 && status != 204 && status != 304;
}

/* Returns the stream offset where the response ends, or 0: give it to user space. */
static __always_inline __u64 parse_response(struct __sk_buff *skb, __u64 cookie,
					    const struct splice_ctl *ctl, __u64 off, __u64 len)
{
	struct head_scan scan = { .body = -1 };
	struct splice_event *ev = scratch();
	__u64 n = len < HMASK ? len : HMASK;

	if (!ev)
		return 0;
	/* two separate checks: merged, clang turns them into one unsigned compare and the
	 * verifier loses the lower bound that bpf_skb_load_bytes needs */
	if (n < 16)
		return 0;
	barrier_var(n);
	if (n > HMASK)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, ev->head, n) < 0)
		return 0;
	scan.n = n;
	bpf_loop(SPLICE_HEAD_MAX, find_head_end, &scan, 0);
	if (!scan.hlen || !status_has_body(ev->head))
		return 0;
	bpf_loop(SPLICE_HEAD_MAX, find_length, &scan, 0);
	if (scan.bad || scan.body < 0 || (__u64)scan.body < ctl->min_body ||
	    scan.hlen + (__u64)scan.body < len)
		return 0;
	ev->kind = SPLICE_EV_HEAD;
	ev->cookie = cookie;
	ev->gen = ctl->gen;
	ev->end = off + scan.hlen + scan.body;
	ev->head_len = scan.hlen;
	if (bpf_ringbuf_output(&splice_events, ev, sizeof(*ev), BPF_RB_FORCE_WAKEUP) < 0)
		return 0; /* user space could not learn about it: let it see the response */
	return ev->end;
}

/* The kernel worker sends a redirected skb with one sendmsg per page fragment and
 * pushes after each (skb_send_sock passes no MSG_MORE): a 64 KiB skb of 4 KiB page-cache
 * fragments leaves as ~16 small packets. Pulled into one linear buffer it is sent with one
 * sendmsg, as full-size TSO packets. Costs one copy; on failure (no memory) the skb goes
 * as it is. */
static __always_inline void linearize(struct __sk_buff *skb, __u64 len)
{
	if (len > SPLICE_LINEAR_MAX)
		return;
	if ((__u64)((long)skb->data_end - (long)skb->data) >= len)
		return; /* already linear */
	bpf_skb_pull_data(skb, len);
}

SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct splice_state *st = bpf_map_lookup_elem(&splice_state, &cookie);
	struct splice_state *peer_st;
	struct splice_ctl *ctl;
	__u64 off, len = skb->len, peer;

	if (!st)
		return SK_PASS;
	off = st->seen;
	st->seen = off + len;
	ctl = bpf_map_lookup_elem(&splice_ctl, &cookie);
	if (ctl && ctl->mode == SPLICE_ARM_RESPONSE) {
		/* the first bytes of the next response: decide for the whole response */
		if (off != ctl->start) {
			st->declined++;
			goto pass;
		}
		ctl->end = parse_response(skb, cookie, ctl, off, len);
		ctl->mode = SPLICE_ARM_RANGE;
		if (!ctl->end) {
			ctl->end = off; /* everything of it to user space */
			goto pass;
		}
		st->active_gen = ctl->gen;
	}
	if (!ctl || off >= ctl->end || off + len > ctl->end)
		goto pass; /* not armed, past the end, or crossing the end */
	if (st->active_gen != ctl->gen) {
		if (off != ctl->start) {
			st->declined++; /* unread bytes queued: redirecting would reorder */
			goto pass;
		}
		st->active_gen = ctl->gen;
	}
	peer = ctl->peer;
	peer_st = bpf_map_lookup_elem(&splice_state, &peer);
	if (peer_st)
		__sync_fetch_and_add(&peer_st->redirected_in, len);
	st->spliced += len;
	if (ctl->end != SPLICE_END_UNBOUNDED && off + len == ctl->end)
		notify_end(cookie, ctl);
	linearize(skb, len);
	return bpf_sk_redirect_hash(skb, &splice_socks, &peer, 0);
pass:
	st->passed += len;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
