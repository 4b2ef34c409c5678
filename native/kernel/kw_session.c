/* kw_session.c -- the client sessions of miresga-kw (the rest of the process: kw.c).
 *
 * Theory of operation (docs/native-kernel.md has the long form). One epoll loop, edge
 * triggered for connections (no epoll_ctl per request: readiness is remembered in rd/wr
 * flags and cleared at EAGAIN or a short read), level triggered for listeners. Each client
 * connection carries one request at a time through these states:
 *
 *   HEAD     client bytes accumulate in cbuf; each arrival runs the listener's compiled
 *            rule program (C VM) over them: needmore / reject (status) / route
 *   CONNECT  the decision picked pool + backend; a pooled idle keep-alive connection is
 *            taken, else a nonblocking connect runs
 *   FWD      the head (with X-Forwarded-For) and the request body (by its framing) go to
 *            the backend; the response head is parsed (h1frame.c) and the response relayed
 *            by its framing; Content-Length bodies >= splice_min move with splice(2)
 *            through a pipe, never entering user space
 *   TUNNEL   101 Switching Protocols or a `pin` route: raw bytes both ways, half-closes
 *            forwarded
 *   CLOSING  flush what is queued for the client, then close
 *
 * Buffers: cbuf (client -> backend) = [0, cw) sent (kept only while an idempotent request
 * may be retried) | [cw, cfwd) to send | [cfwd, clen) not yet classified (body bytes or the
 * next pipelined request). rbuf (backend -> client) = [0, rw) sent | [rw, rfwd) to send |
 * [rfwd, rlen) not yet classified. Both are bounded; a full buffer stops reading that side.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h1frame.h"
#include "kw.h"

#define RBUF_CAP (128 * 1024)           /* backend -> client; also the largest response head */
#define CBUF_BODY (16 * 1024)           /* room for body bytes beyond max_head */
#define SLACK 64                        /* rbuf's origin may move this much (say_close) */
#define HDR_ROOM 32                     /* kept free in rbuf while a response head is read */
#define XFF_RESERVE 128                 /* kept free in cbuf for the X-Forwarded-For line */
#define PIPE_SIZE (512 * 1024)
#define MAX_TRIES 16
#define CLOSING_MS 5000                 /* a client that does not read its last response */
#define DRIVE_ROUNDS 64                 /* per wakeup, then the client waits in the run queue */

enum { S_HEAD, S_CONNECT, S_FWD, S_TUNNEL, S_CLOSING, S_DEAD };
enum { RS_HEAD, RS_LEN, RS_CHUNKED, RS_CLOSE, RS_DONE };
enum { T_NONE, T_IDLE, T_HEAD, T_CONNECT, T_RESPONSE, T_CLOSING, T_STALL };

struct kw_client;

struct kw_bconn {
	int tag;                        /* TAG_BACKEND */
	int fd;
	struct kw_backend *be;
	struct kw_client *owner;        /* NULL while idle in the pool */
	int connecting, rd, wr, rdhup, eof, reused, dead;
	struct kw_bconn *gnext;         /* closed, freed after the current event batch */
};

struct kw_client {
	int tag;                        /* TAG_CLIENT */
	int fd;
	struct kw_listener *L;
	int state;
	uint8_t *cbuf, *rbuf;
	uint8_t *rbase;                 /* rbuf's allocation: rbuf = rbase + SLACK, +- SLACK */
	uint32_t clen, ccap, cw, cfwd;
	uint32_t rlen, rw, rfwd;
	int rd, wr, rdhup, eof;
	struct kw_bconn *b;
	/* the current request */
	int req_body, req_done, keep_alive, upgrade, idempotent, is_head, pin, keep_head;
	int stripped;                   /* its "Connection: close" was not forwarded */
	int64_t req_left;
	struct h1_chunked req_ch;
	int pool, bidx, ntried, tried[MAX_TRIES], answered, head_timer;
	char what[160];                 /* "METHOD target" for logs */
	/* its response */
	int rstate, resp_keep, resp_body, resp_done;
	int64_t resp_left;
	struct h1_chunked resp_ch;
	/* lifetime */
	int must_close, b_shut, c_shut, queued;
	int64_t deadline;
	int tkind;
	int pipe_r, pipe_w;
	uint32_t pipe_bytes;
	char ip[INET6_ADDRSTRLEN];
	int port;
	uint32_t chash;
	struct kw_client *prev, *next, *qnext, *dnext;
};
static struct kw_client *clients;       /* every live client (timer sweep, drain) */
static struct kw_client *runq;          /* clients with work left after DRIVE_ROUNDS */
static struct kw_client *dead;          /* closed clients, freed after the event batch */
static struct kw_bconn *grave;
static int spare_pipes[64][2];          /* empty pipes kept for the next connection */
static int nspare;
static struct kw_client *spare_clients;  /* freed clients with their buffers, for reuse */
static int nspare_clients;
#define SPARE_CLIENTS 64
static long nclients;
static int draining;

static const char *const PHRASES[][2] = {
	{ "400", "Bad Request" }, { "404", "Not Found" }, { "405", "Method Not Allowed" },
	{ "408", "Request Timeout" }, { "413", "Content Too Large" }, { "414", "URI Too Long" },
	{ "431", "Request Header Fields Too Large" }, { "500", "Internal Server Error" },
	{ "501", "Not Implemented" }, { "502", "Bad Gateway" },
	{ "503", "Service Unavailable" }, { "504", "Gateway Timeout" },
	{ "505", "HTTP Version Not Supported" },
};

static const char *phrase(int status)
{
	char code[8];

	snprintf(code, sizeof(code), "%d", status);
	for (size_t i = 0; i < sizeof(PHRASES) / sizeof(PHRASES[0]); i++)
		if (!strcmp(PHRASES[i][0], code))
			return PHRASES[i][1];
	return "Error";
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 0x811C9DC5u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x01000193u;
	return h;
}

