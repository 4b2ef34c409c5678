/* h1frame.h -- HTTP/1 message framing as pure functions (no I/O, no allocation).
 *
 * The C twin of plugins/http1/miresga_http1/framing.py (the reference; tests/kernel/
 * test_native_framing.py runs both on the same vectors): where a backend's response head
 * ends and how its body is delimited (RFC 9112 6.3), and an incremental chunked-body
 * scanner that says how many bytes of a buffer belong to the body. Nothing is decoded or
 * copied: a proxy forwards the bytes it got and only needs to know where messages end. */
#ifndef H1FRAME_H
#define H1FRAME_H

#include <stddef.h>
#include <stdint.h>

enum h1_body { H1_BODY_NONE = 0, H1_BODY_LENGTH = 1, H1_BODY_CHUNKED = 2, H1_BODY_CLOSE = 3 };

struct h1_resp {
	int status;
	int major, minor;
	size_t head_len;        /* bytes of the head, terminating empty line included */
	int keep_alive;
	int body;               /* enum h1_body */
	int64_t length;         /* H1_BODY_LENGTH: body bytes */
	const char *err;        /* set when the head is refused (static text) */
};

/* Length of the head at the start of buf (empty line included), or -1 when incomplete.
 * A head ends at the first empty line, CRLF or bare LF (as h11 and framing.py). */
long h1_head_end(const uint8_t *buf, size_t len);

/* Parse a response head at the start of buf. Returns 1 (complete, *r filled), 0 (need
 * more bytes), -1 (refused: r->err says why; also when no end is found in max_head).
 * is_head_request: the request was HEAD, so the response has no body whatever it says. */
int h1_parse_response(const uint8_t *buf, size_t len, int is_head_request, size_t max_head,
		      struct h1_resp *r);

#define H1_CHUNK_LINE_MAX 4096  /* longest chunk-size / trailer line (framing.py) */
#define H1_SIZE_TEXT_MAX 80     /* bytes of a size line kept to read the size from */

struct h1_chunked {
	int state;              /* internal: SIZE, DATA, DATA_CRLF, TRAILER, DONE */
	int done;
	uint64_t left;          /* DATA: bytes left in the chunk */
	uint32_t line_len;      /* bytes of the current line seen so far */
	uint32_t kept;          /* of them kept in text[] */
	int only_cr;            /* the line so far is only CR bytes */
	int semi;               /* a ';' was seen (size text ended) */
	int overflow;           /* the size text did not fit in text[] */
	uint8_t text[H1_SIZE_TEXT_MAX];
	const char *err;
};

void h1_chunked_init(struct h1_chunked *c);
/* Consume body bytes from data; returns how many belong to the body (the rest follows the
 * body), or -1 with c->err when the framing is broken. c->done once the last CRLF went by. */
long h1_chunked_feed(struct h1_chunked *c, const uint8_t *data, size_t len);

/* for the ctypes tests: the scanner state as an opaque block */
size_t h1_chunked_sizeof(void);
int h1_chunked_done(const struct h1_chunked *c);
const char *h1_chunked_error(const struct h1_chunked *c);

#endif /* H1FRAME_H */
