// cowrace DIR SECONDS: stores through a DAX mapping must never land in a block that a write(2)
// replaced and the server freed.
//
// write(2) on zpmfs puts the data in a fresh block and frees the block it replaced. One thread
// stores into page 0 of DIR/a through a shared mapping without pause, another overwrites that
// page with pwrite(2), and a third, on the same CPU as the writer (so it allocates from the
// stripe the freed blocks go back to), keeps rewriting DIR/b's pages and reading each back. A
// mapping left pointing at a freed block lets the stores show up inside DIR/b. Exit 0 when
// DIR/b only ever read back its own bytes, 1 when the stores reached it, 2 on a setup error.
// First, write(2) from a mapping of the very range it writes must neither hang nor change
// the data.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define B_PAGES 64
#define STORED 0xAA	/* through the mapping of a */
#define WRITTEN 0xBB	/* pwrite to a */
#define OWN 0x55	/* b's own bytes */

static atomic_int stop;
static atomic_long stores, writes, checks, bad_pages;
static int fd_a, fd_b;
static volatile unsigned char *map_a;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *storer(void *arg)
{
	(void)arg;
	pin(1);
	while (!atomic_load(&stop)) {
		for (int i = 0; i < PAGE; i += 64)
			map_a[i] = STORED;
		atomic_fetch_add(&stores, 1);
	}
	return NULL;
}

static void *writer(void *arg)
{
	unsigned char buf[PAGE];

	(void)arg;
	pin(0);
	memset(buf, WRITTEN, sizeof(buf));
	while (!atomic_load(&stop)) {
		if (pwrite(fd_a, buf, PAGE, 0) != PAGE) {
			perror("cowrace: pwrite a");
			exit(2);
		}
		atomic_fetch_add(&writes, 1);
	}
	return NULL;
}

static void *checker(void *arg)
{
	unsigned char own[PAGE], got[PAGE];

	(void)arg;
	pin(0);
	memset(own, OWN, sizeof(own));
	for (long k = 0; !atomic_load(&stop); k = (k + 1) % B_PAGES) {
		if (pwrite(fd_b, own, PAGE, k * PAGE) != PAGE ||
		    pread(fd_b, got, PAGE, k * PAGE) != PAGE) {
			perror("cowrace: b");
			exit(2);
		}
		atomic_fetch_add(&checks, 1);
		if (memcmp(own, got, PAGE)) {
			int n = 0, first = -1;

			for (int i = 0; i < PAGE; i++) {
				if (got[i] != OWN && first < 0)
					first = i;
				n += got[i] != OWN;
			}
			fprintf(stderr, "cowrace: page %ld of b holds %d foreign bytes (0x%02x at %d)\n",
				k, n, got[first], first);
			atomic_fetch_add(&bad_pages, 1);
		}
	}
	return NULL;
}

/* Create (or empty) DIR/NAME for reading and writing; exit 2 when that fails. */
static int open_new(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0) {
		perror("cowrace: open");
		exit(2);
	}
	return fd;
}

/* A shared writable mapping of the first @len bytes of @fd; exit 2 when that fails. */
static unsigned char *map_shared(int fd, size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED) {
		perror("cowrace: mmap");
		exit(2);
	}
	return m;
}

/*
 * write(2) from a mapping of the very range written, bounced (4 KiB) and pinned (128 KiB):
 * the write unmaps that range before the server runs, so its source must be faulted in again
 * outside the lock. Returns 0 when both wrote what the mapping held.
 */
static int self_write(const char *dir)
{
	const size_t len = 128 * 1024;
	unsigned char *m, *want = malloc(len);
	char path[4096];
	int fd = open_new(dir, "self"), bad = 0;

	if (!want || ftruncate(fd, len)) {
		perror("cowrace: self");
		return 2;
	}
	m = map_shared(fd, len);
	for (size_t i = 0; i < len; i++)
		m[i] = want[i] = (unsigned char)(i * 7 + i / 4096);
	if (pwrite(fd, m, 4096, 0) != 4096 || pwrite(fd, m, len, 0) != (ssize_t)len) {
		perror("cowrace: pwrite from its own mapping");
		return 1;
	}
	if (memcmp(m, want, len))
		bad = 1;
	for (size_t i = 0; i < len && !bad; i += 4096) {
		unsigned char got[4096];

		if (pread(fd, got, 4096, i) != 4096 || memcmp(got, want + i, 4096))
			bad = 1;
	}
	munmap(m, len);
	close(fd);
	snprintf(path, sizeof(path), "%s/self", dir);
	unlink(path);
	free(want);
	if (bad)
		fprintf(stderr, "cowrace: a write from its own mapping changed the data\n");
	else
		printf("cowrace: writes from a mapping of their own range (4 KiB, 128 KiB) kept the data\n");
	return bad;
}

int main(int argc, char **argv)
{
	unsigned char page[PAGE];
	pthread_t t[3];
	int rc;

	if (argc != 3 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: cowrace DIR SECONDS\n");
		return 2;
	}
	rc = self_write(argv[1]);
	if (rc)
		return rc;
	fd_a = open_new(argv[1], "a");
	fd_b = open_new(argv[1], "b");
	memset(page, WRITTEN, sizeof(page));
	if (pwrite(fd_a, page, PAGE, 0) != PAGE) {
		perror("cowrace: pwrite");
		return 2;
	}
	map_a = map_shared(fd_a, PAGE);
	pthread_create(&t[0], NULL, storer, NULL);
	pthread_create(&t[1], NULL, writer, NULL);
	pthread_create(&t[2], NULL, checker, NULL);
	sleep(atoi(argv[2]));
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("cowrace: %ld store rounds, %ld writes, %ld checked pages, %ld with foreign bytes\n",
	       atomic_load(&stores), atomic_load(&writes), atomic_load(&checks),
	       atomic_load(&bad_pages));
	return atomic_load(&bad_pages) ? 1 : 0;
}
