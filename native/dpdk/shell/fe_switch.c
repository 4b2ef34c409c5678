/* fe_switch.c -- see fe_switch.h. The raw bpf(2) syscall: four commands, no libbpf. */
#include "fe_switch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../fe/fe_machine.h"

#define REC_OFFLOAD_LEN 20
#define REC_UNOFFLOAD_LEN 13

static uint32_t u32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint16_t u16_at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* record: kind, client ip/port, vip ip/port[, backend ip/port, mode] (host order) */
static void fwd_key(const uint8_t *rec, struct offload_key *k)
{
	memset(k, 0, sizeof(*k));
	k->client_addr = htonl(u32_at(rec + 1));
	k->client_port = htons(u16_at(rec + 5));
	k->vip_addr = htonl(u32_at(rec + 7));
	k->vip_port = htons(u16_at(rec + 11));
}

int fe_switch_plan_add(const uint8_t *rec, struct fe_offload_plan *p)
{
	uint8_t mode = rec[19];

	memset(p, 0, sizeof(*p));
	/* the record's modes are frontend OffloadMode (0 none, 1 splice, 2 pin) */
	if (mode == 1)
		p->value.mode = MIRESGA_OFFLOAD_SPLICE;
	else if (mode == 2)
		p->value.mode = MIRESGA_OFFLOAD_PIN;
	else
		return -1;
	fwd_key(rec, &p->key);
	p->backend_key.addr = htonl(u32_at(rec + 13));
	p->backend_key.port = htons(u16_at(rec + 17));
	p->rev_key.client_addr = p->key.client_addr;
	p->rev_key.client_port = p->key.client_port;
	p->rev_key.backend_addr = p->backend_key.addr;
	p->rev_key.backend_port = p->backend_key.port;
	p->rev_value.vip_addr = p->key.vip_addr;
	p->rev_value.vip_port = p->key.vip_port;
	return 0;
}

void fe_switch_plan_remove(const uint8_t *rec, struct offload_key *k) { fwd_key(rec, k); }

void fe_switch_rev_key(const struct offload_key *k, const struct backend_value *b,
		       struct offload_rev_key *rk)
{
	memset(rk, 0, sizeof(*rk));
	rk->client_addr = k->client_addr;
	rk->client_port = k->client_port;
	rk->backend_addr = b->addr;
	rk->backend_port = b->port;
}

/* ------------------------------------------------------------------ bpf(2) */

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a));
}

static int obj_get(const char *path)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.pathname = (uint64_t)(uintptr_t)path;
	a.file_flags = 0;
	return (int)sys_bpf(BPF_OBJ_GET, &a);
}

static int map_op(int cmd, int fd, const void *key, void *value, uint64_t flags)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	a.flags = flags;
	return (int)sys_bpf(cmd, &a);
}

static int update(int fd, const void *k, const void *v)
{
	return map_op(BPF_MAP_UPDATE_ELEM, fd, k, (void *)v, BPF_ANY);
}

/* 1 found, 0 missing, -1 error */
static int lookup(int fd, const void *k, void *v)
{
	if (!map_op(BPF_MAP_LOOKUP_ELEM, fd, k, v, 0))
		return 1;
	return errno == ENOENT ? 0 : -1;
}

/* a missing key is not an error (driver.delete ignores it) */
static int delete(int fd, const void *k)
{
	if (!map_op(BPF_MAP_DELETE_ELEM, fd, k, NULL, 0) || errno == ENOENT)
		return 0;
	return -1;
}

int fe_switch_open(struct fe_switch *sw, const char *pin_dir, char *err, size_t errlen)
{
	static const char *const names[4] = {"offload", "offload_rev", "backend",
					     "backend_addr"};
	int *fds[4] = {&sw->offload, &sw->offload_rev, &sw->backend, &sw->backend_addr};
	char path[4096];

	for (int i = 0; i < 4; i++)
		*fds[i] = -1;
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, names[i]);
		*fds[i] = obj_get(path);
		if (*fds[i] < 0) {
			int e = errno;

			snprintf(err, errlen, "%s: %s", path, strerror(e));
			fe_switch_close(sw);
			errno = e;
			return -1;
		}
	}
	return 0;
}

void fe_switch_close(struct fe_switch *sw)
{
	int *fds[4] = {&sw->offload, &sw->offload_rev, &sw->backend, &sw->backend_addr};

	for (int i = 0; i < 4; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* driver.offload_add, with OffloadApplier's backend lookup first: reverse entry, then
 * forward (a response may follow the first forwarded ACK at once). */
static int apply_add(struct fe_switch *sw, const uint8_t *rec)
{
	struct fe_offload_plan p;
	struct backend_addr_value idx;

	if (fe_switch_plan_add(rec, &p) || lookup(sw->backend_addr, &p.backend_key, &idx) != 1)
		return -1;
	p.value.backend = idx.index;
	if (update(sw->offload_rev, &p.rev_key, &p.rev_value))
		return -1;
	return update(sw->offload, &p.key, &p.value);
}

/* driver.offload_remove: read the forward entry for the backend, delete it, then the
 * reverse entry of that backend. */
static int apply_remove(struct fe_switch *sw, const uint8_t *rec)
{
	struct offload_key k;
	struct offload_value v;
	struct backend_value b;
	struct offload_rev_key rk;
	uint32_t bi;
	int found;

	fe_switch_plan_remove(rec, &k);
	found = lookup(sw->offload, &k, &v);
	if (found < 0 || delete(sw->offload, &k))
		return -1;
	if (!found)
		return 0;
	bi = v.backend;
	found = lookup(sw->backend, &bi, &b);
	if (found < 0)
		return -1;
	if (!found)
		return 0;
	fe_switch_rev_key(&k, &b, &rk);
	return delete(sw->offload_rev, &rk);
}

int fe_switch_apply(struct fe_switch *sw, const uint8_t *buf, size_t len,
		    struct fe_switch_counts *c)
{
	size_t i = 0;
	int failed = 0;

	while (i < len) {
		if (buf[i] == FE_REC_OFFLOAD && len - i >= REC_OFFLOAD_LEN) {
			if (apply_add(sw, buf + i))
				failed++;
			else
				c->offload_applied++;
			i += REC_OFFLOAD_LEN;
		} else if (buf[i] == FE_REC_UNOFFLOAD && len - i >= REC_UNOFFLOAD_LEN) {
			if (apply_remove(sw, buf + i))
				failed++;
			else
				c->unoffload_applied++;
			i += REC_UNOFFLOAD_LEN;
		} else {
			c->offload_failed += (uint64_t)failed + 1;
			if (len)
				c->batches++;
			return -1;
		}
	}
	c->offload_failed += (uint64_t)failed;
	if (len)
		c->batches++;
	return failed;
}