static void set_timer(struct kw_client *c, int kind, int64_t ms)
{
	c->tkind = kind;
	c->deadline = kind == T_NONE ? 0 : now_ms() + ms;
}

static void who(struct kw_client *c, char *out, size_t len)
{
	snprintf(out, len, "%s %s:%d%s%s", c->L->name, c->ip, c->port, c->what[0] ? " " : "",
		 c->what);
}

/* ------------------------------------------------------------------ backend connections */

/* close now, free later: an event of the current batch may still point here */
static void bconn_close(struct kw_bconn *b)
{
	close(b->fd);  /* also leaves the epoll set */
	b->fd = -1;
	b->dead = 1;
	b->owner = NULL;
	b->gnext = grave;
	grave = b;
}

static void bury(void)
{
	while (grave) {
		struct kw_bconn *b = grave;

		grave = b->gnext;
		free(b);
	}
}

static void idle_remove(struct kw_bconn *b)
{
	struct kw_backend *be = b->be;

	for (int i = 0; i < be->nidle; i++)
		if (be->idle[i] == b) {
			be->idle[i] = be->idle[--be->nidle];
			return;
		}
}

/* an idle connection was given back with its read flag still set: make sure the server
 * did not send anything (or close) meanwhile */
static int idle_clean(struct kw_bconn *b)
{
	char x;
	ssize_t n;

	if (!b->rd && !b->rdhup)
		return 1;
	n = recv(b->fd, &x, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		b->rd = 0;
		return 1;
	}
	return 0;
}

static void release(struct kw_client *c, int reuse)
{
	struct kw_bconn *b = c->b;

	c->b = NULL;
	if (!b)
		return;
	b->owner = NULL;
	if (reuse && !b->eof && !b->connecting && b->be->nidle < KW_MAX_IDLE && idle_clean(b)) {
		b->be->idle[b->be->nidle++] = b;
		return;
	}
	bconn_close(b);
}

/* ------------------------------------------------------------------ clients: endings */

static void client_free(struct kw_client *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->pipe_r >= 0 && !c->pipe_bytes && nspare < 64) {
		/* creating and sizing a pipe costs more than a 64 KiB copy: reuse empty ones */
		spare_pipes[nspare][0] = c->pipe_r;
		spare_pipes[nspare++][1] = c->pipe_w;
	} else if (c->pipe_r >= 0) {
		close(c->pipe_r);
		close(c->pipe_w);
	}
	nclients--;
	if (nspare_clients < SPARE_CLIENTS) {  /* malloc + free of 100 KB per connection show */
		c->next = spare_clients;
		spare_clients = c;
		nspare_clients++;
		return;
	}
	free(c->cbuf);
	free(c->rbase);
	free(c);
}

static void client_close(struct kw_client *c)
{
	if (c->state == S_DEAD)
		return;
	release(c, 0);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = S_DEAD;  /* freed by the loop once no event of this round can point here */
	c->dnext = dead;
	dead = c;
}

/* queue bytes for the client (local answers); the caller checked the room */
static void to_client(struct kw_client *c, const char *data, size_t n)
{
	if (n > RBUF_CAP - c->rlen)
		n = RBUF_CAP - c->rlen;
	memcpy(c->rbuf + c->rlen, data, n);
	c->rlen += (uint32_t)n;
	c->rfwd = c->rlen;
}

static void local_response(struct kw_client *c, int status, const char *reason, int close)
{
	char body[512], out[1024];
	int nb, n;

	nb = snprintf(body, sizeof(body), "%d %s: %s\n", status, phrase(status), reason);
	if (nb >= (int)sizeof(body))
		nb = sizeof(body) - 1;
	n = snprintf(out, sizeof(out), "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
		     "content-length: %d\r\nconnection: %s\r\n\r\n%s", status, phrase(status), nb,
		     close ? "close" : "keep-alive", body);
	if (n >= (int)sizeof(out))
		n = sizeof(out) - 1;
	to_client(c, out, (size_t)n);
}

static void closing(struct kw_client *c)
{
	release(c, 0);
	c->state = S_CLOSING;
	set_timer(c, T_CLOSING, CLOSING_MS);
}

/* the load balancer refuses the request itself: answer, then close */
static void reject(struct kw_client *c, int status, const char *reason)
{
	char w[256];

	stat_status(&c->L->stats, status);
	who(c, w, sizeof(w));
	kw_log("warning", "%s: %d %s", w, status, reason);
	c->rlen = c->rfwd;  /* what was classified still goes out first, nothing else */
	local_response(c, status, reason, 1);
	closing(c);
}

/* backend-side failure: answer `status` if nothing was answered yet, else cut */
static void fail(struct kw_client *c, int status, const char *reason)
{
	char w[256];

	stat_status(&c->L->stats, status);
	who(c, w, sizeof(w));
	if (c->answered) {
		kw_log("warning", "%s: %s", w, reason);
		closing(c);
		return;
	}
	kw_log("warning", "%s: %d %s", w, status, reason);
	c->rlen = c->rfwd = c->rw;  /* nothing classified can be pending before an answer */
	local_response(c, status, reason, 1);
	closing(c);
}

/* ------------------------------------------------------------------ requests */

static int tried(struct kw_client *c, int i)
{
	for (int k = 0; k < c->ntried; k++)
		if (c->tried[k] == i)
			return 1;
	return 0;
}

/* The program's policy chose `want` (-1: no compiled pick). When that backend is out
 * (health) or was tried, take the next usable one in pool order. */
static int pick(struct kw_client *c, struct kw_pool *p, int64_t want, int64_t now)
{
	if (!p->n)
		return -1;
	if (want < 0 || want >= p->n)
		want = p->rr++ % (unsigned)p->n;
	for (int k = 0; k < p->n; k++) {
		int i = (int)((want + k) % p->n);

		if (pool_usable(&p->b[i], now) && !tried(c, i))
			return i;
	}
	return -1;
}

