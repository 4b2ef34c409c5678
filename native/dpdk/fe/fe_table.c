/* fe_table.c -- see fe_table.h. Grows (doubles) at load factor 1. */
#include "fe_table.h"

#include <stdlib.h>

static uint32_t hash2(uint64_t k0, uint64_t k1)
{
	uint64_t h = k0 * 0x9e3779b97f4a7c15ULL ^ (k1 + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;

	h ^= h >> 31;
	h *= 0x94d049bb133111ebULL;
	return (uint32_t)(h ^ h >> 29);
}

int fe_tab_init(struct fe_tab *t, uint32_t buckets)
{
	t->b = calloc(buckets, sizeof(*t->b));
	t->mask = buckets - 1;
	t->n = 0;
	return t->b ? 0 : -1;
}

void fe_tab_fini(struct fe_tab *t)
{
	uint32_t i;

	for (i = 0; t->b && i <= t->mask; i++) {
		struct fe_ent *e = t->b[i], *nx;

		for (; e; e = nx) {
			nx = e->next;
			free(e);
		}
	}
	free(t->b);
	t->b = NULL;
}

struct fe_ent *fe_tab_get(const struct fe_tab *t, uint64_t k0, uint64_t k1)
{
	struct fe_ent *e = t->b[hash2(k0, k1) & t->mask];

	for (; e; e = e->next)
		if (e->k0 == k0 && e->k1 == k1)
			return e;
	return NULL;
}

static void grow(struct fe_tab *t)
{
	uint32_t nb = (t->mask + 1) * 2, i;
	struct fe_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* keep the longer chains */
	for (i = 0; i <= t->mask; i++) {
		struct fe_ent *e = t->b[i], *nx;

		for (; e; e = nx) {
			uint32_t h = hash2(e->k0, e->k1) & (nb - 1);

			nx = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

struct fe_ent *fe_tab_put(struct fe_tab *t, uint64_t k0, uint64_t k1)
{
	struct fe_ent *e = fe_tab_get(t, k0, k1);
	uint32_t h;

	if (e)
		return e;
	if (t->n > t->mask && t->mask < (1u << 24))
		grow(t);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	h = hash2(k0, k1) & t->mask;
	e->k0 = k0;
	e->k1 = k1;
	e->next = t->b[h];
	t->b[h] = e;
	t->n++;
	return e;
}

int fe_tab_del(struct fe_tab *t, uint64_t k0, uint64_t k1)
{
	struct fe_ent **pp = &t->b[hash2(k0, k1) & t->mask];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->k0 == k0 && (*pp)->k1 == k1) {
			struct fe_ent *e = *pp;

			*pp = e->next;
			free(e);
			t->n--;
			return 1;
		}
	}
	return 0;
}
