/* mvm_dump.c -- text forms: the canonical result line (identical to vm.format_outcome). */
#include <inttypes.h>
#include <stdio.h>

#include "mvm.h"

int mvm_format_result(const struct mvm_result *r, char *buf, size_t len)
{
	size_t pos;

	switch (r->kind) {
	case MVM_ROUTE:
		return snprintf(buf, len, "route decision=%d backend=%" PRId64 " head_len=%" PRId64
				" framing=%" PRId64 " content_length=%" PRId64 " flags=%" PRId64,
				r->decision, r->out[MVM_F_BACKEND], r->out[MVM_F_HEAD_LEN],
				r->out[MVM_F_FRAMING], r->out[MVM_F_CONTENT_LENGTH], r->out[MVM_F_FLAGS]);
	case MVM_NEEDMORE:
		return snprintf(buf, len, "needmore");
	case MVM_ERROR:
		return snprintf(buf, len, "error %.*s", (int)r->reason_len, (const char *)r->reason);
	case MVM_REJECT:
		pos = (size_t)snprintf(buf, len, "reject %d \"", r->status);
		for (uint32_t i = 0; i < r->reason_len && pos + 6 < len; i++) {
			uint8_t c = r->reason[i];
			if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
				buf[pos++] = (char)c;
			else
				pos += (size_t)snprintf(buf + pos, len - pos, "\\x%02x", c);
		}
		return (int)pos + snprintf(buf + pos, len - pos, "\"");
	}
	return snprintf(buf, len, "error bad result");
}
