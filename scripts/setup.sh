#!/usr/bin/env bash
# Install what building and running Strata needs, once. Idempotent: it checks
# before it installs, so `make` can call it every time.
#
# - Debian's rustc-web/cargo-web (1.96) with rust-web-src: the library
#   sources -Zbuild-std needs for the bare-metal aarch64 targets;
#   rust-web-llvm + lld-22 for rust-lld;
# - qemu-system-arm for qemu-system-aarch64; graphviz for `make graph`;
#   gdb-multiarch for `make debug`;
# - tools the tests check our formats against: cryptsetup-bin and
#   qemu-utils (LUKS1 images, QEMU's luks driver), dosfstools and mtools
#   (the content disk's FAT file system);
# - the rustup toolchain "system" that rust-toolchain.toml names.
set -euo pipefail

packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 qemu-system-arm graphviz gdb-multiarch cryptsetup-bin qemu-utils dosfstools mtools)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages: ${missing[*]}; run 'make setup' as root (or install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
        echo "setup: could not install ${missing[*]}; this needs Debian 12 (bookworm) or newer with its updates" >&2
        exit 1
    fi
fi

if command -v rustup >/dev/null 2>&1; then
    if ! rustup toolchain list | grep -q '^system'; then
        rustup toolchain link system /usr
    fi
fi
