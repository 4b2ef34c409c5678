/* Host-side check of switch_cookie.h against tests/vectors/cookie.toml.
 * stdin: one vector per line, "k0 k1 client vip client_port vip_port slot mss ws sack"
 * (decimal; mss 0 = no option, ws 15 = no option); stdout: the cookie in hex per line. */
#include <stdio.h>
#include "../switch_cookie.h"

int main(void)
{
	unsigned k0, k1, client, vip, cport, vport, slot, mss, ws, sack;

	while (scanf("%u %u %u %u %u %u %u %u %u %u", &k0, &k1, &client, &vip, &cport, &vport,
		     &slot, &mss, &ws, &sack) == 10)
		printf("%08x\n", miresga_cookie(k0, k1, client, vip, cport, vport, slot,
					       miresga_mss_class(mss), ws, sack));
	return 0;
}
