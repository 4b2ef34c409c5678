/* fe_switch.h -- direct offload: the front-end applies its own offload / unoffload
 * records (fe_machine.h, types 2 and 3) to the XDP switch's pinned BPF maps, with the
 * map operations of miresga_core/dataplane/driver.py (offload_add / offload_remove), in
 * the same order. Key and value layouts come from the generated switch_tables.h (the
 * schema in miresga_core/dataplane/schema.py is their one source of truth).
 *
 * No DPDK here: the library (libmfe.so) carries this file too, so the tests drive the
 * planning functions and the map updates from Python against a real switch. */
#ifndef FE_SWITCH_H
#define FE_SWITCH_H

#include <stddef.h>
#include <stdint.h>

#include "../../xdp/generated/switch_tables.h"

/* The switch maps an offload touches (fds from BPF_OBJ_GET, -1 when closed). */
struct fe_switch {
	int offload, offload_rev, backend, backend_addr;
};

struct fe_switch_counts {
	uint64_t offload_applied, unoffload_applied, offload_failed, batches;
};

/* What an offload record asks for, before the backend index is known: the backend
 * table's address key (to look the index up), then offload_rev, then offload (whose
 * value's backend field is the looked-up index). */
struct fe_offload_plan {
	struct backend_addr_key backend_key;
	struct offload_rev_key rev_key;
	struct offload_rev_value rev_value;
	struct offload_key key;
	struct offload_value value;
};

/* Pure: an offload record (20 bytes, type 2) as map entries; -1 for an offload mode the
 * switch has no value for (the record's mode 0 = none). */
int fe_switch_plan_add(const uint8_t *rec, struct fe_offload_plan *p);
/* Pure: the offload key of an unoffload record (13 bytes, type 3). */
void fe_switch_plan_remove(const uint8_t *rec, struct offload_key *k);
/* Pure: the offload_rev key of a forward key whose entry names backend b. */
void fe_switch_rev_key(const struct offload_key *k, const struct backend_value *b,
		       struct offload_rev_key *rk);

/* Open the four maps pinned under pin_dir (the XdpSwitch pin directory, one file per
 * schema table). 0, or -1 with errno set and a message in err. */
int fe_switch_open(struct fe_switch *sw, const char *pin_dir, char *err, size_t errlen);
void fe_switch_close(struct fe_switch *sw);

/* Apply a batch of offload / unoffload records (len bytes, records only) in order. A
 * record that fails is counted (offload_failed) and the rest go on: that flow keeps
 * going through the front-end, only slower. Returns the number of failed records, or -1
 * for a malformed batch (counted as failed, the rest of the batch skipped). */
int fe_switch_apply(struct fe_switch *sw, const uint8_t *buf, size_t len,
		    struct fe_switch_counts *c);

#endif /* FE_SWITCH_H */
