// daxmmap FILE: DAX mmap check for the zuf guest test.
// Maps FILE with MAP_SHARED_VALIDATE | MAP_SYNC (only a DAX mapping accepts MAP_SYNC), writes a
// pattern through the mapping, msyncs, unmaps, reads it back with read(2), and checks that
// /proc/self/pagemap shows the mapped pages as present; then copies with write(2) and read(2)
// between a file and mappings of another on the same mount. Exit 0 on success.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define LEN (64 * 1024)

/* Through a mapping of @fd, write every 512th byte of @len: pattern @k, or zeros. */
static int fill_mapped(int fd, size_t len, int k, int zeros)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < len; i += 512)
		p[i] = zeros ? 0 : (char)(i / 512 + k);
	return munmap(p, len);
}

/*
 * write(2) from a fresh mapping of a file on the same mount, and read(2) into one: the
 * kernel faults the application's buffer in (through the server) around the call it makes
 * for the data, for bounced (4 KiB) and mapped (1 MiB) sizes alike; neither may hang.
 */
static int copy_through_mappings(int src_fd, const char *path)
{
	static const size_t sizes[] = { 4096, 1 << 20 };
	char name[4096];

	snprintf(name, sizeof(name), "%s.copy", path);
	for (unsigned int k = 0; k < 2; k++) {
		size_t len = sizes[k];
		int dst = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);

		if (dst < 0 || ftruncate(src_fd, len) != 0 || ftruncate(dst, len) != 0) {
			perror("open/ftruncate copy");
			return 1;
		}
		if (fill_mapped(src_fd, len, k, 0) != 0)
			return 1;
		/* a fresh mapping: its pages fault in during the write */
		char *src = mmap(NULL, len, PROT_READ, MAP_SHARED, src_fd, 0);
		if (src == MAP_FAILED || pwrite(dst, src, len, 0) != (ssize_t)len) {
			perror("pwrite from a mapping");
			return 1;
		}
		if (fill_mapped(src_fd, len, k, 1) != 0)
			return 1;
		char *back = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, src_fd, 0);
		/* read(2) into a fresh mapping of the (now zeroed) source */
		if (back == MAP_FAILED || pread(dst, back, len, 0) != (ssize_t)len) {
			perror("pread into a mapping");
			return 1;
		}
		for (size_t i = 0; i < len; i += 512) {
			if (back[i] != (char)(i / 512 + k)) {
				fprintf(stderr, "copy of %zu bytes through mappings: byte %zu differs\n", len, i);
				return 1;
			}
		}
		munmap(src, len);
		munmap(back, len);
		close(dst);
	}
	unlink(name);
	printf("daxmmap: write(2) from and read(2) into mappings of the same mount, 4 KiB and 1 MiB: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: daxmmap FILE\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
	if (fd < 0 || ftruncate(fd, LEN) != 0) {
		perror("open/ftruncate");
		return 1;
	}
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmap MAP_SYNC: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < LEN; i++)
		p[i] = (char)(i * 7 + 3);
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int present = 0;
	for (int pg = 0; pm >= 0 && pg < LEN / 4096; pg++) {
		uint64_t e = 0;
		off_t off = (off_t)(((uintptr_t)p / 4096) + pg) * 8;
		if (pread(pm, &e, 8, off) == 8 && (e >> 63))
			present++;
	}
	if (msync(p, LEN, MS_SYNC) != 0 || munmap(p, LEN) != 0) {
		perror("msync/munmap");
		return 1;
	}
	char *buf = malloc(LEN);
	if (pread(fd, buf, LEN, 0) != LEN) {
		perror("pread");
		return 1;
	}
	for (int i = 0; i < LEN; i++) {
		if (buf[i] != (char)(i * 7 + 3)) {
			fprintf(stderr, "byte %d: got %d after read()\n", i, buf[i]);
			return 1;
		}
	}
	if (present != LEN / 4096) {
		fprintf(stderr, "only %d/%d pages present in pagemap\n", present, LEN / 4096);
		return 1;
	}
	printf("daxmmap: MAP_SYNC accepted, %d/%d pages present in pagemap, %d bytes read back\n",
	       present, LEN / 4096, LEN);
	return copy_through_mappings(fd, argv[1]);
}
