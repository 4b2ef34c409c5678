/* kw_ctl.c -- the control socket, the same line-delimited JSON the Python workers speak
 * (miresga_core/kernel/worker.py _control_message): {"op": "health", "pool", "index", "up"}
 * sets an active health verdict, {"op": "stats"} is answered with one line of the same
 * schema (per listener session.Stats, pool status, worker byte counters). The master
 * writes these messages with json.dumps, so a small key lookup reads them; anything else
 * is logged and ignored. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kw.h"

/* the value after "key": in a flat JSON object (NULL when absent) */
static const char *value_of(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(line, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	return p;
}

static int string_of(const char *line, const char *key, char *out, size_t len)
{
	const char *p = value_of(line, key);
	size_t n = 0;

	if (!p || *p != '"')
		return -1;
	for (p++; *p && *p != '"' && n + 1 < len; p++) {
		if (*p == '\\' && p[1])
			p++;
		out[n++] = *p;
	}
	out[n] = 0;
	return *p == '"' ? 0 : -1;
}

/* ------------------------------------------------------------------ JSON out */

struct out { char *p; size_t len, cap; };

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (size_t)n + 64;
		o->p = realloc(o->p, o->cap);
		if (!o->p)
			abort();  /* out of memory writing a stats line: nothing sane is left */
	}
}

static void put_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			put(o, "\\%c", c);
		else if (c < 0x20)
			put(o, "\\u%04x", c);
		else
			put(o, "%c", c);
	}
	put(o, "\"");
}

static void put_listener(struct out *o, const struct kw_listener *l)
{
	int first = 1;

	put_str(o, l->name);
	put(o, ": {\"requests\": {");
	for (int i = 0; i < plan.npools; i++)
		for (int j = 0; j < plan.p[i].n; j++) {
			const struct kw_backend *b = &plan.p[i].b[j];
			char key[512];

			if (!b->requests[l->index])
				continue;
			snprintf(key, sizeof(key), "%s/%s", plan.p[i].name, b->label);
			put(o, first ? "" : ", ");
			put_str(o, key);
			put(o, ": %ld", b->requests[l->index]);
			first = 0;
		}
	put(o, "}, \"statuses\": {");
	for (int i = 0; i < KW_MAX_STATUS && l->stats.statuses[i].code; i++)
		put(o, "%s\"%d\": %ld", i ? ", " : "", l->stats.statuses[i].code,
		    l->stats.statuses[i].count);
	put(o, "}, \"retries\": %ld, \"backend_failures\": %ld, \"relayed_bytes\": 0, "
	    "\"spliced_bytes\": 0}", l->stats.retries, l->stats.backend_failures);
}

static void put_pool(struct out *o, const struct kw_pool *p, int64_t now)
{
	put_str(o, p->name);
	put(o, ": [");
	for (int j = 0; j < p->n; j++) {
		const struct kw_backend *b = &p->b[j];

		put(o, "%s{\"backend\": ", j ? ", " : "");
		put_str(o, b->label);
		put(o, ", \"address\": ");
		put_str(o, b->address);
		put(o, ", \"weight\": %d, \"up\": %s, \"passive_out\": %s, \"passive_failures\": %ld}",
		    b->weight, b->admin_up ? "true" : "false",
		    b->failed_until > now ? "true" : "false", b->passive_failures);
	}
	put(o, "]");
}

static void send_stats(struct kw_ctl *c, int64_t now)
{
	struct out o = { malloc(4096), 0, 4096 };
	size_t off = 0;

	if (!o.p)
		return;
	put(&o, "{\"worker\": %d, \"pid\": %d, \"engine\": \"native\", \"stats\": {", worker_id,
	    (int)getpid());
	for (int i = 0; i < plan.nlisteners; i++) {
		put(&o, i ? ", " : "");
		put_listener(&o, &plan.l[i]);
	}
	put(&o, "}, \"pools\": {");
	for (int i = 0; i < plan.npools; i++) {
		put(&o, i ? ", " : "");
		put_pool(&o, &plan.p[i], now);
	}
	put(&o, "}, \"bytes\": {\"relayed\": %llu, \"spliced\": %llu}}\n",
	    (unsigned long long)counters.relayed, (unsigned long long)counters.spliced);
	/* the master waits for this line; the socket is nonblocking: retry briefly */
	for (int tries = 0; off < o.len && tries < 1000; tries++) {
		ssize_t n = write(c->fd, o.p + off, o.len - off);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		else
			usleep(1000);
	}
	free(o.p);
}

static void health(const char *line, int64_t now)
{
	char pool[256];
	const char *idx = value_of(line, "index"), *up = value_of(line, "up");

	(void)now;
	if (string_of(line, "pool", pool, sizeof(pool)) < 0 || !idx || !up) {
		kw_log("warning", "control: bad health message %.200s", line);
		return;
	}
	for (int i = 0; i < plan.npools; i++) {
		struct kw_pool *p = &plan.p[i];
		int k = atoi(idx);

		if (strcmp(p->name, pool) || k < 0 || k >= p->n)
			continue;
		p->b[k].admin_up = !strncmp(up, "true", 4);
		if (p->b[k].admin_up)
			p->b[k].failed_until = 0;
		return;
	}
	kw_log("warning", "control: unknown backend in %.200s", line);
}

static void message(struct kw_ctl *c, const char *line, int64_t now)
{
	char op[32];

	if (string_of(line, "op", op, sizeof(op)) < 0)
		kw_log("warning", "control: no op in %.200s", line);
	else if (!strcmp(op, "health"))
		health(line, now);
	else if (!strcmp(op, "stats"))
		send_stats(c, now);
	else
		kw_log("warning", "control: unknown op %s", op);
}

void ctl_readable(struct kw_ctl *c, int64_t now)
{
	for (;;) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		char *nl;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			c->gone = 1;  /* the master is gone: stop serving */
			return;
		}
		if (n < 0)
			return;
		c->len += (size_t)n;
		c->buf[c->len] = 0;
		while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
			*nl = 0;
			message(c, c->buf, now);
			c->len -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->len);
			c->buf[c->len] = 0;
		}
		if (c->len == sizeof(c->buf) - 1) {
			kw_log("warning", "control: line too long, dropped");
			c->len = 0;
		}
	}
}
