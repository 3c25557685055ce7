// SPDX-License-Identifier: GPL-2.0
/*
 * rename FROM TO [UID]: one rename(2), as UID (and its gid) when given. Nothing else touches
 * TO first (busybox mv would stat it, and so look it up): the guest jobs use it to rename onto
 * names the kernel has not looked up. Prints the error on failure and exits 1. Built static
 * for the busybox guest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: rename FROM TO [UID]\n");
		return 2;
	}
	if (argc == 4) {
		unsigned id = (unsigned)strtoul(argv[3], NULL, 10);

		if (setgid(id) || setuid(id)) {
			fprintf(stderr, "rename: cannot become %u: %s\n", id, strerror(errno));
			return 2;
		}
	}
	if (rename(argv[1], argv[2])) {
		fprintf(stderr, "rename: %s -> %s: %s\n", argv[1], argv[2], strerror(errno));
		return 1;
	}
	return 0;
}
