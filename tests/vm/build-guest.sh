#!/bin/bash
# Builds the guest root that run-guest.sh boots, cached under OUTDIR (default /var/tmp/zpmfs-vm).
#
#   build-guest.sh [--initramfs] [--rootfs] [--force] [OUTDIR]
#
# --initramfs (default)  OUTDIR/initramfs.cpio.zst: busybox, bash, kmod, ndctl/daxctl,
#                        e2fsprogs and xfsprogs tools, numactl when installed, the guest kernel
#                        modules for fw_cfg/NVDIMM/DAX/virtio/xfs/fuse (with their dependencies),
#                        the host binaries named in EXTRA_BINS (space separated) with their shared
#                        libraries, the modules named in EXTRA_MODULES, and /init (guest-init.sh).
# --rootfs               also OUTDIR/rootfs.img: a debootstrapped Debian bookworm (minbase plus
#                        bash, perl, xfsprogs, fio, attr, acl, psmisc, bc, gawk, ... for fstests),
#                        an ext4 image booted read-only-snapshot by run-guest.sh --rootfs. The
#                        initramfs is always built: it is the first stage of a --rootfs boot.
#                        Needs the Debian mirror of this machine's apt sources (or MIRROR=URL).
# --force                rebuild even when the stamp says the cache is current.
#
# Each artefact is rebuilt only when its inputs change. initramfs.stamp holds a hash of this
# script, guest-init.sh, the kernel version, the versions of the Debian packages copied in, and
# the EXTRA_BINS files' contents and EXTRA_MODULES names; rootfs.stamp a hash of the kernel
# version, the package list and the code that builds it (build_rootfs, find_mirror).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want_initramfs=1
want_rootfs=0
force=0
OUTDIR=/var/tmp/zpmfs-vm
while [ $# -gt 0 ]; do
	case "$1" in
	--initramfs) want_initramfs=1 ;;
	--rootfs) want_rootfs=1 ;;
	--force) force=1 ;;
	-h | --help)
		sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "build-guest.sh: unknown option $1" >&2
		exit 2
		;;
	*) OUTDIR="$1" ;;
	esac
	shift
done

if [ "$(id -u)" -ne 0 ]; then
	echo "build-guest.sh: must run as root (reads /boot, debootstrap)" >&2
	exit 1
fi

# shellcheck disable=SC2012  # plain file names from a Debian package
KVER="${KVER:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1)}"
if [ -z "$KVER" ] || [ ! -d "/lib/modules/$KVER" ]; then
	echo "build-guest.sh: no cloud kernel installed; run tests/vm/setup-host.sh" >&2
	exit 1
fi
mkdir -p "$OUTDIR"

# Modules the harness loads, plus what a test may want; their dependencies come along.
MODULES=(qemu_fw_cfg libnvdimm nd_btt nd_pmem nfit dax_pmem device_dax virtio_pci virtio_blk
	xfs fuse loop overlay configfs)
# shellcheck disable=SC2206  # word splitting of the lists is intended
MODULES+=(${EXTRA_MODULES:-})
# Host binaries copied into the initramfs (with their libraries), when present.
BINS=(/bin/bash /bin/kmod /usr/bin/ndctl /usr/bin/daxctl
	/sbin/mke2fs /sbin/e2fsck /sbin/tune2fs /sbin/dumpe2fs /sbin/debugfs /sbin/resize2fs
	/sbin/mkfs.xfs /usr/sbin/xfs_io /sbin/xfs_repair /usr/sbin/xfs_db
	/usr/bin/numactl /usr/bin/setfattr /usr/bin/getfattr /usr/bin/setfacl /usr/bin/getfacl
	/usr/bin/chattr /usr/bin/lsattr)
# shellcheck disable=SC2206
EXTRA=(${EXTRA_BINS:-})
# Debian packages whose files go into the guest: their versions are part of the stamp.
STAMP_PKGS=(busybox-static kmod ndctl e2fsprogs xfsprogs bash numactl attr acl libc6)
ROOTFS_PKGS=(bash perl xfsprogs e2fsprogs fio attr acl psmisc bc gawk quota dbench xfsdump
	uuid-runtime kmod ndctl busybox-static util-linux procps numactl libaio1 liburing2 strace
	file python3 libcap2-bin hostname sed grep findutils coreutils diffutils tar gzip xz-utils)
