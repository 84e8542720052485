/*
 * rr-blk-io: the guest side of the QEMU block test and benchmark, built static by prepare.sh (the
 * host runs the same binary on the image file to write the pattern before boot and to check what
 * the guest wrote after power-off).
 *
 * The data pattern is a function of a seed and the absolute byte offset, so any range can be
 * checked on its own and a block written at the wrong offset is caught: the 8-byte little-endian
 * word at offset o is mix64(seed * golden + o / 8) (a splitmix64-style finaliser). Seed 0 is
 * all zeroes (what a discarded or zeroed range must read back as).
 *
 * Asynchronous I/O is Linux native AIO through the raw system calls io_setup, io_submit,
 * io_getevents and io_destroy (include/uapi/linux/aio_abi.h), so the helper needs no libaio.
 * With direct=1 the device is opened O_DIRECT and up to qd requests are in flight at once, which
 * is what puts several descriptor chains on the virtqueue together; with direct=0 the page cache
 * sits in between and the helper uses plain pread/pwrite.
 *
 *   rr-blk-io fill   dev=PATH off=N len=N seed=S [bs=N] [qd=N] [direct=0|1] [order=seq|shuffle] [fsync=0|1]
 *   rr-blk-io verify dev=PATH off=N len=N seed=S [bs=N] [qd=N] [direct=0|1] [order=seq|shuffle]
 *   rr-blk-io discard dev=PATH off=N len=N       BLKDISCARD (VIRTIO_BLK_T_DISCARD in virtio_blk)
 *   rr-blk-io zeroout dev=PATH off=N len=N       BLKZEROOUT (VIRTIO_BLK_T_WRITE_ZEROES where offered)
 *   rr-blk-io bench  dev=PATH op=randread|randwrite bs=N qd=N [secs=S] [count=N] [off=N] [len=N]
 *                    [name=WORD] [tag=TEXT]
 *
 * Sizes take a k/m/g suffix (powers of 1024). Output: "RRQ PASS|FAIL <name>: ..." for fill and
 * verify (name= sets it; the first mismatch is reported with its offset and both words), and one
 * "RRQ BENCH ..." line for bench with the request count, the seconds, IOPS and MB/s (10^6 bytes),
 * and dev_ios, the requests the block layer completed on that disk in the window
 * (/sys/block/<disk>/stat: reads + writes + discards + flushes).
 *
 * A stall (no completion for 15 s with requests in flight) is probed: one more read is submitted,
 * which makes the driver notify the device again and the device, when it completes it, interrupt
 * the driver again. When the stuck requests then complete, a notification was lost on the way
 * (a kick the device missed, or an interrupt the driver never got); the run goes on, is reported
 * as failed, and counts the stall (stalls=N on the bench line). When nothing completes within
 * 45 s more, the device has lost the requests: exit status 3.
 *
 * Exit status: 0 success, 1 a mismatch, a failed request or a stall, 2 a usage error, 3 requests
 * the device never completed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_QD 256
#define STALL_SECONDS 15 /* no completion for this long: a stall (probed, see engine_run) */
#define PROBE_SECONDS 45  /* after the probe request, how long to wait for anything */

