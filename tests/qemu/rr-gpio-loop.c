/*
 * rr-gpio-loop: the guest side of the QEMU test's set/get checks, built static by prepare.sh.
 *
 * libgpiod 1.6's gpioset and gpioget each request the line for themselves, so they cannot read
 * back a value that a held gpioset drives (the second request gets EBUSY). This helper holds one
 * line as an output through the GPIO character device's v2 uAPI (Linux
 * include/uapi/linux/gpio.h: GPIO_V2_GET_LINE_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL,
 * GPIO_V2_LINE_GET_VALUES_IOCTL) and reads the line back through the same request. In
 * drivers/gpio/gpio-virtio.c every set is one VIRTIO_GPIO_MSG_SET_VALUE and every get one
 * VIRTIO_GPIO_MSG_GET_VALUE on the request queue (the driver has no get_multiple), so the device
 * answers each read from its model, not from a cache in the guest.
 *
 *   rr-gpio-loop roundtrip CHIP LINES   each line in turn: output 0, read; set 1, read; set 0,
 *                                       read; prints "RRQ PASS|FAIL roundtrip-line-N ..."
 *   rr-gpio-loop rate CHIP LINE N       N sets (alternating 1/0) then N gets of the held line,
 *                                       timed; prints "RRQ RATE ..." with the request count
 *
 * Exit status: 0 when every read agreed, 1 otherwise, 2 on a usage or request error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Requests LINE of the open chip as an output driving VALUE; returns the line fd or -1. */
static int request_output(int chip, unsigned line, int value)
{
	struct gpio_v2_line_request req;

	memset(&req, 0, sizeof(req));
	req.offsets[0] = line;
	req.num_lines = 1;
	strcpy(req.consumer, "rr-gpio-loop");
	req.config.flags = GPIO_V2_LINE_FLAG_OUTPUT;
	req.config.num_attrs = 1;
	req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
	req.config.attrs[0].attr.values = value ? 1 : 0;
	req.config.attrs[0].mask = 1;
	if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0)
		return -1;
	return req.fd;
}

static int set_value(int fd, int value)
{
	struct gpio_v2_line_values v = { .bits = value ? 1 : 0, .mask = 1 };

	return ioctl(fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &v);
}

/* The line's level (0 or 1), or -1 with errno set. */
static int get_value(int fd)
{
	struct gpio_v2_line_values v = { .bits = 0, .mask = 1 };

	if (ioctl(fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0)
		return -1;
	return (int)(v.bits & 1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int roundtrip(int chip, unsigned lines)
{
	static const int pattern[] = { 0, 1, 0 };
	int failed = 0;

	for (unsigned line = 0; line < lines; line++) {
		char got[16] = "";
		int ok = 1;
		int fd = request_output(chip, line, 0);

		if (fd < 0) {
			printf("RRQ FAIL roundtrip-line-%u: request as output: %s\n", line, strerror(errno));
			failed = 1;
			continue;
		}
		for (unsigned i = 0; i < sizeof(pattern) / sizeof(pattern[0]); i++) {
			int v;

			if (i > 0 && set_value(fd, pattern[i]) < 0) {
				ok = 0;
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "E");
				continue;
			}
			v = get_value(fd);
			ok &= v == pattern[i];
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%c", v < 0 ? 'E' : '0' + v);
		}
		close(fd);
		printf("RRQ %s roundtrip-line-%u: set 010, read %s\n", ok ? "PASS" : "FAIL", line, got);
		failed |= !ok;
	}
	return failed;
}

static int rate(int chip, unsigned line, long n)
{
	long mismatches = 0, errors = 0;
	double t0, t1, t2;
	int last = 0;
	int fd = request_output(chip, line, 0);

	if (fd < 0) {
		printf("RRQ FAIL rate: request line %u as output: %s\n", line, strerror(errno));
		return 2;
	}
	t0 = now();
	for (long i = 0; i < n; i++) {
		last = (int)(i & 1) ^ 1;
		errors += set_value(fd, last) < 0;
	}
	t1 = now();
	for (long i = 0; i < n; i++) {
		int v = get_value(fd);

		errors += v < 0;
		mismatches += v >= 0 && v != last;
	}
	t2 = now();
	close(fd);
	/* requests: n SET_VALUE + n GET_VALUE on the request queue. */
	printf("RRQ RATE line=%u sets=%ld set_s=%.3f sets_per_s=%.0f gets=%ld get_s=%.3f gets_per_s=%.0f "
	       "requests=%ld errors=%ld mismatches=%ld\n",
	       line, n, t1 - t0, n / (t1 - t0), n, t2 - t1, n / (t2 - t1), 2 * n, errors, mismatches);
	return errors || mismatches;
}

int main(int argc, char **argv)
{
	int chip, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4 || (strcmp(argv[1], "roundtrip") && strcmp(argv[1], "rate")) ||
	    (!strcmp(argv[1], "rate") && argc < 5)) {
		fprintf(stderr, "usage: %s roundtrip CHIP LINES | rate CHIP LINE N\n", argv[0]);
		return 2;
	}
	chip = open(argv[2], O_RDWR | O_CLOEXEC);
	if (chip < 0) {
		printf("RRQ FAIL %s: open %s: %s\n", argv[1], argv[2], strerror(errno));
		return 2;
	}
	if (!strcmp(argv[1], "roundtrip"))
		rc = roundtrip(chip, (unsigned)strtoul(argv[3], NULL, 0));
	else
		rc = rate(chip, (unsigned)strtoul(argv[3], NULL, 0), strtol(argv[4], NULL, 0));
	close(chip);
	return rc;
}