ROOTFS_SIZE="${ROOTFS_SIZE:-3G}"

stamp_of() { # stamp_of KIND: the hash of every input of that artefact
	{
		echo "kind $1 kernel $KVER"
		if [ "$1" = rootfs ]; then
			# Only what the rootfs is made of: tweaks to the initramfs part or to
			# guest-init.sh (copied in at boot) do not cost a debootstrap.
			echo "packages ${ROOTFS_PKGS[*]} size $ROOTFS_SIZE"
			declare -f build_rootfs find_mirror
			return
		fi
		sha256sum "$HERE/build-guest.sh" "$HERE/guest-init.sh"
		dpkg-query -W "${STAMP_PKGS[@]}" 2>/dev/null || true
		echo "modules ${MODULES[*]}"
		local f
		for f in "${EXTRA[@]}"; do
			if [ -e "$f" ]; then sha256sum "$(readlink -f "$f")"; else echo "missing $f"; fi
		done
	} | sha256sum | cut -d' ' -f1
}

current() { # current FILE STAMPFILE KIND
	[ "$force" -eq 0 ] && [ -s "$1" ] && [ -f "$2" ] && [ "$(cat "$2")" = "$(stamp_of "$3")" ]
}

# Copy a host file to the same path under $1, following symlinks, with its shared libraries.
copy_with_libs() { # copy_with_libs ROOT FILE
	local root="$1" f="$2" lib
	mkdir -p "$root$(dirname "$f")"
	cp -L --preserve=mode "$f" "$root$f"
	# ldd prints "name => /path (addr)" or "/path (addr)"; static binaries print an error.
	while read -r lib; do
		if [ -z "$lib" ] || [ -e "$root$lib" ]; then continue; fi
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(ldd "$f" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
}

build_initramfs() {
	local out="$OUTDIR/initramfs.cpio.zst" stampf="$OUTDIR/initramfs.stamp"
	if current "$out" "$stampf" initramfs; then
		echo "build-guest: initramfs is current ($out)"
		return
	fi
	echo "build-guest: building initramfs for $KVER"
	local st
	st="$(mktemp -d /var/tmp/zpmfs-initramfs.XXXXXX)"
	# shellcheck disable=SC2064  # expand now: the trap runs after st goes out of scope
	trap "rm -rf '$st'" RETURN
	chmod 755 "$st"
	mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,lib64}
	ln -s /proc/mounts "$st/etc/mtab"

	# Real binaries first, busybox applets only where nothing else is.
	local f
	for f in "${BINS[@]}"; do
		[ -e "$f" ] && copy_with_libs "$st" "$f"
	done
	for f in "${EXTRA[@]}"; do
		if [ ! -e "$f" ]; then
			echo "build-guest: EXTRA_BINS: $f does not exist" >&2
			exit 1
		fi
		copy_with_libs "$st" "$f"
	done
	for f in modprobe insmod rmmod lsmod modinfo depmod; do
		ln -sf /bin/kmod "$st/sbin/$f"
	done
	ln -sf mke2fs "$st/sbin/mkfs.ext4"
	ln -sf mke2fs "$st/sbin/mkfs.ext2"
	ln -sf e2fsck "$st/sbin/fsck.ext4"
	cp /bin/busybox "$st/bin/busybox"
	local applet
	while read -r applet; do
		[ -e "$st/$applet" ] || [ -L "$st/$applet" ] || ln -s /bin/busybox "$st/$applet"
	done < <(/bin/busybox --list-full)
	[ -e "$st/bin/sh" ] || ln -s busybox "$st/bin/sh"
	[ -e /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$st/etc/"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$st/etc/passwd"
	printf 'root:x:0:\n' >"$st/etc/group"
	: >"$st/etc/fstab"

	# Kernel modules: each listed one with its dependencies, then depmod.
	local m line mdir="/lib/modules/$KVER"
	mkdir -p "$st$mdir"
	for m in "${MODULES[@]}"; do
		while read -r line; do
			case "$line" in
			insmod\ *)
				f="${line#insmod }"
				f="${f%% *}"
				mkdir -p "$st$(dirname "$f")"
				cp "$f" "$st$f"
				;;
			esac
		done < <(modprobe -C /dev/null -S "$KVER" -D "$m" 2>/dev/null || echo "missing module $m" >&2)
	done
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ -e "$mdir/$f" ] && cp "$mdir/$f" "$st$mdir/"
	done
	depmod -b "$st" "$KVER"

	install -m 0755 "$HERE/guest-init.sh" "$st/init"
	(cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
		zstd -q -3 -T0 >"$out.tmp"
	mv "$out.tmp" "$out"
	stamp_of initramfs >"$stampf"
	echo "build-guest: $out ($(du -h "$out" | cut -f1))"
}

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list).
find_mirror() {
	if [ -n "${MIRROR:-}" ]; then
		echo "$MIRROR"
		return
	fi
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] && cat "$f"
	done |
		sed -n 's/^URIs:[[:space:]]*\([^ ]*\).*/\1/p; s/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^ ]*\).*/\2/p' |
		grep -E '/debian/?$' | grep -v -e security -e debian-ports | head -n 1 || true
}

