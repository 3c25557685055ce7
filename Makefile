# zpmfs: the front door.
#
#   make mount    install what is needed, build, install, format $(IMAGE) on first use and
#                 mount it at $(MNT): through zuf.ko (with `zus serve`) when IMAGE is a pmem
#                 block device and the module loads, else over FUSE
#   make umount   unmount $(MNT)
#   make test     build and run every test (what CI runs), with the quick crash and fuzz tiers
#   make crash-test  the crash-consistency suite (every pair of operations); crash-test-full: longer
#   make test-fuse-channels  the integration tests over FUSE over io_uring, then over /dev/fuse
#   make bench    benchmarks side by side (bench-quick: the same in under 10 minutes)
#   make fuzz     the image fuzzers, FUZZ_SECONDS each (fuzz-quick: a short run for CI)
#
# Override on the command line: make mount IMAGE=/dev/pmem0 MNT=/mnt/pm SIZE=4G

IMAGE     ?= /dev/shm/zpmfs.img
MNT       ?= /mnt/zpmfs
SIZE      ?= 1G

PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
# mount(8) runs /sbin/mount.<type> for `mount -t fuse.zpmfs`.
HELPERDIR ?= /sbin
CONFDIR   ?= /etc/zpmfs
CARGO     ?= cargo
RELEASE   := target/release

# What the tests use: attr (getfattr/setfattr), sqlite3, git, build-essential (cc, make), tar,
# e2fsprogs (mkfs.ext4), util-linux (mount, umount, mkswap); fuse3 for the fusermount3 and
# mount.fuse3 that FUSE users expect (zus itself mounts without them); fio and python3 for
# make bench.
DEPS      := fuse3 attr sqlite3 git build-essential tar e2fsprogs util-linux coreutils fio python3

SUDO      := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
SHELL     := /bin/bash

.PHONY: help build install deps mount umount test test-fuse-channels crash-test crash-test-full

help:
	@sed -n '3,12p' Makefile | sed 's/^# \{0,1\}//'

build:
	$(CARGO) build --release --workspace