struct opts {
	const char *dev, *op, *order, *name, *tag;
	uint64_t off, len, bs, count;
	uint64_t seed;
	unsigned qd;
	int direct, do_fsync, have_seed;
	double secs;
};

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t pattern_word(uint64_t seed, uint64_t byte_off)
{
	return seed == 0 ? 0 : mix64(seed * 0x9e3779b97f4a7c15ULL + byte_off / 8);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void fill_block(unsigned char *buf, uint64_t len, uint64_t seed, uint64_t off)
{
	for (uint64_t i = 0; i < len; i += 8)
		put_le64(buf + i, pattern_word(seed, off + i));
}

/* The offset of the first word that differs from the pattern, or UINT64_MAX. */
static uint64_t check_block(const unsigned char *buf, uint64_t len, uint64_t seed, uint64_t off)
{
	for (uint64_t i = 0; i < len; i += 8)
		if (get_le64(buf + i) != pattern_word(seed, off + i))
			return off + i;
	return UINT64_MAX;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- native AIO through the raw system calls ------------------------------------------------ */

static long sys_io_setup(unsigned nr, aio_context_t *ctx) { return syscall(SYS_io_setup, nr, ctx); }
static long sys_io_destroy(aio_context_t ctx) { return syscall(SYS_io_destroy, ctx); }
static long sys_io_submit(aio_context_t ctx, long n, struct iocb **v) { return syscall(SYS_io_submit, ctx, n, v); }
static long sys_io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev, struct timespec *t)
{
	return syscall(SYS_io_getevents, ctx, min, max, ev, t);
}

/* --- sizes and options ------------------------------------------------------------------------ */

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int usage(const char *why)
{
	fprintf(stderr, "rr-blk-io: %s\n"
		"usage: rr-blk-io fill|verify dev=PATH off=N len=N seed=S [bs=N] [qd=N] [direct=0|1] "
		"[order=seq|shuffle] [fsync=0|1] [name=WORD]\n"
		"       rr-blk-io discard|zeroout dev=PATH off=N len=N [name=WORD]\n"
		"       rr-blk-io bench dev=PATH op=randread|randwrite bs=N qd=N [secs=S] [count=N] "
		"[off=N] [len=N] [name=WORD] [tag=TEXT]\n", why);
	return 2;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->bs = 65536;
	o->qd = 1;
	o->direct = 1;
	o->order = "seq";
	o->name = "";
	o->tag = "";
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		uint64_t v;

		if (!eq)
			return -1;
		*eq = 0;
		const char *k = argv[i], *val = eq + 1;
		if (!strcmp(k, "dev")) o->dev = val;
		else if (!strcmp(k, "op")) o->op = val;
		else if (!strcmp(k, "order")) o->order = val;
		else if (!strcmp(k, "name")) o->name = val;
		else if (!strcmp(k, "tag")) o->tag = val;
		else if (!strcmp(k, "secs")) o->secs = atof(val);
		else if (parse_size(val, &v)) return -1;
		else if (!strcmp(k, "off")) o->off = v;
		else if (!strcmp(k, "len")) o->len = v;
		else if (!strcmp(k, "bs")) o->bs = v;
		else if (!strcmp(k, "count")) o->count = v;
		else if (!strcmp(k, "seed")) { o->seed = v; o->have_seed = 1; }
		else if (!strcmp(k, "qd")) o->qd = (unsigned)v;
		else if (!strcmp(k, "direct")) o->direct = v != 0;
		else if (!strcmp(k, "fsync")) o->do_fsync = v != 0;
		else return -1;
	}
	if (!o->dev || o->bs == 0 || o->bs % 512 || o->qd == 0 || o->qd > MAX_QD)
		return -1;
	return 0;
}

static int open_dev(const struct opts *o, int write)
{
	/* O_CREAT: fill also writes a plain file (the guest's dd source on tmpfs). */
	int fd = open(o->dev, (write ? O_RDWR | O_CREAT : O_RDONLY) | (o->direct ? O_DIRECT : 0), 0644);

	if (fd < 0)
		printf("RRQ FAIL %s: open %s%s: %s (errno %d)\n", o->name, o->dev,
		       o->direct ? " O_DIRECT" : "", strerror(errno), errno);
	return fd;
}

static void *alloc_buf(uint64_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len)) {
		fprintf(stderr, "rr-blk-io: out of memory\n");
		exit(2);
	}
	return p;
}

/* The disk's name under /sys/block for a /dev path, or "" (a regular file). */
static void disk_name(const char *dev, char *out, size_t n)
{
	const char *b = strrchr(dev, '/');
	char p[256];

	snprintf(out, n, "%s", b ? b + 1 : dev);
	snprintf(p, sizeof(p), "/sys/block/%s/stat", out);
	if (access(p, R_OK))
		out[0] = 0;
}