static void connected(struct kw_client *c)
{
	c->b->connecting = 0;
	c->b->wr = 1;
	if (c->pin) {
		c->keep_head = 0;
		c->state = S_TUNNEL;
		set_timer(c, T_NONE, 0);
		return;
	}
	c->state = S_FWD;
	set_timer(c, T_RESPONSE, c->L->t_response);
}

static void backend_failed(struct kw_client *c, const char *reason, int passive);

static void connect_backend(struct kw_client *c)
{
	struct kw_pool *p = &plan.p[c->pool];
	struct kw_backend *be = &p->b[c->bidx];
	struct kw_bconn *b;
	char why[256];
	int fd, one = 1;

	c->state = S_CONNECT;
	c->rstate = RS_HEAD;
	c->answered = 0;
	while (be->nidle) {
		b = be->idle[--be->nidle];
		if (!b->eof && !b->rdhup && idle_clean(b)) {
			b->owner = c;
			b->reused = 1;
			c->b = b;
			connected(c);
			return;
		}
		bconn_close(b);
	}
	fd = socket(be->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	b = calloc(1, sizeof(*b));
	if (fd < 0 || !b) {
		if (fd >= 0)
			close(fd);
		free(b);
		snprintf(why, sizeof(why), "connect to %s failed: %s", be->label, strerror(errno));
		fail(c, 502, why);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	b->tag = TAG_BACKEND;
	b->fd = fd;
	b->be = be;
	b->owner = c;
	b->connecting = 1;
	c->b = b;
	set_timer(c, T_CONNECT, c->L->t_connect);
	ep_add(fd, b, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
	if (connect(fd, (struct sockaddr *)&be->sa, be->salen) == 0) {
		connected(c);
	} else if (errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		backend_failed(c, why, 1);
	}
}

/* connect failure, connect timeout or a backend closing before answering: count it (and
 * mark the backend out for the pool's cooldown: passive health), then retry an idempotent
 * request on another backend, up to the listener's retries, else 502 */
static void backend_failed(struct kw_client *c, const char *reason, int passive)
{
	struct kw_pool *p = &plan.p[c->pool];
	struct kw_backend *be = &p->b[c->bidx];
	int64_t now = now_ms();
	char msg[320], w[256];

	release(c, 0);
	c->L->stats.backend_failures++;
	if (passive && p->passive) {
		be->passive_failures++;
		be->failed_until = now + p->cooldown_ms;
	}
	if (!strncmp(reason, "backend closed", 14) || !strncmp(reason, "connect timeout", 15))
		snprintf(msg, sizeof(msg), "%s", reason);
	else
		snprintf(msg, sizeof(msg), "connect to %s failed: %s", be->label, reason);
	if (c->idempotent && c->ntried < c->L->retries && c->ntried < MAX_TRIES) {
		int next;

		c->tried[c->ntried++] = c->bidx;
		next = pick(c, p, c->bidx, now);
		if (next >= 0) {
			who(c, w, sizeof(w));
			kw_log("warning", "%s: %s", w, msg);
			c->L->stats.retries++;
			c->bidx = next;
			c->cw = 0;  /* the head was kept for this */
			connect_backend(c);
			return;
		}
	}
	fail(c, 502, msg);
}

static void insert_xff(struct kw_client *c, uint32_t *head_len)
{
	uint32_t hl = *head_len, cut, n;
	char line[XFF_RESERVE];

	n = (uint32_t)snprintf(line, sizeof(line), "X-Forwarded-For: %s\r\n", c->ip);
	if (n >= sizeof(line) || c->clen + n > c->ccap)
		return;
	cut = hl - ((hl >= 4 && !memcmp(c->cbuf + hl - 4, "\r\n\r\n", 4)) ||
		    (hl >= 3 && !memcmp(c->cbuf + hl - 3, "\n\r\n", 3)) ? 2 : 1);
	memmove(c->cbuf + cut + n, c->cbuf + cut, c->clen - cut);
	memcpy(c->cbuf + cut, line, n);
	c->clen += n;
	*head_len = hl + n;
}

static int ieq_n(const uint8_t *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ch = a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i];

		if (ch != b[i])
			return 0;
	}
	return 1;
}

/* Connection is hop-by-hop (RFC 9110 7.6.1): a client's "Connection: close" ends the client
 * connection, not ours to the backend. An HTTP/1.1 request head's exact "Connection: close"
 * line is dropped, so the backend keeps the connection for the next client (what NGINX
 * and HAProxy do); anything else (other tokens, HTTP/1.0) is forwarded as received. */
static void strip_connection_close(struct kw_client *c, uint32_t *head_len)
{
	uint32_t p, hl = *head_len;
	const uint8_t *nl = memchr(c->cbuf, '\n', hl);

	if (!nl || nl - c->cbuf < 9 || memcmp(nl - 9, "HTTP/1.1", 8))
		return;
	for (p = (uint32_t)(nl - c->cbuf) + 1; p < hl;) {
		const uint8_t *end = memchr(c->cbuf + p, '\n', hl - p);
		uint32_t len = (uint32_t)(end - (c->cbuf + p)) + 1, v = p + 11, e;

		if (len > 11 && ieq_n(c->cbuf + p, "connection:", 11)) {
			e = p + len - 1;
			if (e > v && c->cbuf[e - 1] == '\r')
				e--;
			while (v < e && (c->cbuf[v] == ' ' || c->cbuf[v] == '\t'))
				v++;
			while (e > v && (c->cbuf[e - 1] == ' ' || c->cbuf[e - 1] == '\t'))
				e--;
			if (e - v != 5 || !ieq_n(c->cbuf + v, "close", 5))
				return;  /* only the plain case is rewritten */
			memmove(c->cbuf + p, c->cbuf + p + len, c->clen - p - len);
			c->clen -= len;
			*head_len = hl - len;
			c->stripped = 1;
			return;
		}
		p += len;
	}
}

static void describe(struct kw_client *c, uint32_t head_len)
{
	uint32_t i = 0, sp = 0;
	size_t n = 0;

	while (i < head_len && c->cbuf[i] != '\r' && c->cbuf[i] != '\n' &&
	       n + 1 < sizeof(c->what)) {
		if (c->cbuf[i] == ' ' && ++sp == 2)
			break;
		c->what[n++] = (char)c->cbuf[i++];
	}
	c->what[n] = 0;
}

static int method_is(struct kw_client *c, const char *m)
{
	size_t n = strlen(m);

	return !strncmp(c->what, m, n) && (c->what[n] == ' ' || !c->what[n]);
}

static void local_keep(struct kw_client *c, uint32_t head_len, int status, const char *why)
{
	char w[256];
	int keep = c->keep_alive && c->req_body == H1_BODY_NONE && !c->must_close;

	stat_status(&c->L->stats, status);
	who(c, w, sizeof(w));
	kw_log("warning", "%s: %d %s", w, status, why);
	local_response(c, status, why, !keep);
	if (!keep) {
		closing(c);
		return;
	}
	memmove(c->cbuf, c->cbuf + head_len, c->clen - head_len);
	c->clen -= head_len;
	c->what[0] = 0;
	set_timer(c, T_IDLE, c->L->t_idle);
}

/* the request body's framing from the program's outcome; -1 when it cannot be relayed */
static int request_framing(struct kw_client *c, const struct mvm_result *res)
{
	switch (res->out[MVM_F_FRAMING]) {
	case MVM_FRAMING_LENGTH:
		c->req_body = H1_BODY_LENGTH;
		c->req_left = res->out[MVM_F_CONTENT_LENGTH];
		c->req_done = c->req_left == 0;
		return 0;
	case MVM_FRAMING_CHUNKED:
		c->req_body = H1_BODY_CHUNKED;
		h1_chunked_init(&c->req_ch);
		c->req_done = 0;
		return 0;
	case MVM_FRAMING_NONE:
		c->req_body = H1_BODY_NONE;
		c->req_done = 1;
		return 0;
	}
	return -1;
}

/* the program routed the request: take its decision, pick the backend, send it on */
static void routed(struct kw_client *c, const struct mvm_result *res)
{
	struct kw_listener *L = c->L;
	const struct mvm_decision *d = &L->prog->decisions[res->decision];
	uint32_t head_len = (uint32_t)res->out[MVM_F_HEAD_LEN];
	int flags = (int)res->out[MVM_F_FLAGS];

	describe(c, head_len);
	c->keep_alive = !!(flags & MVM_FLAG_KEEP_ALIVE);
	c->upgrade = !!(flags & MVM_FLAG_UPGRADE);
	c->pin = d->offload == MVM_OFFLOAD_PIN;
	c->pool = L->pool_of[d->pool];
	c->is_head = method_is(c, "HEAD");
	if (request_framing(c, res) < 0) {
		reject(c, 400, "request body without a length");
		return;
	}
	c->idempotent = c->req_body == H1_BODY_NONE &&
		(method_is(c, "GET") || method_is(c, "HEAD") || method_is(c, "OPTIONS") ||
		 method_is(c, "TRACE") || method_is(c, "PUT") || method_is(c, "DELETE"));
	c->ntried = 0;
	c->bidx = pick(c, &plan.p[c->pool], res->out[MVM_F_BACKEND], now_ms());
	if (c->bidx < 0) {
		char why[300];

		snprintf(why, sizeof(why), "no backend up in pool '%s'", plan.p[c->pool].name);
		local_keep(c, head_len, 503, why);
		return;
	}
	c->stripped = 0;
	if (!c->keep_alive)
		strip_connection_close(c, &head_len);
	if (L->xff)
		insert_xff(c, &head_len);
	c->cw = 0;
	c->cfwd = head_len;
	c->keep_head = c->idempotent;  /* kept for a retry until the response starts */
	counters.requests++;
	connect_backend(c);
}

/* HEAD state: run the rule program over the buffered bytes */
static int decide(struct kw_client *c)
{
	struct kw_listener *L = c->L;
	struct mvm_result res;
	int64_t args[2] = { c->chash, (int64_t)L->seq };
	char why[256];

	if (!c->clen || RBUF_CAP - c->rlen < 1024)
		return 0;  /* nothing to decide, or our answers are not read: wait */
	mvm_exec(L->prog, c->cbuf, c->clen, args, 2, &res);
	if (res.kind == MVM_NEEDMORE) {
		if (c->clen + XFF_RESERVE >= c->ccap) {
			reject(c, 431, "request head too large");
			return 1;
		}
		if (!c->head_timer) {
			c->head_timer = 1;
			set_timer(c, T_HEAD, L->t_head);
		}
		if (c->eof)
			client_close(c);
		return 0;
	}
	c->head_timer = 0;
	if (res.kind == MVM_REJECT) {
		snprintf(why, sizeof(why), "%.*s", (int)res.reason_len, res.reason);
		reject(c, res.status, why);
	} else if (res.kind != MVM_ROUTE) {
		snprintf(why, sizeof(why), "rule program error: %.*s", (int)res.reason_len,
			 res.reason);
		reject(c, 500, why);
	} else if (res.out[MVM_F_HEAD_LEN] <= 0 || res.out[MVM_F_HEAD_LEN] > c->clen ||
		   res.decision < 0 || (uint32_t)res.decision >= L->prog->n_decisions) {
		reject(c, 500, "rule program gave no usable head length or decision");
	} else {
		L->seq++;
		routed(c, &res);
	}
	return 1;
}

/* body bytes of the request in cbuf[cfwd, clen) */
static int classify_request(struct kw_client *c)
{
	uint32_t avail = c->clen - c->cfwd;

	if (c->req_done || !avail)
		return 0;
	if (c->req_body == H1_BODY_LENGTH) {
		uint32_t take = c->req_left < avail ? (uint32_t)c->req_left : avail;

		c->cfwd += take;
		c->req_left -= take;
		c->req_done = c->req_left == 0;
		return take > 0;
	}
	long n = h1_chunked_feed(&c->req_ch, c->cbuf + c->cfwd, avail);

	if (n < 0) {
		char why[128];

		snprintf(why, sizeof(why), "bad request body: %s", c->req_ch.err);
		reject(c, 400, why);
		return 1;
	}
	c->cfwd += (uint32_t)n;
	c->req_done = c->req_ch.done;
	return n > 0;
}

/* ------------------------------------------------------------------ responses */

static void compact_cbuf(struct kw_client *c)
{
	if (!c->cw)
		return;
	memmove(c->cbuf, c->cbuf + c->cw, c->clen - c->cw);
	c->clen -= c->cw;
	c->cfwd -= c->cw;
	c->cw = 0;
}

/* a response under way: nothing moved in either direction for timeouts.response ends it
 * (a backend stalled mid-body, or a client that stopped reading); every move re-arms it */
static void moved(struct kw_client *c)
{
	if (c->tkind == T_STALL || (c->state == S_FWD && c->answered && c->tkind == T_NONE))
		set_timer(c, T_STALL, c->L->t_response);
}

static void response_started(struct kw_client *c)
{
	if (!c->answered) {
		c->answered = 1;
		set_timer(c, T_STALL, c->L->t_response);
	}
	if (c->keep_head) {
		c->keep_head = 0;
		compact_cbuf(c);
	}
}

/* The client asked for close but the backend was not told (strip_connection_close): the
 * response must say "Connection: close" itself, or the client would send its next request
 * into a closing socket. A "Connection: keep-alive" line is replaced, else one is added
 * before the empty line. rbuf keeps HDR_ROOM free while a head is read, for this. */
static void say_close(struct kw_client *c, size_t *head_len)
{
	static const char line[] = "Connection: close\r\n";
	uint8_t *h = c->rbuf + c->rfwd;
	uint32_t hl = (uint32_t)*head_len, p, cut, n = sizeof(line) - 1, drop = 0;
	const uint8_t *nl = memchr(h, '\n', hl);

	if (!nl || c->rlen + n > RBUF_CAP)
		return;
	for (p = (uint32_t)(nl - h) + 1; p < hl;) {
		const uint8_t *end = memchr(h + p, '\n', hl - p);
		uint32_t len = (uint32_t)(end - (h + p)) + 1;

		if (len > 11 && ieq_n(h + p, "connection:", 11)) {
			uint32_t v = p + 11, e = p + len - 1;

			if (e > v && h[e - 1] == '\r')
				e--;
			while (v < e && (h[v] == ' ' || h[v] == '\t'))
				v++;
			while (e > v && (h[e - 1] == ' ' || h[e - 1] == '\t'))
				e--;
			if (e - v == 5 && ieq_n(h + v, "close", 5))
				return;  /* already says it */
			if (e - v == 10 && ieq_n(h + v, "keep-alive", 10)) {
				cut = p;
				drop = len;
				goto splice_line;
			}
		}
		p += len;
	}
	cut = hl - ((hl >= 4 && !memcmp(h + hl - 4, "\r\n\r\n", 4)) ||
		    (hl >= 3 && !memcmp(h + hl - 3, "\n\r\n", 3)) ? 2 : 1);
splice_line:
	if (c->rfwd == 0 && c->rw == 0) {
		/* move the head's first part (short) rather than the body after it (long): the
		 * buffer origin shifts by drop - n, within SLACK; finish() resets it */
		uint8_t *origin = c->rbuf + drop - n;

		memmove(origin, h, cut);
		memcpy(origin + cut, line, n);
		c->rbuf = origin;
	} else {
		memmove(h + cut + n, h + cut + drop, c->rlen - c->rfwd - cut - drop);
		memcpy(h + cut, line, n);
	}
	c->rlen = c->rlen + n - drop;
	*head_len = hl + n - drop;
}

static int response_head(struct kw_client *c)
{
	struct h1_resp r;
	int rc = h1_parse_response(c->rbuf + c->rfwd, c->rlen - c->rfwd, c->is_head, RBUF_CAP,
				   &r);

	if (rc == 0) {
		if (c->rfwd == 0 && c->rlen >= RBUF_CAP - HDR_ROOM) {
			release(c, 0);
			fail(c, 502, "bad response: response head too large");
			return 1;
		}
		return 0;
	}
	if (rc < 0) {
		char why[128];

		snprintf(why, sizeof(why), "bad response: %s", r.err);
		release(c, 0);
		fail(c, 502, why);
		return 1;
	}
	response_started(c);
	if (r.status >= 100 && r.status < 200 && r.status != 101) {
		c->rfwd += (uint32_t)r.head_len;
		return 1;  /* 100 Continue & co: relayed, the real response follows */
	}
	if (r.status == 101 && c->upgrade) {
		c->state = S_TUNNEL;
		c->rfwd = c->rlen;
		c->cfwd = c->clen;
		return 1;
	}
	if (c->stripped)
		say_close(c, &r.head_len);
	c->rfwd += (uint32_t)r.head_len;
	c->b->be->requests[c->L->index]++;
	c->resp_keep = r.keep_alive;
	c->resp_body = r.body;
	switch (r.body) {
	case H1_BODY_LENGTH:
		c->rstate = RS_LEN;
		c->resp_left = r.length;
		break;
	case H1_BODY_CHUNKED:
		c->rstate = RS_CHUNKED;
		h1_chunked_init(&c->resp_ch);
		break;
	case H1_BODY_CLOSE:
		c->rstate = RS_CLOSE;
		break;
	default:
		c->rstate = RS_DONE;
		c->resp_done = 1;
	}
	return 1;
}

/* classify rbuf[rfwd, rlen) by the response framing */
static int classify_response(struct kw_client *c)
{
	uint32_t avail = c->rlen - c->rfwd;
	long n;

	if (!avail || c->rstate == RS_DONE)
		return 0;
	switch (c->rstate) {
	case RS_HEAD:
		return response_head(c);
	case RS_LEN:
		n = c->resp_left < avail ? (long)c->resp_left : (long)avail;
		c->resp_left -= n;
		break;
	case RS_CHUNKED:
		n = h1_chunked_feed(&c->resp_ch, c->rbuf + c->rfwd, avail);
		if (n < 0) {
			char w[256];

			who(c, w, sizeof(w));
			kw_log("warning", "%s: bad response body: %s", w, c->resp_ch.err);
			closing(c);
			return 1;
		}
		break;
	default:  /* RS_CLOSE */
		n = avail;
	}
	c->rfwd += (uint32_t)n;
	if ((c->rstate == RS_LEN && !c->resp_left) ||
	    (c->rstate == RS_CHUNKED && c->resp_ch.done)) {
		c->rstate = RS_DONE;
		c->resp_done = 1;
	}
	return n > 0 || c->resp_done;
}

static void backend_eof(struct kw_client *c)
{
	char w[256];

	if (c->rstate == RS_CLOSE) {
		c->rstate = RS_DONE;
		c->resp_done = 1;
		c->must_close = 1;
		return;
	}
	if (c->rstate == RS_DONE)
		return;
	if (!c->answered) {
		if (c->b->reused && c->idempotent) {
			/* a pooled connection the server had closed: not the backend's fault */
			release(c, 0);
			c->cw = 0;
			connect_backend(c);
			return;
		}
		backend_failed(c, "backend closed before answering", 1);
		return;
	}
	who(c, w, sizeof(w));
	kw_log("warning", "%s: backend closed mid-response", w);
	closing(c);
}

/* ------------------------------------------------------------------ I/O steps */

static int client_read(struct kw_client *c)
{
	uint32_t limit = c->ccap - XFF_RESERVE;
	ssize_t n;

	if (!c->rd || c->eof || c->state >= S_CLOSING || c->clen >= limit)
		return 0;
	n = recv(c->fd, c->cbuf + c->clen, limit - c->clen, 0);
	if (n > 0) {
		if ((uint32_t)n < limit - c->clen && !c->rdhup)
			c->rd = 0;
		c->clen += (uint32_t)n;
		return 1;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		c->eof = 1;
		if (n < 0) {  /* reset: nothing more can be delivered */
			client_close(c);
			return 1;
		}
	}
	c->rd = 0;
	return n == 0;
}

static int client_step(struct kw_client *c)
{
	int progress = 0;

	switch (c->state) {
	case S_HEAD:
		if (!c->clen && c->eof) {
			if (c->rw == c->rfwd)
				client_close(c);
			else
				closing(c);
			return 1;
		}
		return decide(c);
	case S_CONNECT:
	case S_FWD:
		progress = classify_request(c);
		if (c->state > S_FWD)
			return 1;
		if (c->eof && !c->req_done) {
			closing(c);  /* the request can never complete */
			return 1;
		}
		if (c->eof)
			c->must_close = 1;
		return progress;
	case S_TUNNEL:
		if (c->cfwd != c->clen) {
			c->cfwd = c->clen;
			progress = 1;
		}
		if (c->eof && c->b && c->cw == c->clen && !c->b_shut) {
			shutdown(c->b->fd, SHUT_WR);
			c->b_shut = 1;
			progress = 1;
		}
		return progress;
	}
	return 0;
}

static int backend_flush(struct kw_client *c)
{
	struct kw_bconn *b = c->b;
	ssize_t n;

	if (!b || b->connecting || !b->wr || c->cw >= c->cfwd ||
	    (c->state != S_FWD && c->state != S_TUNNEL))
		return 0;
	n = send(b->fd, c->cbuf + c->cw, c->cfwd - c->cw, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			b->wr = 0;
			return 0;
		}
		b->eof = 1;  /* reset/broken pipe: read side reports it */
		b->rd = 1;
		return 1;
	}
	c->cw += (uint32_t)n;
	if (c->cw < c->cfwd)
		b->wr = 0;
	if (!c->keep_head)
		compact_cbuf(c);
	return 1;
}

