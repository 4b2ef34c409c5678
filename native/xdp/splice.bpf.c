// SPDX-License-Identifier: Apache-2.0
/* In-kernel splice for the `kernel` data plane (docs/splice.md).
 *
 * Theory of operation. Both sockets of a proxied pair sit in a SOCKHASH keyed by their
 * socket cookie, with this stream parser + stream verdict attached to it. Every byte a
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
	ev->cookie = cookie;
	ev->gen = ctl->gen;
	ev->end = ctl->end;
	bpf_ringbuf_submit(ev, 0);
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
	return bpf_sk_redirect_hash(skb, &splice_socks, &peer, 0);
pass:
	st->passed += len;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