/* Requests the block layer completed on the disk: reads, writes, discards, flushes
 * (Documentation/block/stat.rst: fields 1, 5, 12 and 16). */
static uint64_t disk_ios(const char *disk)
{
	char p[256];
	unsigned long long f[17] = { 0 };
	FILE *fp;
	int n;

	if (!disk[0])
		return 0;
	snprintf(p, sizeof(p), "/sys/block/%s/stat", disk);
	fp = fopen(p, "r");
	if (!fp)
		return 0;
	for (n = 0; n < 17 && fscanf(fp, "%llu", &f[n]) == 1; n++)
		;
	fclose(fp);
	return f[0] + f[4] + f[11] + f[15];
}

/* --- fill and verify -------------------------------------------------------------------------- */

/* The block order: sequential, or a Fisher-Yates shuffle (a fixed xorshift stream). */
static uint64_t *block_order(uint64_t nblocks, int shuffle)
{
	uint64_t *v = malloc(nblocks * sizeof(*v)), x = 0x243f6a8885a308d3ULL;

	if (!v) {
		fprintf(stderr, "rr-blk-io: out of memory\n");
		exit(2);
	}
	for (uint64_t i = 0; i < nblocks; i++)
		v[i] = i;
	for (uint64_t i = nblocks; shuffle && i > 1; i--) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		uint64_t j = x % i, t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
	return v;
}

static int report_mismatch(const struct opts *o, uint64_t at, const unsigned char *buf, uint64_t base)
{
	printf("RRQ FAIL %s: first mismatch at byte %" PRIu64 " (0x%" PRIx64 "): read %016" PRIx64
	       ", expected %016" PRIx64 " (seed %" PRIu64 ")\n", o->name, at, at,
	       get_le64(buf + (at - base)), pattern_word(o->seed, at), o->seed);
	return 1;
}

/* Buffered (or synchronous) fill/verify with pread/pwrite. */
static int fill_verify_sync(const struct opts *o, int write)
{
	int fd = open_dev(o, write);
	unsigned char *buf = alloc_buf(o->bs);
	uint64_t nblocks = o->len / o->bs, *ord = block_order(nblocks, !strcmp(o->order, "shuffle"));

	if (fd < 0)
		return 1;
	for (uint64_t i = 0; i < nblocks; i++) {
		uint64_t at = o->off + ord[i] * o->bs;
		ssize_t r;

		if (write) {
			fill_block(buf, o->bs, o->seed, at);
			r = pwrite(fd, buf, o->bs, (off_t)at);
		} else {
			r = pread(fd, buf, o->bs, (off_t)at);
		}
		if (r != (ssize_t)o->bs) {
			printf("RRQ FAIL %s: %s at %" PRIu64 " returned %zd: %s (errno %d)\n", o->name,
			       write ? "pwrite" : "pread", at, r, r < 0 ? strerror(errno) : "short", r < 0 ? errno : 0);
			return 1;
		}
		if (!write) {
			uint64_t bad = check_block(buf, o->bs, o->seed, at);
			if (bad != UINT64_MAX)
				return report_mismatch(o, bad, buf, at);
		}
	}
	if (write && o->do_fsync && fsync(fd)) {
		printf("RRQ FAIL %s: fsync: %s (errno %d)\n", o->name, strerror(errno), errno);
		return 1;
	}
	close(fd);
	return 0;
}

/*
 * The AIO engine shared by fill/verify and bench: keeps up to qd requests in flight; next() gives
 * the offset of the next request (or returns 0 when there are no more), prep() (optional) fills
 * a slot's buffer before it is submitted, done() checks a completed one. Returns 0, 1 (a failed request or check) or 3 (a stall).
 */
struct engine {
	const struct opts *o;
	int fd, write;
	aio_context_t ctx;
	struct iocb cbs[MAX_QD];
	unsigned char *bufs[MAX_QD];
	uint64_t completed, stalls;
	unsigned char *probe_buf;
	int (*next)(struct engine *, uint64_t *off);
	void (*prep)(struct engine *, unsigned slot, uint64_t off);
	int (*done)(struct engine *, unsigned slot, uint64_t off);
	void *state;
};