static int open_pipe(struct kw_client *c)
{
	int fds[2];

	if (c->pipe_r >= 0)
		return 0;
	if (nspare) {
		nspare--;
		c->pipe_r = spare_pipes[nspare][0];
		c->pipe_w = spare_pipes[nspare][1];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE);
	c->pipe_r = fds[0];
	c->pipe_w = fds[1];
	return 0;
}

/* a Content-Length body: backend socket -> pipe, never through user space. Only into an
 * empty pipe, so EAGAIN means "socket empty" and not "pipe full". */
static int splice_in(struct kw_client *c)
{
	struct kw_bconn *b = c->b;
	size_t want = c->resp_left < PIPE_SIZE ? (size_t)c->resp_left : PIPE_SIZE;
	ssize_t n;

	if (c->pipe_bytes || open_pipe(c) < 0)
		return 0;
	n = splice(b->fd, NULL, c->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		c->pipe_bytes += (uint32_t)n;
		c->resp_left -= n;
		counters.spliced += (uint64_t)n;
		moved(c);
		if (!c->resp_left) {
			c->rstate = RS_DONE;
			c->resp_done = 1;
		}
		return 1;
	}
	if (n == 0) {
		b->eof = 1;
		return 1;
	}
	if (errno == EAGAIN || errno == EINTR) {
		b->rd = 0;
		return 0;
	}
	b->eof = 1;
	return 1;
}

