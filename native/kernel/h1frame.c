/* h1frame.c -- see h1frame.h. Every rule mirrors plugins/http1/miresga_http1/framing.py;
 * the differential tests (tests/kernel/test_native_framing.py) hold them together. */
#include <string.h>

#include "h1frame.h"

long h1_head_end(const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf, *end = buf + len;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (long)(p + 1 - buf);
		if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			return (long)(p + 2 - buf);
	}
	return -1;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_ows(int c) { return c == ' ' || c == '\t'; }
/* bytes.strip() with no argument: ASCII whitespace */
static int is_ws(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int ieq(const uint8_t *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != b[i])
			return 0;
	return 1;
}

static int refuse(struct h1_resp *r, const char *why)
{
	r->err = why;
	return -1;
}

/* "HTTP/d.d ddd[ reason]\r?\n"; returns the offset after it or 0 */
static size_t status_line(const uint8_t *h, size_t n, struct h1_resp *r)
{
	size_t p = 12;

	if (n < 13 || memcmp(h, "HTTP/", 5) || !is_digit(h[5]) || h[6] != '.' ||
	    !is_digit(h[7]) || h[8] != ' ' || !is_digit(h[9]) || !is_digit(h[10]) ||
	    !is_digit(h[11]))
		return 0;
	r->major = h[5] - '0';
	r->minor = h[7] - '0';
	r->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
	if (h[p] == ' ')
		while (p < n && h[p] != '\r' && h[p] != '\n')
			p++;
	if (p < n && h[p] == '\r')
		p++;
	return p < n && h[p] == '\n' ? p + 1 : 0;
}

/* framing.py's _BAD_HEADER_LINE for one line (without its '\n'): no colon at all, or
 * blank before the first colon. */
static int bad_header_line(const uint8_t *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (l[i] == ':')
			return i > 0 && is_ows(l[i - 1]);
		if (l[i] == '\r')
			return i + 1 == n;  /* "name\r\n" without colon; any other CR: not this rule */
	}
	return 1;
}

struct framing_hdrs {
	int64_t length;         /* -1: none */
	const uint8_t *te;
	size_t te_len;
	int close, keep_alive;
};

static void conn_tokens(const uint8_t *v, size_t n, struct framing_hdrs *f)
{
	size_t i = 0;

	while (i <= n) {
		size_t s = i, e;

		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (s < e && is_ws(v[s]))
			s++;
		while (e > s && is_ws(v[e - 1]))
			e--;
		if (e - s == 5 && ieq(v + s, "close", 5))
			f->close = 1;
		if (e - s == 10 && ieq(v + s, "keep-alive", 10))
			f->keep_alive = 1;
		i++;
	}
}

/* one header line: pick out Content-Length, Transfer-Encoding, Connection */
static int framing_header(const uint8_t *l, size_t n, struct framing_hdrs *f)
{
	static const char *names[] = { "content-length", "transfer-encoding", "connection" };
	size_t p, vs, ve;
	int which = -1;

	for (int k = 0; k < 3 && which < 0; k++) {
		size_t len = strlen(names[k]);

		if (n >= len && ieq(l, names[k], len))
			which = k, p = len;
	}
	if (which < 0)
		return 0;
	while (p < n && is_ows(l[p]))
		p++;
	if (p >= n || l[p] != ':')
		return 0;
	vs = ++p;
	while (p < n && l[p] != '\r')
		p++;
	ve = p;
	while (vs < ve && is_ows(l[vs]))
		vs++;
	while (ve > vs && is_ows(l[ve - 1]))
		ve--;
	if (which == 0) {
		int64_t v = 0;

		if (ve == vs || ve - vs > 18)
			return -1;
		for (size_t i = vs; i < ve; i++) {
			if (!is_digit(l[i]))
				return -1;
			v = v * 10 + (l[i] - '0');
		}
		if (f->length >= 0 && f->length != v)
			return -1;
		f->length = v;
	} else if (which == 1) {
		f->te = l + vs;
		f->te_len = ve - vs;
	} else {
		conn_tokens(l + vs, ve - vs, f);
	}
	return 0;
}

int h1_parse_response(const uint8_t *buf, size_t len, int is_head_request, size_t max_head,
		      struct h1_resp *r)
{
	long end = h1_head_end(buf, len);
	struct framing_hdrs f = { .length = -1 };
	size_t p;