static int engine_submit(struct engine *e, unsigned slot, uint64_t at)
{
	struct iocb *cb = &e->cbs[slot];
	struct iocb *v[1] = { cb };

	memset(cb, 0, sizeof(*cb));
	cb->aio_fildes = (uint32_t)e->fd;
	cb->aio_lio_opcode = e->write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
	cb->aio_buf = (uint64_t)(uintptr_t)e->bufs[slot];
	cb->aio_nbytes = e->o->bs;
	cb->aio_offset = (int64_t)at;
	cb->aio_data = slot;
	if (sys_io_submit(e->ctx, 1, v) != 1) {
		printf("RRQ FAIL %s: io_submit at %" PRIu64 ": %s (errno %d)\n", e->o->name, at, strerror(errno), errno);
		return 1;
	}
	return 0;
}

/* The probe: one 4 KiB read at offset 0 on its own fd (O_DIRECT), tagged MAX_QD. */
static int engine_probe(struct engine *e)
{
	static struct iocb cb;
	struct iocb *v[1] = { &cb };
	int fd = open(e->o->dev, O_RDONLY | O_DIRECT);

	if (fd < 0)
		return -1;
	if (!e->probe_buf)
		e->probe_buf = alloc_buf(4096);
	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_lio_opcode = IOCB_CMD_PREAD;
	cb.aio_buf = (uint64_t)(uintptr_t)e->probe_buf;
	cb.aio_nbytes = 4096;
	cb.aio_data = MAX_QD;
	return sys_io_submit(e->ctx, 1, v) == 1 ? 0 : -1;
}

static int engine_run(struct engine *e)
{
	unsigned inflight = 0, slot, probing = 0;
	struct io_event ev[MAX_QD + 1];
	int rc = 0; /* a failed request or check: stop issuing; a stall alone does not stop the run */
	uint64_t at;

	if (sys_io_setup(e->o->qd + 1, &e->ctx)) {
		printf("RRQ FAIL %s: io_setup(%u): %s\n", e->o->name, e->o->qd + 1, strerror(errno));
		return 1;
	}
	for (slot = 0; slot < e->o->qd && e->next(e, &at); slot++) {
		if (e->prep)
			e->prep(e, slot, at);
		if ((rc = engine_submit(e, slot, at)))
			goto out;
		inflight++;
	}
	while (inflight) {
		struct timespec t = { probing ? PROBE_SECONDS : STALL_SECONDS, 0 };
		long n = sys_io_getevents(e->ctx, 1, MAX_QD + 1, ev, &t);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && !probing) {
			printf("RRQ INFO %s: %u requests in flight and none completed in %d s; submitting a probe read\n",
			       e->o->name, inflight, STALL_SECONDS);
			if (engine_probe(e) == 0) {
				probing = 1;
				inflight++;
				continue;
			}
		}
		if (n <= 0) {
			printf("RRQ FAIL %s: %u requests not completed within %d s%s (io_getevents %ld: %s)\n",
			       e->o->name, inflight - probing, STALL_SECONDS + (probing ? PROBE_SECONDS : 0),
			       probing ? ", not even after a probe request" : "", n, n < 0 ? strerror(errno) : "timeout");
			rc = 3;
			goto out_nodestroy;
		}
		if (probing) {
			printf("RRQ FAIL %s: %u requests stalled for %d s and completed after a probe request: a lost "
			       "notification (kick or interrupt)\n", e->o->name, inflight - 1, STALL_SECONDS);
			e->stalls++;
			probing = 0;
		}
		for (long i = 0; i < n; i++) {
			inflight--;
			if (ev[i].data == MAX_QD) { /* the probe */
				close((int)((struct iocb *)(uintptr_t)ev[i].obj)->aio_fildes);
				continue;
			}
			slot = (unsigned)ev[i].data;
			at = (uint64_t)e->cbs[slot].aio_offset;
			if (ev[i].res != (int64_t)e->o->bs) {
				printf("RRQ FAIL %s: %s at %" PRIu64 " completed with %lld%s%s\n", e->o->name,
				       e->write ? "write" : "read", at, (long long)ev[i].res,
				       ev[i].res < 0 ? ": " : "", ev[i].res < 0 ? strerror((int)-ev[i].res) : "");
				rc = 1;
				continue;
			}
			e->completed++;
			if (rc == 0 && (rc = e->done(e, slot, at)))
				continue;
			if (rc == 0 && e->next(e, &at)) {
				if (e->prep)
					e->prep(e, slot, at);
				if (engine_submit(e, slot, at)) {
					rc = 1;
					continue;
				}
				inflight++;
			}
		}
	}
