/* fe_config.c -- the front-end's configuration file (docs/dpdk.md), DPDK-free so the
 * replay/benchmark tool and the DPDK shell read it the same way. One directive a line:
 *
 *   cookie <16 hex> [<16 hex>]            current [and previous] cookie secret
 *   agent_key <slot> <32 hex> <use 0|1>   SipHash key of an agent key slot
 *   params <max_head> <syn_rto_ns> <syn_retries> <idle_ns> <offloaded_idle_ns> <grace_ns>
 *          <pool_affinity 0|1>
 *   vip <a.b.c.d> <port> <wscale> <mss> <program file>
 *   backend <vip a.b.c.d> <vip port> <pool index> <a.b.c.d> <port>
 */
#include "fe_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexbytes(const char *hex, uint8_t *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &out[i]) != 1)
			return -1;
	return 0;
}

static int ip4(const char *s, uint32_t *ip)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*ip = ntohl(a.s_addr);
	return 0;
}

static int load_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	*buf = malloc(n > 0 ? (size_t)n : 1);
	*len = *buf && n > 0 ? fread(*buf, 1, (size_t)n, f) : 0;
	fclose(f);
	return *buf ? 0 : -1;
}

/* One line of the configuration (see docs/dpdk.md, "configuration file"). */
static int config_line(struct mfe *m, char *line, char *err, size_t errlen)
{
	char a[4][128];
	long long p[7];
	uint8_t k1[16], k2[16];
	uint32_t ip, ip2;
	unsigned port, port2, pool;
	int ws, mss, slot, n;

	if (sscanf(line, "cookie %127s %127s", a[0], a[1]) >= 1) {
		n = sscanf(line, "cookie %127s %127s", a[0], a[1]);
		if (hexbytes(a[0], k1, 8) || (n == 2 && hexbytes(a[1], k2, 8)))
			return snprintf(err, errlen, "cookie keys are 16 hex digits"), -1;
		mfe_set_cookie_keys(m, k1, n == 2 ? k2 : NULL);
	} else if (sscanf(line, "agent_key %d %127s %d", &slot, a[0], &n) == 3) {
		if (hexbytes(a[0], k1, 16) || mfe_set_agent_key(m, slot, k1, n))
			return snprintf(err, errlen, "agent key: slot 0/1 and 32 hex digits"), -1;
	} else if (sscanf(line, "params %lld %lld %lld %lld %lld %lld %lld", &p[0], &p[1], &p[2],
			  &p[3], &p[4], &p[5], &p[6]) == 7) {
		struct mfe_params mp = {p[0], p[1], p[2], p[3], p[4], p[5], p[6]};
		mfe_set_params(m, &mp);
	} else if (sscanf(line, "vip %127s %u %d %d %127s", a[0], &port, &ws, &mss, a[1]) == 5) {
		uint8_t *prog;
		size_t len;
		int r;

		if (ip4(a[0], &ip) || port > 65535)
			return snprintf(err, errlen, "vip: bad address %s:%u", a[0], port), -1;
		if (load_file(a[1], &prog, &len))
			return snprintf(err, errlen, "vip: cannot read program %s: %s", a[1],
					strerror(errno)), -1;
		r = mfe_add_vip(m, ip, (uint16_t)port, ws, mss, prog, len, err, errlen);
		free(prog);
		return r;
	} else if (sscanf(line, "backend %127s %u %u %127s %u", a[0], &port, &pool, a[1], &port2) == 5) {
		if (ip4(a[0], &ip) || ip4(a[1], &ip2) ||
		    mfe_add_backend(m, ip, (uint16_t)port, pool, ip2, (uint16_t)port2))
			return snprintf(err, errlen, "backend: unknown VIP/pool or bad address"), -1;
	} else if (line[0] != '#' && line[0] != '\n' && line[0]) {
		return snprintf(err, errlen, "unknown line"), -1;
	}
	return 0;
}

int fe_load_config(struct mfe *m, const char *path)
{
	char line[1024], err[256] = "";
	FILE *f = fopen(path, "r");
	int no = 0;

	if (!f) {
		fprintf(stderr, "miresga-fe: cannot open config %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		no++;
		if (config_line(m, line, err, sizeof(err))) {
			fprintf(stderr, "miresga-fe: %s:%d: %s\n", path, no, err);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

