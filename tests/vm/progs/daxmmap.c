// daxmmap FILE: DAX mmap check for the zuf guest test.
// Maps FILE with MAP_SHARED_VALIDATE | MAP_SYNC (only a DAX mapping accepts MAP_SYNC), writes a
// pattern through the mapping, msyncs, unmaps, reads it back with read(2), and checks that
// /proc/self/pagemap shows the mapped pages as present. Exit 0 on success.
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
	printf("daxmmap: MAP_SYNC accepted, %d/%d pages present in pagemap, %d bytes read back\n",
	       present, LEN / 4096, LEN);
	return present == LEN / 4096 ? 0 : 1;
}