static int backend_read(struct kw_client *c)
{
	struct kw_bconn *b = c->b;
	uint32_t room;
	ssize_t n;

	if (!b || b->connecting || !b->rd || b->eof)
		return 0;
	if (c->state == S_FWD && c->rstate == RS_DONE)
		return 0;  /* nothing may follow a response before the next request */
	if (c->state != S_FWD && c->state != S_TUNNEL)
		return 0;
	if (c->state == S_FWD && c->rstate == RS_LEN && c->rw == c->rlen &&
	    c->resp_left >= plan.splice_min)
		return splice_in(c);
	room = RBUF_CAP - (c->state == S_FWD && c->rstate == RS_HEAD ? HDR_ROOM : 0);
	if (c->pipe_bytes || c->rlen >= room)
		return 0;
	n = recv(b->fd, c->rbuf + c->rlen, room - c->rlen, 0);
	if (n > 0) {
		if ((uint32_t)n < room - c->rlen && !b->rdhup)
			b->rd = 0;
		c->rlen += (uint32_t)n;
		counters.relayed += (uint64_t)n;
		moved(c);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		b->rd = 0;
		return 0;
	}
	b->eof = 1;
	return 1;
}

static int response_step(struct kw_client *c)
{
	int progress = 0;

	if (c->state == S_TUNNEL) {
		if (c->rfwd != c->rlen) {
			c->rfwd = c->rlen;
			progress = 1;
		}
		return progress;
	}
	if (c->state != S_FWD)
		return 0;
	while (c->state == S_FWD && classify_response(c))
		progress = 1;
	if (c->state == S_FWD && c->b && c->b->eof && c->rfwd == c->rlen && !c->resp_done) {
		backend_eof(c);
		progress = 1;
	}
	return progress;
}

