// SPDX-License-Identifier: GPL-2.0
/*
 * fhandle DIR: file handles on the filesystem mounted at DIR, as NFS export and
 * open_by_handle_at(2) use them. A file's and a directory's handle open them again, also after
 * the kernel dropped its inodes (the handle then goes to the server); a file still open after
 * unlink still opens; a handle of a file removed and closed, or one naming no inode, is
 * ESTALE. Exit status 0 when all hold. Built static for the busybox guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fails;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fhandle: FAIL: " __VA_ARGS__);         \
			fprintf(stderr, " (errno %d)\n", errno);                \
			fails++;                                                \
		}                                                               \
	} while (0)

static struct file_handle *handle_of(const char *path)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	int mnt_id;

	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, path, fh, &mnt_id, 0)) {
		fprintf(stderr, "fhandle: name_to_handle_at %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fh;
}

static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd < 0 || write(fd, "2", 1) != 1)
		fprintf(stderr, "fhandle: cannot drop caches: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Open @fh and check it reads @want (NULL: it is a directory). */
static void opens_as(int mnt, struct file_handle *fh, const char *want, const char *what)
{
	char buf[64] = "";
	int fd = open_by_handle_at(mnt, fh, want ? O_RDONLY : O_RDONLY | O_DIRECTORY);

	CHECK(fd >= 0, "open_by_handle_at of %s", what);
	if (fd < 0)
		return;
	if (want) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		CHECK(n == (ssize_t)strlen(want) && !memcmp(buf, want, n), "%s read back '%s'", what, buf);
	}
	close(fd);
}

static void stale(int mnt, struct file_handle *fh, const char *what)
{
	int fd = open_by_handle_at(mnt, fh, O_RDONLY);

	CHECK(fd < 0 && errno == ESTALE, "%s: open_by_handle_at gave %d, not ESTALE", what, fd);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	char file[512], dir[512], gone[512];
	struct file_handle *fh_file, *fh_dir, *fh_gone, *fh_junk;
	int mnt, fd, held;

	if (argc != 2) {
		fprintf(stderr, "usage: fhandle DIR\n");
		return 2;
	}
	snprintf(file, sizeof(file), "%s/fh-file", argv[1]);
	snprintf(dir, sizeof(dir), "%s/fh-dir", argv[1]);
	snprintf(gone, sizeof(gone), "%s/fh-dir/gone", argv[1]);
	mnt = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (mnt < 0 || mkdir(dir, 0755)) {
		perror("fhandle: setup");
		return 1;
	}
	fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "by handle", 9) != 9 || close(fd)) {
		perror("fhandle: write");
		return 1;
	}
	fd = open(gone, O_CREAT | O_WRONLY, 0644);
	close(fd);
	fh_file = handle_of(file);
	fh_dir = handle_of(dir);
	fh_gone = handle_of(gone);

	opens_as(mnt, fh_file, "by handle", "a file");
	drop_caches();
	opens_as(mnt, fh_file, "by handle", "a file the kernel had dropped");
	opens_as(mnt, fh_dir, NULL, "a directory the kernel had dropped");

	/* unlinked but still open: the handle still opens it */
	held = open(file, O_RDONLY);
	unlink(file);
	opens_as(mnt, fh_file, "by handle", "an unlinked file still open");
	close(held);
	unlink(gone);
	drop_caches();
	stale(mnt, fh_file, "a removed file");
	stale(mnt, fh_gone, "a removed file the kernel had dropped");

	/* another handle of the directory with an inode number no inode has */
	fh_junk = handle_of(dir);
	if (fh_junk->handle_bytes >= 8)
		memcpy(fh_junk->f_handle, "\x01\x00\x00\x00\x00\x10\x00\x00", 8);
	stale(mnt, fh_junk, "a handle naming no inode");

	rmdir(dir);
	if (fails)
		return 1;
	printf("fhandle: files and directories by handle, also after the kernel dropped them; an unlinked open file; ESTALE for removed files and unknown numbers: ok\n");
	return 0;
}