	memset(r, 0, sizeof(*r));
	if (end < 0)
		return len > max_head ? refuse(r, "response head too large") : 0;
	p = status_line(buf, (size_t)end, r);
	if (!p)
		return refuse(r, "bad status line");
	/* header lines up to the empty line that ends the head */
	while (p < (size_t)end) {
		const uint8_t *nl = memchr(buf + p, '\n', (size_t)end - p);
		size_t n = (size_t)(nl - (buf + p));

		if (n == 0 || (n == 1 && buf[p] == '\r'))
			break;
		if (bad_header_line(buf + p, n))
			return refuse(r, "bad header line");
		if (framing_header(buf + p, n, &f) < 0)
			return refuse(r, "bad Content-Length");
		p += n + 1;
	}
	r->head_len = (size_t)end;
	if (r->major > 1 || (r->major == 1 && r->minor >= 1))
		r->keep_alive = !f.close;
	else
		r->keep_alive = f.keep_alive;
	if (is_head_request || (r->status >= 100 && r->status < 200) || r->status == 204 ||
	    r->status == 304) {
		r->body = H1_BODY_NONE;
	} else if (f.te_len) {
		if (f.te_len >= 7 && ieq(f.te + f.te_len - 7, "chunked", 7)) {
			r->body = H1_BODY_CHUNKED;
		} else {
			r->body = H1_BODY_CLOSE;
			r->keep_alive = 0;
		}
	} else if (f.length >= 0) {
		r->body = f.length ? H1_BODY_LENGTH : H1_BODY_NONE;
		r->length = f.length;
	} else {
		r->body = H1_BODY_CLOSE;
		r->keep_alive = 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ chunked bodies */

enum { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER, CH_DONE };

void h1_chunked_init(struct h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
	c->only_cr = 1;
}

static void line_bytes(struct h1_chunked *c, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i] != '\r')
			c->only_cr = 0;
		if (c->state == CH_SIZE && !c->semi) {
			if (d[i] == ';')
				c->semi = 1;
			else if (c->kept < H1_SIZE_TEXT_MAX)
				c->text[c->kept++] = d[i];
			else
				c->overflow = 1;
		}
	}
	c->line_len += (uint32_t)(n > UINT32_MAX - c->line_len ? UINT32_MAX - c->line_len : n);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = lower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int size_line(struct h1_chunked *c)
{
	size_t s = 0, e = c->kept;
	uint64_t v = 0;

	/* the size text was longer than we keep (framing.py would strip blanks around it;
	 * real sizes are at most 16 hex digits): refused */
	if (c->overflow)
		return -1;
	if (!c->semi)
		while (e > s && c->text[e - 1] == '\r')
			e--;
	while (s < e && is_ows(c->text[s]))
		s++;
	while (e > s && is_ows(c->text[e - 1]))
		e--;
	if (e == s || e - s > 16)
		return -1;
	for (size_t i = s; i < e; i++) {
		int h = hexval(c->text[i]);

		if (h < 0)
			return -1;
		v = v << 4 | (uint64_t)h;
	}
	c->left = v;
	c->state = v ? CH_DATA : CH_TRAILER;
	return 0;
}

static int line_done(struct h1_chunked *c)
{
	int rc = 0;

	if (c->state == CH_SIZE) {
		if (size_line(c) < 0) {
			c->err = "bad chunk size";
			rc = -1;
		}
	} else if (c->state == CH_DATA_CRLF) {
		if (!c->only_cr) {
			c->err = "missing CRLF after chunk data";
			rc = -1;
		}
		c->state = CH_SIZE;
	} else if (c->state == CH_TRAILER && c->only_cr) {
		c->done = 1;
		c->state = CH_DONE;
	}
	c->line_len = c->kept = 0;
	c->only_cr = 1;
	c->semi = c->overflow = 0;
	return rc;
}

long h1_chunked_feed(struct h1_chunked *c, const uint8_t *data, size_t n)
{
	size_t pos = 0;

	if (c->err)
		return -1;
	while (pos < n && !c->done) {
		const uint8_t *nl;

		if (c->state == CH_DATA) {
			size_t take = c->left < n - pos ? (size_t)c->left : n - pos;

			pos += take;
			c->left -= take;
			if (!c->left)
				c->state = CH_DATA_CRLF;
			continue;
		}
		if (c->state == CH_DATA_CRLF && !c->line_len && data[pos] != '\r' &&
		    data[pos] != '\n') {
			c->err = "missing CRLF after chunk data";
			return -1;
		}
		nl = memchr(data + pos, '\n', n - pos);
		if (!nl) {
			line_bytes(c, data + pos, n - pos);
			if (c->line_len > H1_CHUNK_LINE_MAX) {
				c->err = "chunk line too long";
				return -1;
			}
			return (long)n;
		}
		line_bytes(c, data + pos, (size_t)(nl - (data + pos)));
		pos = (size_t)(nl - data) + 1;
		if (line_done(c) < 0)
			return -1;
	}
	return (long)pos;
}

/* ------------------------------------------------------------------ test front door */
/* The unit tests drive this file through ctypes (build/libh1frame.so) with the scanner
 * state kept opaque: these say how big it is and read its outcome. */

size_t h1_chunked_sizeof(void) { return sizeof(struct h1_chunked); }
int h1_chunked_done(const struct h1_chunked *c) { return c->done; }
const char *h1_chunked_error(const struct h1_chunked *c) { return c->err; }
