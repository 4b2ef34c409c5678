/* fe_config.h -- read the front-end configuration file into a machine. */
#ifndef FE_CONFIG_H
#define FE_CONFIG_H

#include "fe_machine.h"

/* 0, or -1 with a message (file:line: why) on stderr. */
int fe_load_config(struct mfe *m, const char *path);

#endif /* FE_CONFIG_H */
