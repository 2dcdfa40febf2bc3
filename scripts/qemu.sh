#!/usr/bin/env bash
# Boot a Strata image on QEMU's virt machine; extra arguments go to QEMU.
# QEMU's exit status is the system's (the kernel powers off through
# semihosting with the status a PD asked for).
#
# Two virtio-blk disks are attached, modern transport: the images named in
# $DISKS (default build/disk0.img build/disk1.img). The first lands in
# virtio-mmio slot 31, the second in slot 30. A missing image is made:
# build/disk0.img and build/disk1.img by mkdisk.sh (64 MiB with the MBR the
# default system's partition clients need), any other blank and sparse,
# e.g. the destination of blk_dump in examples/content-disk.xml: 1 GiB, or
# 1/16 more than the largest image before it if that is larger (a copy of
# the content disk of a large application disk fits).
# An entry `blkdebug:RULES:IMAGE` puts QEMU's error injection (a blkdebug
# rules file, its path without a colon) between the device and the image.
# An entry `blockdev:NODE` attaches the block node NODE that the extra
# arguments build with -blockdev (for a stack of filters the entries above
# cannot say).
#
# The guest's clock counts instructions (-icount shift=0: one per
# nanosecond), so a filter's call budget is spent by the filter's own work,
# never by the host descheduling QEMU; sleep=off moves the clock straight
# to the next deadline when the guest idles.
set -euo pipefail
cd "$(dirname "$0")/.."
image=$(realpath "$1")
shift
defaults=" $(realpath -m build/disk0.img) $(realpath -m build/disk1.img) "
read -r -a disks <<<"${DISKS:-build/disk0.img build/disk1.img}"
drives=()
largest=0
for i in "${!disks[@]}"; do
    case ${disks[$i]} in
    blockdev:*)
        drives+=(-device "virtio-blk-device,drive=${disks[$i]#blockdev:},serial=disk$i")
        continue
        ;;
    blkdebug:*) rest=${disks[$i]#blkdebug:} file=${rest#*:} ;;
    *) file=${disks[$i]} ;;
    esac
    if [ ! -f "$file" ]; then
        if [[ $defaults == *" $(realpath -m "$file") "* ]]; then
            scripts/mkdisk.sh "$file"
        else
            mkdir -p "$(dirname "$file")"
            size=$((1 << 30))
            [ $((largest + largest / 16)) -gt $size ] && size=$(((largest + largest / 16 + 4095) / 4096 * 4096))
            truncate -s $size "$file"
        fi
    fi
    this=$(stat -L -c %s "$file")
    [ "$this" -gt $largest ] && largest=$this
    # A comma in a QEMU option value is written twice.
    drives+=(-drive "file=${disks[$i]//,/,,},if=none,format=raw,id=d$i" -device "virtio-blk-device,drive=d$i,serial=disk$i")
done
exec qemu-system-aarch64 -machine virt -cpu cortex-a53 -m 512M -nographic \
    -semihosting -no-reboot -global virtio-mmio.force-legacy=false \
    -icount shift=0,sleep=off "${drives[@]}" -kernel "$image" "$@"