static int client_flush(struct kw_client *c)
{
	ssize_t n;

	if (!c->wr || c->state == S_DEAD)
		return 0;
	if (c->pipe_bytes) {
		n = splice(c->pipe_r, NULL, c->fd, NULL, c->pipe_bytes,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			moved(c);
			c->pipe_bytes -= (uint32_t)n;
			if (c->pipe_bytes)
				c->wr = 0;
			return 1;
		}
	} else if (c->rw < c->rfwd) {
		n = send(c->fd, c->rbuf + c->rw, c->rfwd - c->rw, MSG_NOSIGNAL);
		if (n > 0) {
			moved(c);
			c->rw += (uint32_t)n;
			if (c->rw < c->rfwd) {
				c->wr = 0;
			} else {  /* all sent: keep only the unclassified rest */
				memmove(c->rbuf, c->rbuf + c->rfwd, c->rlen - c->rfwd);
				c->rlen -= c->rfwd;
				c->rw = c->rfwd = 0;
			}
			return 1;
		}
	} else {
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->wr = 0;
		return 0;
	}
	client_close(c);  /* the client is gone */
	return 1;
}

/* the response went out completely: next request, or close */
static int finish(struct kw_client *c)
{
	if (c->state == S_CLOSING) {
		if (c->rw == c->rfwd && !c->pipe_bytes) {
			client_close(c);
			return 1;
		}
		return 0;
	}
	if (c->state == S_TUNNEL) {
		struct kw_bconn *b = c->b;

		if (b && b->eof && c->rw == c->rlen && !c->pipe_bytes && !c->c_shut) {
			shutdown(c->fd, SHUT_WR);
			c->c_shut = 1;
		}
		if (!b || (c->c_shut && c->b_shut)) {
			if (c->rw == c->rlen)
				client_close(c);
			else
				closing(c);
			return 1;
		}
		return 0;
	}
	if (c->state != S_FWD || !c->resp_done || c->rw != c->rfwd || c->pipe_bytes)
		return 0;
	{
		int extra = c->rlen > c->rfwd;
		int reuse = c->resp_keep && c->req_done && !extra && c->b && !c->b->eof &&
			c->cw == c->cfwd;
		int close = c->must_close || !c->keep_alive || !c->req_done ||
			(!c->resp_keep && c->resp_body == H1_BODY_CLOSE);

		release(c, reuse);
		c->rlen = c->rw = c->rfwd = 0;
		c->rbuf = c->rbase + SLACK;
		if (c->cfwd > c->clen)
			c->cfwd = c->clen;
		memmove(c->cbuf, c->cbuf + c->cfwd, c->clen - c->cfwd);
		c->clen -= c->cfwd;
		c->cw = c->cfwd = 0;
		c->state = S_HEAD;
		c->resp_done = 0;
		c->rstate = RS_HEAD;
		c->what[0] = 0;
		if (close || c->eof || draining) {
			client_close(c);
			return 1;
		}
		set_timer(c, T_IDLE, c->L->t_idle);
		return 1;
	}
}

