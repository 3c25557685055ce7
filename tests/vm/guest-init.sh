#!/bin/sh
# The guest's init (PID 1), packed by build-guest.sh as /init of the initramfs.
# POSIX sh (busybox ash): bash may not be there.
#
# Stage 1 (initramfs): mount proc/sys/dev. With zpmfs.root=/dev/vda on the kernel command line
# (run-guest.sh --rootfs), mount that Debian root, copy this script and the --extra files into
# it, and switch_root to it to run stage 2 there; otherwise run stage 2 in the initramfs.
# Stage 2: load qemu_fw_cfg and the NVDIMM modules, make every namespace fsdax, run the job
# from fw_cfg with its output on the second serial port (/dev/ttyS1), write `JOB-EXIT <n>`,
# power off.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() {
	t="$(cut -d' ' -f1 /proc/uptime 2>/dev/null || true)"
	echo "zpmfs-init [$t]: $*" >/dev/console 2>/dev/null || echo "zpmfs-init: $*"
}

# qemu exits on power-off (and on reboot: run-guest.sh passes -no-reboot).
power_off() {
	busybox poweroff -f 2>/dev/null || poweroff -f 2>/dev/null || reboot -f 2>/dev/null ||
		echo o >/proc/sysrq-trigger
}

die() {
	log "FATAL: $*"
	if [ -c /dev/ttyS1 ]; then echo "zpmfs-init: FATAL: $*" >/dev/ttyS1; fi
	sync
	power_off
	sleep 5
	exit 1
}

is_mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }

mount_basics() {
	mkdir -p /proc /sys /dev /tmp /run /mnt
	is_mounted /proc || mount -t proc proc /proc
	is_mounted /sys || mount -t sysfs sysfs /sys
	is_mounted /dev || mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm
	is_mounted /dev/pts || mount -t devpts devpts /dev/pts 2>/dev/null || true
	is_mounted /dev/shm || mount -t tmpfs tmpfs /dev/shm 2>/dev/null || true
	is_mounted /tmp || mount -t tmpfs tmpfs /tmp 2>/dev/null || true
	is_mounted /run || mount -t tmpfs tmpfs /run 2>/dev/null || true
	[ -e /sys/kernel/debug ] && { is_mounted /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true; }
}

cmdline_arg() { # cmdline_arg NAME -> value of NAME= on the kernel command line
	# shellcheck disable=SC2013  # the command line is one line of words
	for a in $(cat /proc/cmdline); do
		case "$a" in "$1="*) echo "${a#*=}"; return 0 ;; esac
	done
	return 1
}

stage1() {
	mount_basics
	root="$(cmdline_arg zpmfs.root || true)"
	if [ -z "$root" ]; then
		stage2
		return
	fi
	/sbin/modprobe virtio_pci || die "modprobe virtio_pci failed"
	/sbin/modprobe virtio_blk || die "modprobe virtio_blk failed"
	i=0
	while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -b "$root" ] || die "root device $root did not appear"
	mkdir -p /newroot
	mount -t ext4 "$root" /newroot || die "cannot mount $root"
	cp /init /newroot/zpmfs-init
	chmod 755 /newroot/zpmfs-init
	# --extra files packed into the initramfs at boot: listed in /zpmfs-extras.list.
	if [ -f /zpmfs-extras.list ]; then
		while IFS= read -r p; do
			[ -n "$p" ] || continue
			mkdir -p "/newroot$(dirname "$p")"
			rm -rf "/newroot$p"
			cp -a "$p" "/newroot$p" || die "cannot copy extra $p into the root"
		done </zpmfs-extras.list
		cp /zpmfs-extras.list /newroot/zpmfs-extras.list
	fi
	for m in dev proc sys; do
		mkdir -p "/newroot/$m"
		mount --move "/$m" "/newroot/$m"
	done
	# shellcheck disable=SC2093  # die only runs when exec itself fails
	exec switch_root /newroot /zpmfs-init stage2
	die "switch_root failed"
}

load_modules() {
	# Order matters: libnvdimm before nd_btt/nd_pmem, nfit last (it registers the bus
	# whose regions the drivers above then claim).
	for m in qemu_fw_cfg libnvdimm nd_btt nd_pmem nfit dax_pmem; do
		/sbin/modprobe "$m" 2>/dev/null || log "modprobe $m failed"
	done
}

make_fsdax() {
	# Namespaces appear asynchronously after nfit binds: wait for the ones qemu gave us.
	want="$(cmdline_arg zpmfs.nvdimms || echo 0)"
	i=0
	while :; do
		n=0
		for ns in /sys/bus/nd/devices/namespace*.0; do
			[ -e "$ns" ] && n=$((n + 1))
		done
		[ "$n" -ge "$want" ] && break
		[ $i -ge 200 ] && { log "only $n of $want namespaces appeared"; break; }
		sleep 0.1
		i=$((i + 1))
	done
	for ns in /sys/bus/nd/devices/namespace*.0; do
		[ -e "$ns" ] || continue
		name="${ns##*/}"
		if ndctl list -n "$name" 2>/dev/null | grep -q '"mode":"fsdax"'; then
			continue # already fsdax (an image kept from an earlier boot)
		fi
		ndctl create-namespace -f -e "$name" --mode=fsdax >/dev/null ||
			log "ndctl create-namespace -e $name --mode=fsdax failed"
	done
	# /dev/pmemN nodes come from devtmpfs (no udev): wait for them.
	for ns in /sys/bus/nd/devices/namespace*.0; do
		[ -e "$ns" ] || continue
		blk=""
		for b in "$ns"/block/*; do [ -e "$b" ] && blk="${b##*/}"; done
		[ -n "$blk" ] || continue
		i=0
		while [ ! -b "/dev/$blk" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	done
}

stage2() {
	mount_basics
	hostname zpmfs-guest 2>/dev/null || true
	# fstests' lock tests (generic/131's locktest) talk to their server over localhost.
	busybox ip link set lo up 2>/dev/null || ip link set lo up 2>/dev/null || true
	grep -qsw localhost /etc/hosts || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >>/etc/hosts
	# Modules passed with --extra under /lib/modules: make modprobe find them.
	if [ -f /zpmfs-extras.list ] && grep -q '^/lib/modules/.*\.ko' /zpmfs-extras.list; then
		/sbin/depmod -a 2>/dev/null || log "depmod -a failed"
	fi
	log "stage 2: loading modules"
	load_modules
	make_fsdax

	out=/dev/ttyS1
	[ -c "$out" ] || die "no second serial port $out"
	stty -F "$out" raw -echo 2>/dev/null || true

	name=zpmfs
	raw="/sys/firmware/qemu_fw_cfg/by_name/opt/$name/job/raw"
	[ -r "$raw" ] || die "no job at $raw"
	cat "$raw" >/zpmfs-job.sh
	chmod 755 /zpmfs-job.sh

	log "running job"
	cd /
	export HOME=/root TERM=dumb
	mkdir -p /root
	interp="$(head -n 1 /zpmfs-job.sh | sed -n 's/^#! *\([^ ]*\).*/\1/p')"
	if [ -n "$interp" ] && [ -x "$interp" ]; then
		/zpmfs-job.sh >"$out" 2>&1 </dev/null
	else
		sh /zpmfs-job.sh >"$out" 2>&1 </dev/null
	fi
	rc=$?
	log "job exited with $rc"
	echo "JOB-EXIT $rc" >"$out"
	sync
	power_off
	sleep 10
}

case "${1:-}" in
stage2) stage2 ;;
*) stage1 ;;
esac
die "init fell through"
