/* fe_machine.c -- see fe_machine.h. Function for function a port of
 * miresga_core/frontend/machine.py, in the same order, so the two can be read side by
 * side; a differential test (tests/dpdk/test_fe_differential.py) holds them byte-identical.
 *
 * Memory: a connection dropped during a call stays readable (the reference keeps using
 * the object after _drop) and is freed at the end of the call. */
#include "fe_machine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../xdp/generated/cookie_layout.h"
#include "../../xdp/miresga_option.h"
#include "../vm/mvm.h"
#include "fe_table.h"
#include "fe_wire.h"

#define S_NS 1000000000LL

enum { LEG_SYN_SENT = 0, LEG_ESTABLISHED = 1 };
enum { MODE_NONE = 0, MODE_SPLICE = 1, MODE_PIN = 2 }; /* program offload modes */

struct fe_buf { uint8_t *p; size_t off, len, cap; };   /* bytes p[off .. off+len) */

struct fe_backend { uint32_t ip; uint16_t port; };
struct fe_pool { struct fe_backend *b; uint32_t n; };

struct fe_vip {
	uint32_t ip;
	uint16_t port;
	int wscale, mss;
	struct mvm_prog *prog;
	struct fe_pool *pools;
	uint32_t npools;
	int64_t routes;        /* r1: the listener's sequence number */
};

struct fe_leg {
	uint32_t bip;
	uint16_t bport, pool;
	uint8_t mode, state, fin_sent, has_ts;
	uint32_t ts_val, ts_base;  /* the forged SYN's timestamp trailer (with has_ts) */
	uint32_t start_seq, base, sent_upto, mss;
	struct fe_buf held;
	int64_t syn_tries, syn_deadline;
};

struct fe_conn {
	struct fe_conn *prev, *next;       /* insertion order (expire walks it like a dict) */
	struct fe_conn *dead_next;
	uint32_t cip;
	uint16_t cport;
	struct fe_vip *vip;
	struct fe_cookie_info info;
	uint32_t isn, next_seq, ack, dispatch_ack, first_seq;
	uint16_t window;
	int64_t last_ns, remaining, closed_ns, requests, created_ns;
	struct fe_buf pending;
	struct fe_leg leg;
	uint8_t has_leg, has_dispatch_ack, client_fin, backend_fin, offloaded, alive, has_closed;
	uint8_t has_ts;
	uint32_t ts_val, ts_ecr;  /* the client's newest timestamps (with has_ts) */
};

struct mfe {
	struct mfe_params p;
	uint8_t ck_cur[8], ck_prev[8];
	int has_prev;
	uint8_t agent_keys[2][16];
	int agent_has[2], agent_slot;
	struct fe_vip *vips;
	uint32_t nvips;
	struct fe_tab conns, legs, old_legs;
	struct fe_conn *head, *tail, *dead;
	struct fe_buf out;
	uint8_t pkt[FE_MAX_PKT];
	uint64_t c[FE_NCOUNTERS];
	uint64_t oom;
};

/* ---------------------------------------------------------------- buffers, output */