static void check_connect(struct kw_client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->b->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		backend_failed(c, strerror(err), 1);
		return;
	}
	connected(c);
}

static void drive(struct kw_client *c)
{
	for (int round = 0; round < DRIVE_ROUNDS; round++) {
		int progress = 0;

		if (c->state == S_DEAD)
			return;
		if (c->state == S_CONNECT && c->b && c->b->connecting && (c->b->wr || c->b->eof ||
									 c->b->rd)) {
			check_connect(c);
			progress = 1;
		}
		if (c->state == S_DEAD)
			return;
		progress |= client_read(c);
		if (c->state != S_DEAD)
			progress |= client_step(c);
		if (c->state != S_DEAD)
			progress |= backend_flush(c);
		if (c->state != S_DEAD)
			progress |= backend_read(c);
		if (c->state != S_DEAD)
			progress |= response_step(c);
		if (c->state != S_DEAD)
			progress |= client_flush(c);
		if (c->state != S_DEAD)
			progress |= finish(c);
		if (!progress)
			return;
	}
	if (!c->queued && c->state != S_DEAD) {  /* more to do: after the other ready fds */
		c->queued = 1;
		c->qnext = runq;
		runq = c;
	}
}

/* ------------------------------------------------------------------ timers */

static void on_timer(struct kw_client *c)
{
	int kind = c->tkind;

	set_timer(c, T_NONE, 0);
	switch (kind) {
	case T_IDLE:
		if (c->state == S_HEAD && !c->clen)
			client_close(c);
		break;
	case T_HEAD:
		if (c->state == S_HEAD)
			reject(c, 408, "request head not complete in time");
		break;
	case T_CONNECT:
		if (c->state == S_CONNECT)
			backend_failed(c, "connect timeout", 1);
		break;
	case T_RESPONSE:
		if (c->state == S_FWD && !c->answered) {
			release(c, 0);
			fail(c, 504, "backend response timeout");
		}
		break;
	case T_CLOSING:
		client_close(c);
		break;
	case T_STALL:
		if (c->state == S_FWD) {
			char w[256];

			who(c, w, sizeof(w));
			kw_log("warning", "%s: no progress for %lld ms mid-response: closing", w,
			       (long long)c->L->t_response);
			closing(c);
		}
		break;
	}
	drive(c);
}