out:
	sys_io_destroy(e->ctx);
out_nodestroy: /* io_destroy would wait for the stalled requests */
	return rc ? rc : e->stalls ? 1 : 0;
}

struct fv_state {
	uint64_t *ord, nblocks, i;
};

static int fv_next(struct engine *e, uint64_t *at)
{
	struct fv_state *s = e->state;

	if (s->i >= s->nblocks)
		return 0;
	*at = e->o->off + s->ord[s->i++] * e->o->bs;
	return 1;
}

static void fv_prep(struct engine *e, unsigned slot, uint64_t at)
{
	fill_block(e->bufs[slot], e->o->bs, e->o->seed, at);
}

static int fv_done(struct engine *e, unsigned slot, uint64_t at)
{
	if (e->write)
		return 0;
	uint64_t bad = check_block(e->bufs[slot], e->o->bs, e->o->seed, at);
	return bad == UINT64_MAX ? 0 : report_mismatch(e->o, bad, e->bufs[slot], at);
}

static int fill_verify(const struct opts *o, int write)
{
	struct engine e = { .o = o, .write = write, .next = fv_next, .prep = write ? fv_prep : NULL,
			    .done = fv_done };
	struct fv_state s = { 0 };
	double t0 = now_s();
	int rc;

	if (!o->have_seed || o->len == 0 || o->len % o->bs || o->off % 512)
		return usage("fill/verify need seed=, and len= a multiple of bs= (off= of 512)");
	if (!o->direct) {
		rc = fill_verify_sync(o, write);
	} else {
		if ((e.fd = open_dev(o, write)) < 0)
			return 1;
		s.nblocks = o->len / o->bs;
		s.ord = block_order(s.nblocks, !strcmp(o->order, "shuffle"));
		e.state = &s;
		for (unsigned i = 0; i < o->qd; i++)
			e.bufs[i] = alloc_buf(o->bs);
		rc = engine_run(&e);
		if (rc == 0 && write && o->do_fsync && fsync(e.fd)) {
			printf("RRQ FAIL %s: fsync: %s (errno %d)\n", o->name, strerror(errno), errno);
			rc = 1;
		}
		if (rc != 3)
			close(e.fd);
	}
	if (rc == 0)
		printf("RRQ PASS %s: %s %" PRIu64 " bytes at %" PRIu64 " (seed %" PRIu64 ", bs %" PRIu64
		       ", qd %u, %s, %s%s) in %.2f s\n", o->name, write ? "wrote" : "read back and compared",
		       o->len, o->off, o->seed, o->bs, o->direct ? o->qd : 1, o->order,
		       o->direct ? "O_DIRECT" : "buffered", write && o->do_fsync ? ", fsync" : "", now_s() - t0);
	return rc;
}

/* --- discard and zero-out ----------------------------------------------------------------------- */

static int range_ioctl(const struct opts *o, unsigned long req, const char *what)
{
	uint64_t range[2] = { o->off, o->len };
	int fd = open(o->dev, O_RDWR);

	if (fd < 0 || ioctl(fd, req, range)) {
		printf("RRQ FAIL %s: %s %" PRIu64 " bytes at %" PRIu64 ": %s (errno %d)\n", o->name, what,
		       o->len, o->off, strerror(errno), errno);
		return 1;
	}
	close(fd);
	printf("RRQ PASS %s: %s %" PRIu64 " bytes at %" PRIu64 "\n", o->name, what, o->len, o->off);
	return 0;
}