# Cargo cannot give a binary a name with a dot: install renames mkfs-zpmfs and mount_fuse_zpmfs.
# mount(8) runs its helper with a minimal PATH (no /usr/local/sbin), and the helper runs the zus
# beside its own (resolved) path: so the helper lives beside zus, and /sbin has a symlink to it.
install: build
	$(SUDO) install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(HELPERDIR) $(DESTDIR)$(CONFDIR)
	$(SUDO) install -m 0755 $(RELEASE)/mkfs-zpmfs $(DESTDIR)$(SBINDIR)/mkfs.zpmfs
	$(SUDO) install -m 0755 $(RELEASE)/fsck-zpmfs $(DESTDIR)$(SBINDIR)/fsck.zpmfs
	$(SUDO) install -m 0755 $(RELEASE)/zus $(DESTDIR)$(SBINDIR)/zus
	$(SUDO) install -m 0755 $(RELEASE)/mount_fuse_zpmfs $(DESTDIR)$(SBINDIR)/mount.fuse.zpmfs
	@if [ "$(SBINDIR)" != "$(HELPERDIR)" ]; then \
		echo "ln -sf $(SBINDIR)/mount.fuse.zpmfs $(DESTDIR)$(HELPERDIR)/mount.fuse.zpmfs"; \
		$(SUDO) ln -sf $(SBINDIR)/mount.fuse.zpmfs $(DESTDIR)$(HELPERDIR)/mount.fuse.zpmfs; \
	fi
	@if [ -e $(DESTDIR)$(CONFDIR)/zus.toml ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/zus.toml"; \
	else \
		$(SUDO) install -m 0644 configs/zus.toml $(DESTDIR)$(CONFDIR)/zus.toml; \
	fi

# Installs only what is missing, so it is quick on a machine that has everything.
deps:
	@missing=""; \
	for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	else \
		echo "deps: all installed ($(DEPS))"; \
	fi
	@command -v $(CARGO) >/dev/null || { \
		echo "cargo not found: install a Rust toolchain (rustup, or apt-get install cargo on a recent release)"; \
		exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

mount: deps install
	@set -e; \
	mkdir -p $(MNT); \
	if [ ! -e $(IMAGE) ]; then \
		case "$(IMAGE)" in /dev/shm/*) ;; /dev/*) echo "$(IMAGE) does not exist"; exit 1 ;; esac; \
		$(SUDO) $(SBINDIR)/mkfs.zpmfs -q -s $(SIZE) $(IMAGE); \
		echo "Formatted $(IMAGE): a new $(SIZE) zpmfs image"; \
	fi; \
	transport=FUSE; \
	if [ -b $(IMAGE) ] && { [ -e /dev/zuf ] || { $(MAKE) -s -C kernel >/dev/null 2>&1 && \
			$(SUDO) insmod kernel/zuf.ko 2>/dev/null; }; }; then transport=zuf.ko; fi; \
	if mountpoint -q $(MNT); then \
		what="$$(findmnt -n -o SOURCE,FSTYPE --mountpoint $(MNT) | tail -1)"; \
		case "$$what" in \
			"$(IMAGE) fuse.zpmfs"|"$(IMAGE) zpmfs") echo "$(MNT) was already mounted" ;; \
			*) echo "$(MNT) is already in use: $$what is mounted there"; exit 1 ;; \
		esac; \
	elif [ $$transport = zuf.ko ]; then \
		grep -qw zpmfs /proc/filesystems || { $(SUDO) sh -c '$(SBINDIR)/zus serve >>/var/log/zus.log 2>&1 &'; \
			for i in $$(seq 50); do grep -qw zpmfs /proc/filesystems && break; sleep 0.1; done; }; \
		$(SUDO) mount -t zpmfs $(IMAGE) $(MNT); \
	else \
		$(SUDO) mount -t fuse.zpmfs $(IMAGE) $(MNT); \
	fi; \
	case "$(IMAGE)" in \
		/dev/pmem*|/dev/dax*) kind="persistent memory" ;; \
		*) if [ "$$(stat -f -c %T $(IMAGE))" = tmpfs ]; then kind="DRAM-emulated PM"; \
		   else kind="an image file, msync'd"; fi ;; \
	esac; \
	echo "zpmfs mounted at $(MNT) over $$transport (image $(IMAGE), $$kind)"; \
	echo "Unmount with: make umount   (or: umount $(MNT))"

umount:
	@if mountpoint -q $(MNT); then \
		$(SUDO) umount $(MNT) && echo "Unmounted $(MNT)"; \
	else \
		echo "$(MNT) is not mounted"; \
	fi

# The integration tests run the binaries cargo built for the test profile: build them first.
# nextest runs each test in its own process; it does not run doctests, so those run after.
test:
	$(CARGO) build --workspace --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "$(CARGO) nextest run --workspace"; \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		echo "$(CARGO) test --workspace (cargo-nextest not installed)"; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi
	$(CARGO) test --workspace --doc
	$(CARGO) run --release -q -p zpmfs-crash -- --quick
	$(MAKE) fuzz-quick

# The integration tests (real mounts) once per FUSE channel: the rings (needs Linux 6.14+ with
# /sys/module/fuse/parameters/enable_uring=Y, which the tests set when root), then /dev/fuse.
# `make test` mounts with the default, auto: the rings where the kernel offers them.
test-fuse-channels:
	$(CARGO) build --workspace --bins
	ZPMFS_FUSE_CHANNEL=uring $(CARGO) nextest run -p zpmfs-tests --no-fail-fast
	ZPMFS_FUSE_CHANNEL=dev $(CARGO) nextest run -p zpmfs-tests --no-fail-fast

# The crash-consistency suite alone. crash-test: every single operation and every pair over the
# seeded tree (each in-flight store alone), 50 random sequences of 6. crash-test-full: pairs of
# in-flight stores too, 200 random sequences of 8, and a crash during every 5th recovery.
CRASH_SEED ?= 1
crash-test:
	$(CARGO) run --release -q -p zpmfs-crash -- --standard --seed $(CRASH_SEED)

crash-test-full:
	$(CARGO) run --release -q -p zpmfs-crash -- --full --seed $(CRASH_SEED)

# vm-test: the guest tests (tests/vm/jobs/*.sh), each in a qemu guest booted from Debian's cloud
# kernel with emulated NVDIMMs (software emulation, no KVM). Installs what it needs (root), caches
# the guest under /var/tmp/zpmfs-vm; last line `N passed, M failed`. See docs/VM-TESTING.md.
.PHONY: vm-test
vm-test: build
	$(SUDO) tests/vm/setup-host.sh
	$(MAKE) -C kernel
	$(MAKE) -C kernel test
	cc -static -O2 -Wall -o tests/vm/progs/daxmmap tests/vm/progs/daxmmap.c
	cc -static -O2 -Wall -o tests/vm/progs/fhandle tests/vm/progs/fhandle.c
	cc -static -O2 -Wall -o tests/vm/progs/rename tests/vm/progs/rename.c
	cc -static -O2 -Wall -pthread -o tests/vm/progs/cowrace tests/vm/progs/cowrace.c
	$(SUDO) tests/vm/run-all.sh

# bench: zpmfs in-process, over FUSE, the persistence floor, a null FUSE server and tmpfs side by
# side (bench/run.sh; docs/BENCHMARKS.md). Results in bench/results/<date-time>/ and
# bench/results/latest. bench-quick: shorter runs, fewer files (under 10 minutes).
.PHONY: bench bench-quick
bench: deps build
	$(SUDO) bench/run.sh --full

bench-quick: deps build
	$(SUDO) bench/run.sh --quick

# kill-test: zus killed with SIGKILL under a mixed load KILL_CYCLES times in a row, over FUSE;
# every completed operation must survive each recovery (tests/tests/restarts.rs).
KILL_CYCLES ?= 200
.PHONY: kill-test
kill-test:
	$(CARGO) build --workspace --bins
	ZPMFS_KILL_CYCLES=$(KILL_CYCLES) $(CARGO) test -p zpmfs-tests --test restarts -- --nocapture

# stress: the concurrency stress tests side by side for STRESS_SECS seconds each (release build):
# pmfs/tests/stress.rs in-process and tests/tests/stress.rs over FUSE. Each prints the operations
# it did and checks the tree against its model, after a crash too, and fsck. docs/RELIABILITY.md.
STRESS_SECS ?= 600
.PHONY: stress
stress:
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --release -p pmfs -p zpmfs-tests --test stress --no-run
	@export ZPMFS_STRESS_SECS=$(STRESS_SECS); \
	$(CARGO) test --release -q -p pmfs --test stress -- --nocapture & lib=$$!; \
	$(CARGO) test --release -q -p zpmfs-tests --test stress -- --nocapture & fuse=$$!; \
	wait $$lib; r1=$$?; wait $$fuse; r2=$$?; \
	echo "stress: in-process $$([ $$r1 = 0 ] && echo passed || echo FAILED)," \
		"over FUSE $$([ $$r2 = 0 ] && echo passed || echo FAILED)"; \
	[ $$r1 = 0 ] && [ $$r2 = 0 ]

# fuzz: the image fuzzers (fuzz/, docs/FUZZING.md), each for FUZZ_SECONDS, one at a time: mount,
# recovery, fsck, log replay, directory index. Stable toolchain, cargo-fuzz (make deps). Last line
# `N passed, M failed`. fuzz-quick: 13 s each, about 80 s in all (the fuzz crate's build on top).
FUZZ_SECONDS ?= 300
.PHONY: fuzz fuzz-quick
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-quick:
	fuzz/run.sh 13