static void sweep(int64_t now)
{
	for (struct kw_client *c = clients; c; c = c->next)
		if (c->state != S_DEAD && c->deadline && now >= c->deadline)
			on_timer(c);
}

static void reap(void)
{
	struct kw_client *c = dead, *keep = NULL;

	dead = NULL;
	while (c) {
		struct kw_client *next = c->dnext;

		if (c->queued) {  /* still on the run queue: next round */
			c->dnext = keep;
			keep = c;
		} else {
			client_free(c);
		}
		c = next;
	}
	dead = keep;
}

static void peer_text(struct kw_client *c, const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->ip, sizeof(c->ip));
		c->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->ip, sizeof(c->ip));
		c->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	}
	c->chash = fnv1a(c->ip);
}

/* a zeroed client with buffers for listener l (reused from the spare list when it fits) */
static struct kw_client *new_client(struct kw_listener *l)
{
	uint32_t ccap = (uint32_t)l->max_head + CBUF_BODY + XFF_RESERVE;
	struct kw_client *c = spare_clients;
	uint8_t *cbuf = NULL, *rbuf = NULL;

	if (c) {
		spare_clients = c->next;
		nspare_clients--;
		if (c->ccap >= ccap) {
			ccap = c->ccap;
			cbuf = c->cbuf;
		} else {
			free(c->cbuf);
		}
		rbuf = c->rbase;
		memset(c, 0, sizeof(*c));
	} else {
		c = calloc(1, sizeof(*c));
		if (!c)
			return NULL;
	}
	c->ccap = ccap;
	c->cbuf = cbuf ? cbuf : malloc(ccap);
	c->rbase = rbuf ? rbuf : malloc(RBUF_CAP + 2 * SLACK);
	c->rbuf = c->rbase ? c->rbase + SLACK : NULL;
	return c;
}
/* a new client connection of listener l (accepted, nonblocking) */
void session_accept(struct kw_listener *l, int fd, const struct sockaddr_storage *sa)
{
	struct kw_client *c = new_client(l);

	if (!c || !c->cbuf || !c->rbuf) {
		if (c) {
			free(c->cbuf);
			free(c->rbase);
		}
		free(c);
		close(fd);
		return;
	}
	c->tag = TAG_CLIENT;
	c->fd = fd;
	c->L = l;
	c->pipe_r = c->pipe_w = -1;
	c->state = S_HEAD;
	c->wr = 1;
	peer_text(c, sa);
	c->next = clients;
	if (clients)
		clients->prev = c;
	clients = c;
	nclients++;
	set_timer(c, T_IDLE, l->t_idle);
	ep_add(fd, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
	/* the request usually arrived with the handshake: read it now rather than after
	 * another epoll round (an empty read costs one EAGAIN) */
	c->rd = 1;
	drive(c);
}

/* ------------------------------------------------------------------ events */

static void on_backend_event(struct kw_bconn *b, uint32_t ev)
{
	if (b->dead)
		return;
	if (ev & EPOLLOUT)
		b->wr = 1;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		b->rd = 1;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		b->rdhup = 1;
	if (!b->owner) {  /* idle in the pool: a server must not speak; it closed or broke */
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			idle_remove(b);
			bconn_close(b);
		}
		return;
	}
	drive(b->owner);
}

static void on_client_event(struct kw_client *c, uint32_t ev)
{
	if (c->state == S_DEAD)
		return;
	if (ev & EPOLLOUT)
		c->wr = 1;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rd = 1;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rdhup = 1;
	drive(c);
}
void session_event(void *ptr, uint32_t events)
{
	if (*(int *)ptr == TAG_CLIENT)
		on_client_event(ptr, events);
	else
		on_backend_event(ptr, events);
}

/* ------------------------------------------------------------------ the loop's view */

int session_queued(void) { return runq != NULL; }
long session_count(void) { return nclients; }

/* clients that used up their rounds: one more turn each (queued again: next epoll round) */
void session_run_queue(void)
{
	struct kw_client *c = runq;

	runq = NULL;
	while (c) {
		struct kw_client *next = c->qnext;

		c->queued = 0;
		drive(c);
		c = next;
	}
}

void session_sweep(int64_t now) { sweep(now); }

/* free what was closed during the event batch */
void session_reap(void)
{
	reap();
	bury();
}

/* graceful stop: idle connections close now, the others after their response */
void session_drain(void)
{
	draining = 1;
	for (struct kw_client *c = clients; c; c = c->next) {
		if (c->state == S_DEAD)
			continue;
		c->must_close = 1;
		if (c->state == S_HEAD && !c->clen && c->rw == c->rfwd)
			client_close(c);
	}
}

static void close_idle(void)
{
	for (int i = 0; i < plan.npools; i++)
		for (int j = 0; j < plan.p[i].n; j++) {
			struct kw_backend *be = &plan.p[i].b[j];

			while (be->nidle)
				bconn_close(be->idle[--be->nidle]);
		}
}
void session_close_all(void)
{
	for (struct kw_client *c = clients; c; c = c->next)
		if (c->state != S_DEAD)
			client_close(c);
	close_idle();
	session_reap();
}