build_rootfs() {
	local out="$OUTDIR/rootfs.img" stampf="$OUTDIR/rootfs.stamp"
	if current "$out" "$stampf" rootfs; then
		echo "build-guest: rootfs is current ($out)"
		return
	fi
	local mirror
	mirror="$(find_mirror)"
	if [ -z "$mirror" ]; then
		echo "build-guest: no Debian mirror found in /etc/apt/sources.list*; set MIRROR=URL" >&2
		exit 1
	fi
	if ! command -v debootstrap >/dev/null; then
		echo "build-guest: debootstrap is not installed; run tests/vm/setup-host.sh" >&2
		exit 1
	fi
	if ! wget -q -T 20 -t 2 -O /dev/null "$mirror/dists/bookworm/Release"; then
		echo "build-guest: cannot reach the Debian mirror $mirror (from apt's sources): --rootfs" \
			"needs it for debootstrap. Set MIRROR=URL to another mirror, or use the initramfs." >&2
		exit 1
	fi
	echo "build-guest: debootstrapping bookworm from $mirror (takes a few minutes)"
	local dir
	dir="$(mktemp -d /var/tmp/zpmfs-rootfs.XXXXXX)"
	# shellcheck disable=SC2064
	trap "umount -R '$dir/proc' 2>/dev/null || true; rm -rf '$dir'" RETURN
	local inc
	inc="$(printf '%s,' "${ROOTFS_PKGS[@]}" | sed 's/,,*/,/g; s/,$//')"
	if ! debootstrap --variant=minbase --include="$inc" bookworm "$dir" "$mirror" \
		>"$OUTDIR/debootstrap.log" 2>&1; then
		tail -n 30 "$OUTDIR/debootstrap.log" >&2
		echo "build-guest: debootstrap failed (log: $OUTDIR/debootstrap.log)" >&2
		exit 1
	fi
	echo zpmfs-guest >"$dir/etc/hostname"
	printf '/dev/vda / ext4 defaults 0 1\n' >"$dir/etc/fstab"
	# fstests' test users.
	local u
	for u in fsgqa 123456-fsgqa fsgqa2; do
		chroot "$dir" useradd -m "$u" 2>/dev/null || true
	done
	chroot "$dir" apt-get clean
	rm -rf "$dir/var/lib/apt/lists/"* "$dir/var/cache/apt/"*.bin
	mkdir -p "$dir/lib/modules"
	cp -a "/lib/modules/$KVER" "$dir/lib/modules/"
	rm -f "$dir/lib/modules/$KVER/build" "$dir/lib/modules/$KVER/source"
	depmod -b "$dir" "$KVER"
	rm -f "$out.tmp"
	truncate -s "$ROOTFS_SIZE" "$out.tmp"
	mkfs.ext4 -q -F -L zpmfs-root -d "$dir" "$out.tmp"
	mv "$out.tmp" "$out"
	stamp_of rootfs >"$stampf"
	echo "build-guest: $out ($(du -h "$out" | cut -f1) used of $ROOTFS_SIZE)"
}

[ "$want_initramfs" -eq 1 ] || [ "$want_rootfs" -eq 1 ]
build_initramfs
if [ "$want_rootfs" -eq 1 ]; then
	build_rootfs
fi
echo "$KVER" >"$OUTDIR/kernel-version"
