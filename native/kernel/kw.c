/* kw.c -- miresga-kw: the native worker of the kernel data plane (docs/native-kernel.md).
 *
 * This file is the process: plan, listeners, the epoll loop, signals and the drain. The
 * per-connection work is kw_session.c, the control socket kw_ctl.c, the plan kw_plan.c,
 * HTTP/1 framing h1frame.c. Listeners are level triggered (accept up to 64 per wakeup);
 * connections are edge triggered (kw_session.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kw.h"

#define SWEEP_MS 50                     /* timer resolution */

struct kw_plan plan;
struct kw_counters counters;
int worker_id;

static int ep;
static volatile sig_atomic_t stop_requested;
static int draining;

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kw_log(const char *level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "miresga-kw[%d] %s miresga.kernel: %s\n", worker_id, level, msg);
}

void stat_status(struct kw_stats *s, int code)
{
	for (int i = 0; i < KW_MAX_STATUS; i++) {
		if (s->statuses[i].code == code || !s->statuses[i].code) {
			s->statuses[i].code = code;
			s->statuses[i].count++;
			return;
		}
	}
}

void ep_add(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		kw_log("error", "epoll_ctl add: %s", strerror(errno));
}
/* ------------------------------------------------------------------ listeners, accept */

/* One accept queue shared by every worker (the master's socket): EPOLLEXCLUSIVE wakes one
 * waiting worker per connection, so connections go to whoever is free, not by a hash of
 * the 4-tuple as with SO_REUSEPORT (which can leave one worker with twice the other's). */
#define LISTEN_EVENTS(l) (EPOLLIN | ((l)->shared_fd >= 0 ? EPOLLEXCLUSIVE : 0))

static int use_shared_listener(struct kw_listener *l)
{
	int fl = fcntl(l->shared_fd, F_GETFL);

	if (fl < 0 || fcntl(l->shared_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		kw_log("error", "listener %s: inherited fd %d: %s", l->name, l->shared_fd,
		       strerror(errno));
		return -1;
	}
	l->fd = l->shared_fd;
	ep_add(l->fd, l, LISTEN_EVENTS(l));
	return 0;
}

static int open_listener(struct kw_listener *l)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int one = 1, fd;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;

	if (l->shared_fd >= 0)
		return use_shared_listener(l);
	memset(&sa, 0, sizeof(sa));
	if (inet_pton(AF_INET, l->host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)l->port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, l->host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)l->port);
		len = sizeof(*v6);
	} else {
		kw_log("error", "listener %s: bad address %s", l->name, l->host);
		return -1;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  /* accepted ones inherit */
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 4096) < 0) {
		kw_log("error", "listener %s: cannot bind %s:%d: %s", l->name, l->host, l->port,
		       strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	ep_add(fd, l, EPOLLIN);
	return 0;
}

static int64_t accept_paused_until;

/* out of file descriptors: a level-triggered listener would wake us at once, forever.
 * Stop watching the listeners for a while (the sweep turns them back on). */
static void pause_accepting(void)
{
	if (!accept_paused_until)
		kw_log("warning", "accept: %s: not accepting for 100 ms", strerror(errno));
	accept_paused_until = now_ms() + 100;
	for (int i = 0; i < plan.nlisteners; i++)  /* DEL/ADD: EPOLLEXCLUSIVE refuses MOD */
		if (plan.l[i].fd >= 0)
			epoll_ctl(ep, EPOLL_CTL_DEL, plan.l[i].fd, NULL);
}

static void resume_accepting(int64_t now)
{
	if (!accept_paused_until || now < accept_paused_until)
		return;
	accept_paused_until = 0;
	for (int i = 0; i < plan.nlisteners; i++)
		if (plan.l[i].fd >= 0)
			ep_add(plan.l[i].fd, &plan.l[i], LISTEN_EVENTS(&plan.l[i]));
}
static void accept_some(struct kw_listener *l)
{
	/* shared queue: one per wake-up, so the other workers take their share */
	int burst = l->shared_fd >= 0 ? 1 : 64;

	for (int i = 0; i < burst && !draining; i++) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pause_accepting();
			return;  /* EAGAIN: all taken */
		}
		session_accept(l, fd, &sa);
	}
}

