/* kw.h -- miresga-kw, the native worker of the kernel data plane (docs/native-kernel.md).
 *
 * One process = one single-threaded epoll loop serving every listener of the plan the
 * Python master wrote. Shared structures of the worker's files:
 *   kw.c       the process: listeners, epoll loop, signals, drain
 *   kw_session.c  client sessions, backend connections and idle pools, timers
 *   kw_plan.c  the plan file -> listeners, pools, backends, loaded rule programs
 *   kw_ctl.c   control socket: health verdicts in, stats JSON out (worker.py's schema) */
#ifndef KW_H
#define KW_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../dpdk/vm/mvm.h"

#define KW_MAX_IDLE 64          /* idle keep-alive connections kept per backend */
#define KW_MAX_STATUS 16        /* distinct local statuses counted per listener */

enum kw_tag { TAG_LISTENER = 1, TAG_CLIENT, TAG_BACKEND, TAG_CONTROL };

struct kw_backend {
	char *label, *address;          /* address: str(Address) of the config */
	struct sockaddr_storage sa;
	socklen_t salen;
	int weight;
	int admin_up;                   /* active health verdict from the master */
	int64_t failed_until;           /* passive: out until this time (ms, monotonic) */
	long passive_failures;
	struct kw_bconn *idle[KW_MAX_IDLE];
	int nidle;
	long *requests;                 /* per listener: responses relayed from here */
};

struct kw_pool {
	char *name;
	int passive;
	int64_t cooldown_ms;
	int n;
	struct kw_backend *b;
	unsigned rr;                    /* fallback pick when the program chose none */
};

struct kw_status { int code; long count; };

struct kw_stats {
	struct kw_status statuses[KW_MAX_STATUS];
	long retries, backend_failures;
};

struct kw_listener {
	int tag;                        /* TAG_LISTENER */
	int fd;
	int shared_fd;                  /* the master's listening socket, inherited; -1: none */
	char *name, *host;
	int port, v6;
	int max_head, retries, xff;
	int64_t t_head, t_idle, t_connect, t_response, t_drain;   /* ms */
	struct mvm_prog *prog;
	int *pool_of;                   /* program pool index -> plan pool index */
	int npool_of;
	uint64_t seq;                   /* per-listener sequence (r1) for round-robin tables */
	struct kw_stats stats;
	int index;
};

struct kw_plan {
	int nlisteners, npools;
	struct kw_listener *l;
	struct kw_pool *p;
	long splice_min;                /* Content-Length bodies at least this long: splice(2) */
};

struct kw_counters { uint64_t relayed, spliced, requests; };

extern struct kw_plan plan;
extern struct kw_counters counters;
extern int worker_id;

/* kw_plan.c */
int plan_load(const char *path, struct kw_plan *pl, char *err, size_t errlen);
int pool_usable(const struct kw_backend *b, int64_t now);

/* kw_ctl.c */
struct kw_ctl {
	int tag;                        /* TAG_CONTROL */
	int fd;
	char buf[65536];
	size_t len;
	int gone;
};
void ctl_readable(struct kw_ctl *c, int64_t now);

/* kw.c */
void ep_add(int fd, void *ptr, uint32_t events);
int64_t now_ms(void);
void kw_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stat_status(struct kw_stats *s, int code);

/* kw_session.c: the client sessions, as the loop sees them */
void session_accept(struct kw_listener *l, int fd, const struct sockaddr_storage *sa);
void session_event(void *ptr, uint32_t events);    /* a client or backend socket's event */
void session_run_queue(void);                      /* clients that had more to do */
int session_queued(void);
void session_sweep(int64_t now);                   /* timers */
void session_reap(void);                           /* free what the batch closed */
long session_count(void);
void session_drain(void);
void session_close_all(void);

#endif /* KW_H */
