/* GENERATED FILE - DO NOT EDIT.
 * Source of truth: miresga_core/wire/option.py
 * Regenerate: python3 -m miresga_core.wire.gen_headers
 * tests/agent/test_generated_headers.py fails when this copy is stale. */
#ifndef MIRESGA_OPTION_H
#define MIRESGA_OPTION_H


#define MIRESGA_OPT_KIND           254 /* TCP option kind (RFC 6994 experimental) */
#define MIRESGA_OPT_LEN            20 /* option length in bytes */
#define MIRESGA_OPT_EXID           0x4d52 /* experiment id, bytes 2..3 */
#define MIRESGA_OPT_VERSION        1 /* high nibble of byte 4 */
#define MIRESGA_OPT_F_SACK_OK      1 /* client offered SACK */
#define MIRESGA_OPT_F_WSCALE_OK    2 /* client offered window scaling */
#define MIRESGA_OPT_F_KEY_SLOT     4 /* tag made with key slot 1 (else 0) */
#define MIRESGA_OPT_WSCALE_MAX     14 /* largest legal window scale */
#define MIRESGA_OPT_TAG_OFF        12 /* offset of the 8-byte tag */
#define MIRESGA_OPT_MSG_LEN        24 /* bytes hashed for the tag */
#define MIRESGA_OPT_REWRITE_LEN    12 /* standard option bytes written back */
#define MIRESGA_OPT_SHRINK         8 /* bytes the SYN loses */
#define MIRESGA_OPT_TS_TRAILER_LEN 12 /* NOP,NOP,TS(8,10,TSval,ts_base) after the option */
#define MIRESGA_OPT_TS_KIND        8 /* RFC 7323 timestamps option kind */
#define MIRESGA_OPT_TS_LEN         10 /* timestamps option length */

#endif /* MIRESGA_OPTION_H */
