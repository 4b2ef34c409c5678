/* kw_plan.c -- read the plan the Python master wrote (miresga_core/kernel/native.py,
 * write_plan: the format is documented there). One record per line, fields separated by
 * single spaces, text fields percent-encoded, the rule program as hex. Pools come first;
 * a backend belongs to the pool before it. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kw.h"

#define MAX_FIELDS 4096

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* percent-decoding in place; returns a strdup'ed copy */
static char *text(const char *s)
{
	char *out = strdup(s), *w = out;

	if (!out)
		return NULL;
	for (const char *r = s; *r; r++) {
		if (*r == '%' && unhex(r[1]) >= 0 && unhex(r[2]) >= 0) {
			*w++ = (char)(unhex(r[1]) << 4 | unhex(r[2]));
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
	return out;
}

static int split(char *line, char **f, int max)
{
	int n = 0;

	for (char *tok = strtok(line, " \n"); tok && n < max; tok = strtok(NULL, " \n"))
		f[n++] = tok;
	return n;
}

static int sockaddr_of(const char *host, int port, struct sockaddr_storage *sa,
		       socklen_t *len)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*v6);
		return 0;
	}
	return -1;
}

static int add_pool(struct kw_plan *pl, char **f, int n)
{
	struct kw_pool *p;

	if (n != 4)
		return -1;
	p = realloc(pl->p, sizeof(*p) * (size_t)(pl->npools + 1));
	if (!p)
		return -1;
	pl->p = p;
	p = &pl->p[pl->npools++];
	memset(p, 0, sizeof(*p));
	p->name = text(f[1]);
	p->passive = atoi(f[2]);
	p->cooldown_ms = atoll(f[3]);
	return 0;
}

static int add_backend(struct kw_plan *pl, char **f, int n)
{
	struct kw_pool *p;
	struct kw_backend *b;
	char *host;

	if (n != 6 || !pl->npools)
		return -1;
	p = &pl->p[pl->npools - 1];
	b = realloc(p->b, sizeof(*b) * (size_t)(p->n + 1));
	if (!b)
		return -1;
	p->b = b;
	b = &p->b[p->n++];
	memset(b, 0, sizeof(*b));
	host = text(f[1]);
	if (!host || sockaddr_of(host, atoi(f[2]), &b->sa, &b->salen) < 0) {
		free(host);
		return -1;
	}
	free(host);
	b->weight = atoi(f[3]);
	b->label = text(f[4]);
	b->address = text(f[5]);
	b->admin_up = 1;
	return 0;
}

static int load_program(struct kw_listener *l, const char *hex, char *err, size_t errlen)
{
	size_t n = strlen(hex) / 2;
	uint8_t *bytes = malloc(n ? n : 1);
	int rc;

	if (!bytes)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(bytes);
			snprintf(err, errlen, "listener %s: program is not hex", l->name);
			return -1;
		}
		bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	rc = mvm_load(bytes, n, &l->prog, err, errlen);
	free(bytes);
	return rc;
}

static int add_listener(struct kw_plan *pl, char **f, int n, char *err, size_t errlen)
{
	struct kw_listener *l;
	int np;

	if (n < 15)
		return -1;
	np = atoi(f[13]);
	if (np < 0 || n != 15 + np)
		return -1;
	l = realloc(pl->l, sizeof(*l) * (size_t)(pl->nlisteners + 1));
	if (!l)
		return -1;
	pl->l = l;
	l = &pl->l[pl->nlisteners];
	memset(l, 0, sizeof(*l));
	l->index = pl->nlisteners++;
	l->tag = TAG_LISTENER;
	l->fd = -1;
	l->shared_fd = -1;
	l->name = text(f[1]);
	l->host = text(f[2]);
	l->port = atoi(f[3]);
	l->v6 = atoi(f[4]);
	l->max_head = atoi(f[5]);
	l->retries = atoi(f[6]);
	l->xff = atoi(f[7]);
	l->t_head = atoll(f[8]);
	l->t_idle = atoll(f[9]);
	l->t_connect = atoll(f[10]);
	l->t_response = atoll(f[11]);
	l->t_drain = atoll(f[12]);
	l->npool_of = np;
	l->pool_of = calloc((size_t)np + 1, sizeof(int));
	if (!l->pool_of)
		return -1;
	for (int i = 0; i < np; i++) {
		l->pool_of[i] = atoi(f[14 + i]);
		if (l->pool_of[i] < 0 || l->pool_of[i] >= pl->npools)
			return -1;
	}
	if (load_program(l, f[14 + np], err, errlen) < 0)
		return -2;
	if (l->prog->n_pools != (uint32_t)np) {
		snprintf(err, errlen, "listener %s: program has %u pools, plan %d", l->name,
			 l->prog->n_pools, np);
		return -2;
	}
	return 0;
}

/* "listen_fd <listener> <fd>": the master's listening socket for that listener, which
 * every worker inherits (one accept queue for all: docs/native-kernel.md). */
static int set_listen_fd(struct kw_plan *pl, const char *name, int fd)
{
	for (int i = 0; i < pl->nlisteners; i++)
		if (!strcmp(pl->l[i].name, name) && fd > 2) {
			pl->l[i].shared_fd = fd;
			return 0;
		}
	return -1;
}

int plan_load(const char *path, struct kw_plan *pl, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;
	static char *f[MAX_FIELDS];

	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(pl, 0, sizeof(*pl));
	pl->splice_min = 64 * 1024;
	while (rc == 0 && getline(&line, &cap, fp) > 0) {
		int n = split(line, f, MAX_FIELDS);

		lineno++;
		if (n == 0 || f[0][0] == '#')
			continue;
		if (!strcmp(f[0], "pool"))
			rc = add_pool(pl, f, n);
		else if (!strcmp(f[0], "backend"))
			rc = add_backend(pl, f, n);
		else if (!strcmp(f[0], "listener"))
			rc = add_listener(pl, f, n, err, errlen);
		else if (!strcmp(f[0], "splice_min") && n == 2)
			pl->splice_min = atol(f[1]);
		else if (!strcmp(f[0], "listen_fd") && n == 3)
			rc = set_listen_fd(pl, f[1], atoi(f[2]));
		else
			rc = -1;
		if (rc == -1)
			snprintf(err, errlen, "%s:%d: bad %s record", path, lineno, f[0]);
	}
	free(line);
	fclose(fp);
	if (rc == 0 && !pl->nlisteners) {
		snprintf(err, errlen, "%s: no listener", path);
		rc = -1;
	}
	for (int i = 0; rc == 0 && i < pl->npools; i++)
		for (int j = 0; j < pl->p[i].n; j++) {
			pl->p[i].b[j].requests = calloc((size_t)pl->nlisteners, sizeof(long));
			if (!pl->p[i].b[j].requests)
				rc = -1;
		}
	return rc ? -1 : 0;
}

int pool_usable(const struct kw_backend *b, int64_t now)
{
	return b->admin_up && b->failed_until <= now && b->weight > 0;
}