/* --- bench ------------------------------------------------------------------------------------ */

struct bench_state {
	uint64_t x, nblocks, issued;
	double deadline;
};

static int bench_next(struct engine *e, uint64_t *at)
{
	struct bench_state *s = e->state;

	if (e->o->count ? s->issued >= e->o->count : now_s() >= s->deadline)
		return 0;
	s->x ^= s->x << 13; s->x ^= s->x >> 7; s->x ^= s->x << 17;
	*at = e->o->off + (s->x % s->nblocks) * e->o->bs;
	s->issued++;
	return 1;
}

static int bench_done(struct engine *e, unsigned slot, uint64_t at)
{
	(void)e; (void)slot; (void)at;
	return 0;
}

static int bench(const struct opts *o)
{
	struct engine e = { .o = o, .next = bench_next, .done = bench_done };
	struct bench_state s = { .x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL) };
	struct opts oo = *o;
	char disk[64];
	uint64_t ios0, ios1, size = 0;
	double t0, t1;
	int rc;

	if (!o->op || (strcmp(o->op, "randread") && strcmp(o->op, "randwrite")))
		return usage("bench needs op=randread|randwrite");
	if (!o->count && o->secs <= 0)
		return usage("bench needs secs= or count=");
	oo.direct = 1;
	e.o = &oo;
	e.write = !strcmp(o->op, "randwrite");
	if ((e.fd = open_dev(&oo, e.write)) < 0)
		return 1;
	if (ioctl(e.fd, BLKGETSIZE64, &size)) {
		struct stat st;
		size = fstat(e.fd, &st) ? 0 : (uint64_t)st.st_size;
	}
	if (oo.len == 0)
		oo.len = size > oo.off ? size - oo.off : 0;
	s.nblocks = oo.len / oo.bs;
	if (s.nblocks == 0)
		return usage("bench: the range holds no block");
	for (unsigned i = 0; i < oo.qd; i++) {
		e.bufs[i] = alloc_buf(oo.bs);
		fill_block(e.bufs[i], oo.bs, 1000 + i, 0); /* written data: not zeroes */
	}
	e.state = &s;
	disk_name(oo.dev, disk, sizeof(disk));
	ios0 = disk_ios(disk);
	t0 = now_s();
	s.deadline = t0 + oo.secs;
	rc = engine_run(&e);
	t1 = now_s();
	ios1 = disk_ios(disk);
	double secs = t1 - t0;
	printf("RRQ BENCH name=%s %sdev=%s op=%s bs=%" PRIu64 " qd=%u secs=%.3f requests=%" PRIu64
	       " dev_ios=%" PRIu64 " iops=%.0f mbps=%.1f stalls=%" PRIu64 " rc=%d\n", o->name[0] ? o->name : oo.op,
	       o->tag, disk[0] ? disk : oo.dev, oo.op, oo.bs, oo.qd, secs, e.completed, ios1 - ios0,
	       e.completed / secs, e.completed * (double)oo.bs / secs / 1e6, e.stalls, rc);
	if (rc != 3)
		close(e.fd);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage("no command");
	if (parse_opts(argc, argv, &o))
		return usage("bad or missing option");
	if (!o.name[0])
		o.name = argv[1];
	if (!strcmp(argv[1], "fill"))
		return fill_verify(&o, 1);
	if (!strcmp(argv[1], "verify"))
		return fill_verify(&o, 0);
	if (!strcmp(argv[1], "discard"))
		return range_ioctl(&o, BLKDISCARD, "BLKDISCARD");
	if (!strcmp(argv[1], "zeroout"))
		return range_ioctl(&o, BLKZEROOUT, "BLKZEROOUT");
	if (!strcmp(argv[1], "bench"))
		return bench(&o);
	return usage("unknown command");
}