static int buf_add(struct fe_buf *b, const uint8_t *p, size_t n)
{
	if (b->off && b->off + b->len + n > b->cap) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->len + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_take(struct fe_buf *b, size_t n) { b->off += n; b->len -= n; if (!b->len) b->off = 0; }
static void buf_clear(struct fe_buf *b) { b->off = b->len = 0; }
static void buf_free(struct fe_buf *b) { free(b->p); memset(b, 0, sizeof(*b)); }
static const uint8_t *buf_data(const struct fe_buf *b) { return b->p ? b->p + b->off : (const uint8_t *)""; }

static void put_le(uint8_t *p, uint64_t v, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void emit(struct mfe *m, const struct fe_seg *s)
{
	uint8_t hdr[5];
	int n = fe_encode(s, m->pkt, sizeof(m->pkt));

	if (n < 0)
		return; /* cannot happen: segments the machine builds always fit */
	hdr[0] = FE_REC_TRANSMIT;
	put_le(hdr + 1, (uint32_t)n, 4);
	if (buf_add(&m->out, hdr, 5) || buf_add(&m->out, m->pkt, (size_t)n))
		m->oom++;
	m->c[FE_C_TX]++;
}

static void emit_offload(struct mfe *m, const struct fe_conn *c, int unoffload)
{
	uint8_t r[20];
	size_t n = unoffload ? 13 : 20;

	r[0] = unoffload ? FE_REC_UNOFFLOAD : FE_REC_OFFLOAD;
	put_le(r + 1, c->cip, 4);
	put_le(r + 5, c->cport, 2);
	put_le(r + 7, c->vip->ip, 4);
	put_le(r + 11, c->vip->port, 2);
	if (!unoffload) {
		put_le(r + 13, c->leg.bip, 4);
		put_le(r + 17, c->leg.bport, 2);
		r[19] = c->leg.mode;
	}
	if (buf_add(&m->out, r, n))
		m->oom++;
}

static struct fe_seg mkseg(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
			   uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window)
{
	struct fe_seg s = {.src = src, .dst = dst, .sport = sport, .dport = dport, .seq = seq,
			   .ack = ack, .flags = flags, .window = window, .ttl = 64};
	return s;
}

/* ---------------------------------------------------------------- setup */

struct mfe *mfe_new(void)
{
	struct mfe *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->p = (struct mfe_params){65536, S_NS, 4, 300 * S_NS, 3600 * S_NS, 2 * S_NS, 0};
	if (fe_tab_init(&m->conns, 1024) || fe_tab_init(&m->legs, 1024) ||
	    fe_tab_init(&m->old_legs, 256)) {
		mfe_free(m);
		return NULL;
	}
	return m;
}

static void conn_free(struct fe_conn *c)
{
	buf_free(&c->pending);
	buf_free(&c->leg.held);
	free(c);
}

void mfe_free(struct mfe *m)
{
	struct fe_conn *c, *nx;
	uint32_t i, j;

	if (!m)
		return;
	for (c = m->head; c; c = nx) { nx = c->next; conn_free(c); }
	for (c = m->dead; c; c = nx) { nx = c->dead_next; conn_free(c); }
	fe_tab_fini(&m->conns);
	fe_tab_fini(&m->legs);
	fe_tab_fini(&m->old_legs);
	for (i = 0; i < m->nvips; i++) {
		mvm_free(m->vips[i].prog);
		for (j = 0; j < m->vips[i].npools; j++)
			free(m->vips[i].pools[j].b);
		free(m->vips[i].pools);
	}
	free(m->vips);
	buf_free(&m->out);
	free(m);
}

void mfe_set_params(struct mfe *m, const struct mfe_params *p) { m->p = *p; }

void mfe_set_cookie_keys(struct mfe *m, const uint8_t *cur, const uint8_t *prev)
{
	memcpy(m->ck_cur, cur, 8);
	m->has_prev = prev != NULL;
	if (prev)
		memcpy(m->ck_prev, prev, 8);
}

int mfe_set_agent_key(struct mfe *m, int slot, const uint8_t *key, int use_slot)
{
	if (slot < 0 || slot > 1)
		return -1;
	m->agent_has[slot] = key != NULL;
	if (key)
		memcpy(m->agent_keys[slot], key, 16);
	if (use_slot)
		m->agent_slot = slot;
	return 0;
}

static struct fe_vip *find_vip(const struct mfe *m, uint32_t ip, uint16_t port)
{
	for (uint32_t i = 0; i < m->nvips; i++)
		if (m->vips[i].ip == ip && m->vips[i].port == port)
			return &m->vips[i];
	return NULL;
}

int mfe_is_vip(const struct mfe *m, uint32_t ip, uint16_t port)
{
	return find_vip(m, ip, port) != NULL;
}

int mfe_add_vip(struct mfe *m, uint32_t ip, uint16_t port, int wscale, int mss,
		const uint8_t *prog, size_t prog_len, char *err, size_t errlen)
{
	struct mvm_prog *p;
	struct fe_vip *v;

	if (find_vip(m, ip, port)) {
		snprintf(err, errlen, "VIP added twice");
		return -1;
	}
	if (mvm_load(prog, prog_len, &p, err, errlen))
		return -1;
	v = realloc(m->vips, (m->nvips + 1) * sizeof(*v));
	if (!v) {
		mvm_free(p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->vips = v;
	v = &m->vips[m->nvips++];
	memset(v, 0, sizeof(*v));
	v->ip = ip;
	v->port = port;
	v->wscale = wscale;
	v->mss = mss;
	v->prog = p;
	v->npools = p->n_pools;
	v->pools = calloc(p->n_pools ? p->n_pools : 1, sizeof(*v->pools));
	return v->pools ? 0 : -1;
}

int mfe_add_backend(struct mfe *m, uint32_t vip, uint16_t vport, uint32_t pool, uint32_t ip,
		    uint16_t port)
{
	struct fe_vip *v = find_vip(m, vip, vport);
	struct fe_backend *b;

	if (!v || pool >= v->npools)
		return -1;
	b = realloc(v->pools[pool].b, (v->pools[pool].n + 1) * sizeof(*b));
	if (!b)
		return -1;
	v->pools[pool].b = b;
	b[v->pools[pool].n++] = (struct fe_backend){ip, port};
	return 0;
}

/* ---------------------------------------------------------------- the decider */

enum { D_ROUTE, D_NEEDMORE, D_REJECT };

struct fe_decision {
	uint32_t bip;
	uint16_t bport, pool;
	uint8_t mode;
	int64_t length; /* -1: unknown (chunked, upgrade): the rest stays on the backend */
};

static uint32_t client_hash(uint32_t ip, uint16_t port)
{
	uint8_t b[6] = {ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff, port >> 8,
			port & 0xff};
	uint32_t h = 2166136261u;

	for (int i = 0; i < 6; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* The rule of miresga_core/dpdk/decider.py: run the program with r0 = client hash,
 * r1 = the VIP's route count; map decision -> pool -> backend index. */
static int decide(struct fe_vip *v, const uint8_t *data, size_t len, uint32_t cip,
		  uint16_t cport, struct fe_decision *d)
{
	struct mvm_result r;
	int64_t args[2] = {client_hash(cip, cport), v->routes};
	const struct mvm_decision *dec;
	const struct fe_pool *pool;
	int64_t bi;

	mvm_exec(v->prog, data, len, args, 2, &r);
	if (r.kind == MVM_NEEDMORE)
		return D_NEEDMORE;
	if (r.kind != MVM_ROUTE)
		return D_REJECT;
	v->routes++;
	dec = &v->prog->decisions[r.decision];
	pool = &v->pools[dec->pool];
	bi = r.out[MVM_F_BACKEND];
	if (bi < 0 || bi >= pool->n)
		return D_REJECT;
	d->bip = pool->b[bi].ip;
	d->bport = pool->b[bi].port;
	d->pool = (uint16_t)dec->pool;
	d->mode = dec->offload;
	if ((r.out[MVM_F_FLAGS] & MVM_FLAG_UPGRADE) && d->mode == MODE_SPLICE)
		d->mode = MODE_PIN;
	if (r.out[MVM_F_FRAMING] == MVM_FRAMING_NONE)
		d->length = r.out[MVM_F_HEAD_LEN];
	else if (r.out[MVM_F_FRAMING] == MVM_FRAMING_LENGTH)
		d->length = r.out[MVM_F_HEAD_LEN] + r.out[MVM_F_CONTENT_LENGTH];
	else
		d->length = -1;
	return D_ROUTE;
}

/* ---------------------------------------------------------------- helpers */

static void client_seg(struct mfe *m, const struct fe_seg *seg, uint32_t cip, uint16_t cport,
		       struct fe_vip *vip, int64_t now);
static void pump(struct mfe *m, struct fe_conn *c, int64_t now);
static void drop(struct mfe *m, struct fe_conn *c);
static void reset_client(struct mfe *m, struct fe_conn *c);

static int64_t idle_limit(const struct mfe *m, const struct fe_conn *c)
{
	if (c->offloaded)
		return m->p.idle_timeout_ns > m->p.offloaded_idle_timeout_ns ?
			m->p.idle_timeout_ns : m->p.offloaded_idle_timeout_ns;
	return m->p.idle_timeout_ns;
}

static uint64_t leg_key(const struct fe_conn *c) { return fe_key(c->leg.bip, c->leg.bport); }

/* Emit seg cut into MSS-sized segments (FIN/PSH stay on the last). */
static void emit_split(struct mfe *m, const struct fe_seg *seg, uint32_t mss)
{
	uint8_t tail = seg->flags & (FE_FIN | FE_PSH);
	struct fe_seg s = *seg;
	uint32_t i;

	mss = mss > seg->opts_len ? mss - seg->opts_len : 0;  /* RFC 6691: options count */
	if (mss < 64)
		mss = 64;
	if (seg->payload_len <= mss) {
		emit(m, seg);
		return;
	}
	for (i = 0; i < seg->payload_len; i += mss) {
		int last = i + mss >= seg->payload_len;

		s.seq = seg->seq + i;
		s.flags = last ? seg->flags : (uint8_t)(seg->flags & ~tail);
		s.payload = seg->payload + i;
		s.payload_len = last ? seg->payload_len - i : mss;
		emit(m, &s);
	}
}

/* ---------------------------------------------------------------- legs */

static void send_syn(struct mfe *m, struct fe_conn *c)
{
	struct fe_leg *l = &c->leg;
	uint8_t opt[MIRESGA_OPT_LEN + MIRESGA_OPT_TS_TRAILER_LEN];
	uint32_t syn_seq = l->start_seq - 1;
	int ws = c->info.wscale < 0 ? 0 : c->info.wscale;
	uint64_t win = (uint64_t)c->window << ws;
	struct fe_seg s;

	fe_option_encode(opt, m->agent_keys[m->agent_slot], l->base, c->info.mss,
			 c->info.wscale, c->vip->wscale, c->info.sack, m->agent_slot, c->cip,
			 l->bip, c->cport, l->bport, syn_seq);
	if (win > 0xffff)
		win = 0xffff;
	if (!win)
		win = 0xffff;
	s = mkseg(c->cip, l->bip, c->cport, l->bport, syn_seq, 0, FE_SYN, (uint16_t)win);
	s.opts = opt;
	s.opts_len = MIRESGA_OPT_LEN;
	if (l->has_ts) {  /* the agent continues the client's timestamps from ts_base */
		fe_ts_trailer(opt + MIRESGA_OPT_LEN, l->ts_val, l->ts_base);
		s.opts_len += MIRESGA_OPT_TS_TRAILER_LEN;
	}
	emit(m, &s);
	m->c[FE_C_SYN_SENT]++;
}

static void open_leg(struct mfe *m, struct fe_conn *c, const struct fe_decision *d, int64_t now)
{
	struct fe_leg *l = &c->leg;
	struct fe_ent *e;
	uint32_t start = c->next_seq - (uint32_t)c->pending.len;

	buf_free(&l->held);
	memset(l, 0, sizeof(*l));
	l->bip = d->bip;
	l->bport = d->bport;
	l->mode = d->mode;
	l->pool = d->pool;
	l->has_ts = c->has_ts;
	l->ts_val = c->ts_val;
	l->ts_base = c->ts_ecr;
	l->start_seq = start;
	l->base = c->ack - 1;
	l->state = LEG_SYN_SENT;
	l->sent_upto = start;
	l->mss = 536;
	l->syn_tries = 1;
	l->syn_deadline = now + m->p.syn_rto_ns;
	c->has_leg = 1;
	e = fe_tab_put(&m->legs, fe_key(c->cip, c->cport), leg_key(c));
	if (e)
		e->ptr = c;
	else
		m->oom++;
	fe_tab_del(&m->old_legs, fe_key(c->cip, c->cport), leg_key(c));
	m->c[FE_C_LEG_OPENED]++;
	send_syn(m, c);
}

static void syn_timeout(struct mfe *m, struct fe_conn *c, int64_t now)
{
	struct fe_leg *l = &c->leg;

	if (l->syn_tries > m->p.syn_retries) {
		m->c[FE_C_SYN_GAVE_UP]++;
		reset_client(m, c);
		return;
	}
	m->c[FE_C_SYN_RETRANSMIT]++;
	send_syn(m, c);
	l->syn_deadline = now + (int64_t)((uint64_t)m->p.syn_rto_ns << l->syn_tries);
	l->syn_tries++;
}

static void to_leg(struct mfe *m, struct fe_conn *c, const uint8_t *data, size_t n)
{
	struct fe_leg *l = &c->leg;
	uint32_t mss = l->mss < 64 ? 64 : l->mss;
	size_t i;

	if (l->state == LEG_SYN_SENT) {
		if (buf_add(&l->held, data, n))
			m->oom++;
		return;
	}
	for (i = 0; i < n; i += mss) {
		struct fe_seg s = mkseg(c->cip, l->bip, c->cport, l->bport, l->sent_upto, c->ack,
					FE_ACK | FE_PSH, c->window);

		s.payload = data + i;
		s.payload_len = (uint32_t)(n - i < mss ? n - i : mss);
		emit(m, &s);
		l->sent_upto += s.payload_len;
		m->c[FE_C_TO_BACKEND]++;
	}
}

static void close_leg(struct mfe *m, struct fe_conn *c, int64_t now)
{
	struct fe_leg *l = &c->leg;
	struct fe_ent *e;

	if (l->state == LEG_ESTABLISHED) {
		struct fe_seg s = mkseg(c->cip, l->bip, c->cport, l->bport, l->sent_upto, c->ack,
					FE_RST | FE_ACK, 0);
		emit(m, &s);
	}
	fe_tab_del(&m->legs, fe_key(c->cip, c->cport), leg_key(c));
	e = fe_tab_put(&m->old_legs, fe_key(c->cip, c->cport), leg_key(c));
	if (e) {
		e->seq = l->sent_upto;
		e->t = now;
	} else {
		m->oom++;
	}
	if (c->offloaded) {
		emit_offload(m, c, 1);
		c->offloaded = 0;
		m->c[FE_C_UNOFFLOAD]++;
	}
	c->has_leg = 0;
	buf_clear(&l->held);
}

/* ---------------------------------------------------------------- teardown */

static void reset_client(struct mfe *m, struct fe_conn *c)
{
	struct fe_seg s = mkseg(c->vip->ip, c->cip, c->vip->port, c->cport, c->ack, 0, FE_RST, 0);

	emit(m, &s);
	if (c->has_leg && c->leg.state == LEG_ESTABLISHED) {
		s = mkseg(c->cip, c->leg.bip, c->cport, c->leg.bport, c->leg.sent_upto, c->ack,
			  FE_RST | FE_ACK, 0);
		emit(m, &s);
	}
	drop(m, c);
}

static void drop(struct mfe *m, struct fe_conn *c)
{
	if (!c->alive)
		return;
	fe_tab_del(&m->conns, fe_key(c->cip, c->cport), fe_key(c->vip->ip, c->vip->port));
	c->alive = 0;
	if (c->prev) c->prev->next = c->next; else m->head = c->next;
	if (c->next) c->next->prev = c->prev; else m->tail = c->prev;
	c->dead_next = m->dead;
	m->dead = c;
	if (c->has_leg) {
		fe_tab_del(&m->legs, fe_key(c->cip, c->cport), leg_key(c));
		c->has_leg = 0;
	}
	if (c->offloaded) {
		emit_offload(m, c, 1);
		c->offloaded = 0;
		m->c[FE_C_UNOFFLOAD]++;
	}
	buf_clear(&c->pending);
}

/* ---------------------------------------------------------------- requests */

static int pipelined(const struct fe_conn *c)
{
	return c->leg.state == LEG_SYN_SENT || c->leg.held.len ||
	       (c->has_dispatch_ack && c->dispatch_ack == c->ack);
}

/* Pool affinity (balance = "connection"): the decision names the leg's pool and mode. */
static int keeps_leg(const struct mfe *m, const struct fe_conn *c, const struct fe_decision *d)
{
	return m->p.pool_affinity && c->leg.pool == d->pool && c->leg.mode == d->mode;
}

static void dispatch(struct mfe *m, struct fe_conn *c, const struct fe_decision *d, int64_t now)
{
	m->c[FE_C_REQUESTS]++;
	c->requests++;
	if (c->has_leg && (c->leg.bip != d->bip || c->leg.bport != d->bport)) {
		if (keeps_leg(m, c, d)) {
			m->c[FE_C_LEG_KEPT]++;
		} else if (pipelined(c)) {
			m->c[FE_C_PIPELINED_KEPT]++;
		} else {
			close_leg(m, c, now);
			m->c[FE_C_LEG_SWITCHED]++;
		}
	}
	if (!c->has_leg)
		open_leg(m, c, d, now);
	c->remaining = d->length;
	if (d->length == 0)
		c->remaining = -1;
	c->dispatch_ack = c->ack;
	c->has_dispatch_ack = 1;
}

static void pump(struct mfe *m, struct fe_conn *c, int64_t now)
{
	while (c->pending.len && c->alive) {
		struct fe_decision d;
		int r;

		if (c->remaining && c->has_leg) {
			size_t n = c->pending.len;

			if (c->remaining > 0 && (uint64_t)c->remaining < n)
				n = (size_t)c->remaining;
			if (c->remaining > 0)
				c->remaining -= (int64_t)n;
			/* to_leg may append to held, never to pending: the bytes stay valid */
			to_leg(m, c, buf_data(&c->pending), n);
			buf_take(&c->pending, n);
			continue;
		}
		r = decide(c->vip, buf_data(&c->pending), c->pending.len, c->cip, c->cport, &d);
		if (r == D_NEEDMORE) {
			if ((int64_t)c->pending.len > m->p.max_head) {
				m->c[FE_C_HEAD_TOO_BIG]++;
				reset_client(m, c);
			}
			return;
		}
		if (r == D_REJECT) {
			m->c[FE_C_REJECTED]++;
			reset_client(m, c);
			return;
		}
		dispatch(m, c, &d, now);
	}
}

static void flush_fin(struct mfe *m, struct fe_conn *c, int64_t now)
{
	struct fe_leg *l = &c->leg;
	struct fe_seg s;

	if (!c->has_leg) {
		m->c[FE_C_NO_REQUEST_FIN]++;
		reset_client(m, c);
		return;
	}
	if (c->pending.len && c->remaining == 0) {
		/* an incomplete request before the FIN can never be decided: it goes where the
		 * connection already goes, and that backend answers the truncated request */
		c->remaining = -1;
		pump(m, c, now);
	}
	if (c->pending.len || l->state != LEG_ESTABLISHED || l->fin_sent)
		return;
	s = mkseg(c->cip, l->bip, c->cport, l->bport, l->sent_upto, c->ack, FE_FIN | FE_ACK,
		  c->window);
	emit(m, &s);
	l->fin_sent = 1;
	if (c->backend_fin) {
		c->closed_ns = now;
		c->has_closed = 1;
	}
}

/* ---------------------------------------------------------------- client side */

static struct fe_conn *accept_conn(struct mfe *m, const struct fe_seg *seg, uint32_t cip,
				   uint16_t cport, struct fe_vip *vip, int64_t now)
{
	struct fe_cookie_info info;
	struct fe_conn *c;
	struct fe_ent *e;
	uint32_t isn = seg->ack - 1;

	if (!(seg->flags & FE_ACK) || (seg->flags & (FE_SYN | FE_RST))) {
		m->c[FE_C_COOKIE_BAD]++;
		return NULL;
	}
	if (!fe_cookie_validate(m->ck_cur, m->has_prev ? m->ck_prev : NULL, isn, cip, cport,
				vip->ip, vip->port, (uint64_t)(now >> COOKIE_SLOT_SHIFT), &info)) {
		m->c[FE_C_COOKIE_BAD]++;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	e = c ? fe_tab_put(&m->conns, fe_key(cip, cport), fe_key(vip->ip, vip->port)) : NULL;
	if (!e) {
		free(c);
		m->oom++;
		return NULL;
	}
	m->c[FE_C_COOKIE_OK]++;
	e->ptr = c;
	c->cip = cip;
	c->cport = cport;
	c->vip = vip;
	c->info = info;
	c->isn = isn;
	c->next_seq = seg->seq;
	c->ack = seg->ack;
	c->window = seg->window;
	c->last_ns = now;
	c->created_ns = now;
	c->first_seq = seg->seq;
	c->alive = 1;
	c->prev = m->tail;
	if (m->tail) m->tail->next = c; else m->head = c;
	m->tail = c;
	return c;
}

static void client_ack(struct mfe *m, struct fe_conn *c, const struct fe_seg *seg)
{
	if (c->has_leg && c->leg.state == LEG_ESTABLISHED) {
		struct fe_seg s = *seg;

		s.dst = c->leg.bip;
		s.dport = c->leg.bport;
		emit(m, &s);
		m->c[FE_C_TO_BACKEND]++;
	}
}

static void client_old(struct mfe *m, struct fe_conn *c, const struct fe_seg *seg, uint32_t dup)
{
	struct fe_leg *l = &c->leg;

	if (c->has_leg && l->state == LEG_ESTABLISHED && seg->payload_len) {
		int64_t lo = fe_seq_diff(l->start_seq, seg->seq), hi;

		lo = lo > 0 ? lo : 0;
		hi = fe_seq_diff(l->sent_upto, seg->seq);
		hi = hi > 0 ? hi : 0;
		if (hi > seg->payload_len)
			hi = seg->payload_len;
		if (lo < hi) {
			struct fe_seg s = mkseg(seg->src, l->bip, seg->sport, l->bport,
						seg->seq + (uint32_t)lo, c->ack, FE_ACK | FE_PSH,
						c->window);

			m->c[FE_C_RETRANSMIT_FWD]++;
			s.payload = seg->payload + lo;
			s.payload_len = (uint32_t)(hi - lo);
			emit_split(m, &s, l->mss);
		}
	}
	if (seg->payload_len > dup) {
		struct fe_seg s = *seg;

		s.seq = c->next_seq;
		s.payload = seg->payload + dup;
		s.payload_len = seg->payload_len - dup;
		client_seg(m, &s, c->cip, c->cport, c->vip, c->last_ns);
	}
}

/* Keep the client's newest (TSval, TSecr) (machine.py _note_timestamps). */
static void note_timestamps(struct fe_conn *c, const struct fe_seg *seg)
{
	uint32_t val, ecr;

	if (!fe_ts_option(seg->opts, seg->opts_len, &val, &ecr))
		return;
	if (!c->has_ts || fe_seq_diff(val, c->ts_val) >= 0) {
		c->has_ts = 1;
		c->ts_val = val;
		c->ts_ecr = ecr;
	}
}

static void client_rst(struct mfe *m, struct fe_conn *c, const struct fe_seg *seg)
{
	m->c[FE_C_RST_CLIENT]++;
	if (c->has_leg && c->leg.state == LEG_ESTABLISHED) {
		struct fe_seg s = mkseg(seg->src, c->leg.bip, seg->sport, c->leg.bport,
					c->leg.sent_upto, c->ack, FE_RST | FE_ACK, 0);
		emit(m, &s);
	}
	drop(m, c);
}

#define REORDER_WINDOW (1 << 20) /* client bytes ahead of next_seq still taken as reordering */

/* Whether an out-of-place ACK opens a new connection on the same client port (the
 * reference's _new_incarnation: our state was in its grace period, or idle). */
static int new_incarnation(struct mfe *m, const struct fe_conn *c, const struct fe_seg *seg,
			   int64_t now)
{
	struct fe_cookie_info info;
	int32_t ahead = fe_seq_diff(seg->seq, c->next_seq);
	uint32_t isn = seg->ack - 1;

	if ((seg->flags & (FE_SYN | FE_RST)) || !(seg->flags & FE_ACK))
		return 0;
	if (fe_seq_diff(seg->seq, c->first_seq) >= 0 && ahead <= 0)
		return 0; /* a duplicate of the old stream */
	if (ahead > 0 && ahead <= REORDER_WINDOW)
		return 0; /* out of order in the old stream */
	if (isn == c->isn)
		return c->client_fin;
	return fe_cookie_validate(m->ck_cur, m->has_prev ? m->ck_prev : NULL, isn, c->cip, c->cport,
				  c->vip->ip, c->vip->port, (uint64_t)(now >> COOKIE_SLOT_SHIFT),
				  &info);
}

static void client_seg(struct mfe *m, const struct fe_seg *seg, uint32_t cip, uint16_t cport,
		       struct fe_vip *vip, int64_t now)
{
	struct fe_ent *e = fe_tab_get(&m->conns, fe_key(cip, cport), fe_key(vip->ip, vip->port));
	struct fe_conn *c = e ? e->ptr : NULL;
	int32_t d;

	if (c && seg->seq != c->next_seq && new_incarnation(m, c, seg, now)) {
		/* the client reused the port: the old connection is over */
		m->c[FE_C_REINCARNATED]++;
		if (c->has_leg)
			close_leg(m, c, now);
		drop(m, c);
		c = NULL;
	}
	if (!c) {
		c = accept_conn(m, seg, cip, cport, vip, now);
		if (!c)
			return;
	}
	c->last_ns = now;
	if (seg->flags & FE_RST) {
		client_rst(m, c, seg);
		return;
	}
	if ((seg->flags & FE_SYN) || !(seg->flags & FE_ACK)) {
		m->c[FE_C_MALFORMED]++;
		return;
	}
	if (fe_seq_diff(seg->ack, c->ack) > 0)
		c->ack = seg->ack;
	c->window = seg->window;
	note_timestamps(c, seg);
	d = fe_seq_diff(seg->seq, c->next_seq);
	if (d > 0) {
		m->c[FE_C_OUT_OF_ORDER]++;
		return;
	}
	if (d < 0) {
		client_old(m, c, seg, (uint32_t)(-(int64_t)d));
		return;
	}
	if (seg->payload_len) {
		if (buf_add(&c->pending, seg->payload, seg->payload_len)) {
			m->oom++;
			return;
		}
		c->next_seq += seg->payload_len;
		pump(m, c, now);
	} else if (!(seg->flags & FE_FIN)) {
		client_ack(m, c, seg);
	}
	if ((seg->flags & FE_FIN) && c->alive) {
		c->next_seq += 1;
		c->client_fin = 1;
		m->c[FE_C_FIN_CLIENT]++;
		flush_fin(m, c, now);
	}
}

/* ---------------------------------------------------------------- backend side */

static void synack(struct mfe *m, struct fe_conn *c, const struct fe_seg *seg, int64_t now)
{
	struct fe_leg *l = &c->leg;
	uint16_t mss;

	if (!(seg->flags & FE_ACK) || seg->ack != l->start_seq || seg->seq != l->base) {
		m->c[FE_C_SYNACK_BAD]++;
		return;
	}
	if (l->state == LEG_ESTABLISHED) {
		struct fe_seg s = mkseg(c->cip, l->bip, c->cport, l->bport, l->start_seq, c->ack,
					FE_ACK, c->window);

		m->c[FE_C_SYNACK_DUP]++;
		emit(m, &s);
		return;
	}
	m->c[FE_C_SYNACK_OK]++;
	l->state = LEG_ESTABLISHED;
	mss = fe_mss_option(seg->opts, seg->opts_len);
	if (!mss)
		mss = 536;
	l->mss = mss < c->info.mss ? mss : c->info.mss;
	if (l->held.len) {
		/* to_leg on an established leg never touches held: send from it, then clear */
		to_leg(m, c, buf_data(&l->held), l->held.len);
		buf_clear(&l->held);
	}
	if (l->mode != MODE_NONE) {
		emit_offload(m, c, 0);
		c->offloaded = 1;
		m->c[FE_C_OFFLOAD]++;
	}
	pump(m, c, now);
	if (c->client_fin && c->alive)
		flush_fin(m, c, now);
}

static void old_leg(struct mfe *m, const struct fe_seg *seg, uint32_t cip, uint16_t cport,
		    uint32_t bip, uint16_t bport)
{
	struct fe_seg s;

	m->c[FE_C_OLD_LEG_DROP]++;
	if ((seg->flags & FE_RST) || !fe_tab_get(&m->old_legs, fe_key(cip, cport), fe_key(bip, bport)))
		return;
	s = mkseg(cip, bip, cport, bport, seg->ack, 0, FE_RST, 0);
	emit(m, &s);
}

static void backend_seg(struct mfe *m, const struct fe_seg *seg, int64_t now)
{
	uint32_t cip = seg->dst, bip = seg->src;
	uint16_t cport = seg->dport, bport = seg->sport;
	struct fe_ent *e = fe_tab_get(&m->legs, fe_key(cip, cport), fe_key(bip, bport));
	struct fe_conn *c = e ? e->ptr : NULL;
	struct fe_seg s;

	if (!c) {
		old_leg(m, seg, cip, cport, bip, bport);
		return;
	}
	c->last_ns = now;
	if (seg->flags & FE_SYN) {
		synack(m, c, seg, now);
		return;
	}
	if (c->leg.state != LEG_ESTABLISHED) {
		m->c[FE_C_SYNACK_BAD]++;
		/* RFC 9293 3.10.7.3: in SYN-SENT only a reset acknowledging our SYN counts */
		if ((seg->flags & FE_RST) && (seg->flags & FE_ACK) && seg->ack == c->leg.start_seq)
			reset_client(m, c);
		return;
	}
	s = *seg;
	s.src = c->vip->ip;
	s.sport = c->vip->port;
	emit_split(m, &s, c->info.mss);
	m->c[FE_C_TO_CLIENT]++;
	if (seg->flags & FE_RST) {
		m->c[FE_C_RST_BACKEND]++;
		drop(m, c);
	} else if ((seg->flags & FE_FIN) && !c->backend_fin) {
		m->c[FE_C_FIN_BACKEND]++;
		c->backend_fin = 1;
		if (c->client_fin && c->leg.fin_sent) {
			c->closed_ns = now;
			c->has_closed = 1;
		}
	}
}

/* ---------------------------------------------------------------- public */

static void reap(struct mfe *m)
{
	struct fe_conn *c, *nx;

	for (c = m->dead; c; c = nx) {
		nx = c->dead_next;
		conn_free(c);
	}
	m->dead = NULL;
}

void mfe_receive(struct mfe *m, const uint8_t *raw, size_t len, int64_t now)
{
	struct fe_seg seg;
	struct fe_vip *vip;
	const char *why;

	buf_clear(&m->out);
	m->c[FE_C_RX]++;
	if (fe_parse(raw, len, &seg, &why)) {
		m->c[FE_C_MALFORMED]++;
		return;
	}
	vip = find_vip(m, seg.dst, seg.dport);
	if (vip) {
		m->c[FE_C_RX_CLIENT]++;
		client_seg(m, &seg, seg.src, seg.sport, vip, now);
	} else if (fe_tab_get(&m->legs, fe_key(seg.dst, seg.dport), fe_key(seg.src, seg.sport)) ||
		   fe_tab_get(&m->old_legs, fe_key(seg.dst, seg.dport), fe_key(seg.src, seg.sport))) {
		m->c[FE_C_RX_BACKEND]++;
		backend_seg(m, &seg, now);
	} else {
		m->c[FE_C_NOT_OURS]++;
	}
	reap(m);
}

void mfe_expire(struct mfe *m, int64_t now)
{
	struct fe_conn *c, *nx;
	uint32_t i;

	buf_clear(&m->out);
	for (c = m->head; c; c = nx) {
		nx = c->next;  /* only c itself can be dropped below */
		if (now - c->last_ns >= idle_limit(m, c)) {
			m->c[FE_C_EXPIRED]++;
			drop(m, c);
		} else if (c->has_leg && c->leg.state == LEG_SYN_SENT && now >= c->leg.syn_deadline) {
			syn_timeout(m, c, now);
		} else if (c->has_closed && now - c->closed_ns >= m->p.close_grace_ns) {
			m->c[FE_C_CLOSED]++;
			drop(m, c);
		}
	}
	for (i = 0; i <= m->old_legs.mask; i++) {
		struct fe_ent *e = m->old_legs.b[i], *enx;

		for (; e; e = enx) {
			enx = e->next;
			if (now - e->t >= m->p.close_grace_ns)
				fe_tab_del(&m->old_legs, e->k0, e->k1);
		}
	}
	reap(m);
}

int64_t mfe_next_deadline(const struct mfe *m)
{
	int64_t best = INT64_MAX, t;
	const struct fe_conn *c;
	uint32_t i;
	int any = 0;

	for (c = m->head; c; c = c->next) {
		if (c->has_leg && c->leg.state == LEG_SYN_SENT)
			t = c->leg.syn_deadline;
		else if (c->has_closed)
			t = c->closed_ns + m->p.close_grace_ns;
		else
			t = c->last_ns + idle_limit(m, c);
		best = t < best ? t : best;
		any = 1;
	}
	for (i = 0; i <= m->old_legs.mask; i++)
		for (const struct fe_ent *e = m->old_legs.b[i]; e; e = e->next) {
			t = e->t + m->p.close_grace_ns;
			best = t < best ? t : best;
			any = 1;
		}
	return any ? best : INT64_MIN;
}

const uint8_t *mfe_out(const struct mfe *m, size_t *len)
{
	*len = m->out.len;
	return buf_data(&m->out);
}

uint64_t mfe_counter(const struct mfe *m, int idx)
{
	return idx >= 0 && idx < FE_NCOUNTERS ? m->c[idx] : 0;
}

uint32_t mfe_nconns(const struct mfe *m) { return m->conns.n; }
/* connections are listed in acceptance order: the head is the oldest */
int64_t mfe_oldest_ns(const struct mfe *m) { return m->head ? m->head->created_ns : INT64_MIN; }
uint32_t mfe_nlegs(const struct mfe *m) { return m->legs.n; }
uint64_t mfe_oom(const struct mfe *m) { return m->oom; }
