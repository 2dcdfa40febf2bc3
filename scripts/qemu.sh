#!/usr/bin/env bash
# Boot a Strata image on QEMU's virt machine; extra arguments go to QEMU.
# QEMU's exit status is the system's (the kernel powers off through
# semihosting with the status a PD asked for).
set -euo pipefail
image=$1
shift
exec qemu-system-aarch64 -machine virt -cpu cortex-a53 -m 512M -nographic \
    -semihosting -no-reboot -kernel "$image" "$@"