/* ------------------------------------------------------------------ the loop */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* stop accepting, let the sessions finish; returns the drain deadline */
static int64_t start_drain(void)
{
	int64_t drain = plan.l[0].t_drain;

	draining = 1;
	for (int i = 0; i < plan.nlisteners; i++) {
		if (plan.l[i].t_drain < drain)
			drain = plan.l[i].t_drain;
		if (plan.l[i].fd >= 0) {
			close(plan.l[i].fd);
			plan.l[i].fd = -1;
		}
	}
	session_drain();
	return now_ms() + drain;
}

static void dispatch(struct epoll_event *ev)
{
	int tag = *(int *)ev->data.ptr;

	if (tag == TAG_LISTENER)
		accept_some(ev->data.ptr);
	else if (tag == TAG_CONTROL)
		ctl_readable(ev->data.ptr, now_ms());
	else
		session_event(ev->data.ptr, ev->events);
}

static int run(struct kw_ctl *ctl)
{
	struct epoll_event evs[256];
	int64_t last_sweep = now_ms(), deadline = 0;

	for (;;) {
		int n;
		int64_t now;

		if ((stop_requested || (ctl && ctl->gone)) && !draining)
			deadline = start_drain();
		if (draining) {
			session_reap();
			if (!session_count() || now_ms() >= deadline)
				break;
		}
		n = epoll_wait(ep, evs, 256, session_queued() ? 0 : SWEEP_MS);
		if (n < 0 && errno != EINTR) {
			kw_log("error", "epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++)
			dispatch(&evs[i]);
		session_run_queue();
		now = now_ms();
		if (now - last_sweep >= SWEEP_MS) {
			last_sweep = now;
			session_sweep(now);
			if (!draining)
				resume_accepting(now);
		}
		session_reap();
	}
	session_close_all();
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: miresga-kw --plan FILE [--check] [--worker N] [--control-fd FD]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plan", required_argument, NULL, 'p' },
		{ "worker", required_argument, NULL, 'w' },
		{ "control-fd", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL;
	struct kw_ctl *ctl = NULL;
	int control_fd = -1, opt, rc, check = 0;
	char err[512];
	struct sigaction sa;

	while ((opt = getopt_long(argc, argv, "p:w:c:", opts, NULL)) != -1) {
		if (opt == 'p')
			plan_path = optarg;
		else if (opt == 'w')
			worker_id = atoi(optarg);
		else if (opt == 'c')
			control_fd = atoi(optarg);
		else if (opt == 'k')
			check = 1;
		else
			return usage(), 2;
	}
	if (!plan_path)
		return usage(), 2;
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (plan_load(plan_path, &plan, err, sizeof(err)) < 0) {
		kw_log("error", "plan: %s", err);
		return 2;
	}
	if (check)
		return 0;  /* the master asks once before it starts workers */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);  /* the master decides when workers stop */
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 1;
	for (int i = 0; i < plan.nlisteners; i++)
		if (open_listener(&plan.l[i]) < 0)
			return 2;
	if (control_fd >= 0) {
		ctl = calloc(1, sizeof(*ctl));
		if (!ctl)
			return 1;
		ctl->tag = TAG_CONTROL;
		ctl->fd = control_fd;
		fcntl(control_fd, F_SETFL, fcntl(control_fd, F_GETFL) | O_NONBLOCK);
		fcntl(control_fd, F_SETFD, FD_CLOEXEC);
		ep_add(control_fd, ctl, EPOLLIN);
	}
	rc = run(ctl);
	free(ctl);
	return rc;
}
