#!/bin/bash
# Installs what the qemu guest harness needs on a Debian 12 host (run as root, no tty needed).
# Quick when everything is already there: it only asks dpkg, and runs apt-get only for what
# is missing (one `apt-get update`, then one `apt-get install`).
set -euo pipefail

# qemu-system-x86    the emulator (software emulation, TCG)
# linux-image-cloud-amd64 / linux-headers-cloud-amd64
#                    the guest kernel (6.1) and the headers zuf.ko builds against
# busybox-static     the initramfs userland
# ndctl              host binaries copied into the guest (namespace -> fsdax)
# kmod cpio          modinfo/depmod on the host, packing the initramfs
# e2fsprogs xfsprogs mkfs.ext4/mkfs.xfs copied into the guest; mkfs.ext4 -d for the rootfs image
# debootstrap        builds the --rootfs (Debian bookworm) guest root
# util-linux zstd xz-utils   losetup/mount etc.; decompressing compressed modules if any
PACKAGES=(
	qemu-system-x86
	linux-image-cloud-amd64
	linux-headers-cloud-amd64
	busybox-static
	ndctl
	kmod
	cpio
	e2fsprogs
	xfsprogs
	acl
	debootstrap
	util-linux
	zstd
	xz-utils
)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-host.sh: must run as root (apt-get install)" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "setup-host: all installed (${PACKAGES[*]})"
else
	echo "setup-host: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" </dev/null
fi

# The guest kernel must be there: the newest installed *-cloud-amd64.
# shellcheck disable=SC2012  # plain file names from a Debian package
kver="$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1)"
if [ -z "$kver" ] || [ ! -d "/lib/modules/$kver/kernel" ]; then
	echo "setup-host: no cloud kernel found under /boot and /lib/modules" >&2
	exit 1
fi
echo "setup-host: guest kernel $kver"
