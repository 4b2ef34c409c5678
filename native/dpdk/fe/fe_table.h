/* fe_table.h -- a chained hash table keyed by two (IPv4, port) endpoints. One table per
 * front-end instance; the DPDK shell runs one instance per lcore (fe_steer.h hands every
 * packet of a connection to one lcore), so tables are never shared and need no locks. */
#ifndef FE_TABLE_H
#define FE_TABLE_H

#include <stdint.h>

struct fe_ent {
	struct fe_ent *next;
	uint64_t k0, k1;
	void *ptr;      /* table-specific value */
	int64_t t;
	uint32_t seq;
};

struct fe_tab {
	struct fe_ent **b;
	uint32_t mask, n;
};

static inline uint64_t fe_key(uint32_t ip, uint16_t port) { return (uint64_t)ip << 16 | port; }

int fe_tab_init(struct fe_tab *t, uint32_t buckets);   /* buckets: a power of two */
void fe_tab_fini(struct fe_tab *t);
struct fe_ent *fe_tab_get(const struct fe_tab *t, uint64_t k0, uint64_t k1);
struct fe_ent *fe_tab_put(struct fe_tab *t, uint64_t k0, uint64_t k1);  /* NULL: no memory */
int fe_tab_del(struct fe_tab *t, uint64_t k0, uint64_t k1);

#endif /* FE_TABLE_H */
