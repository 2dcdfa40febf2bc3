#!/usr/bin/env bash
# Make a 64 MiB raw disk image with an MBR and two primary partitions:
#   1: sectors 2048..65535 (31 MiB), 2: sectors 65536..131071 (32 MiB),
# both 4 KiB-aligned as the storage stack needs. Usage: mkdisk.sh FILE
set -euo pipefail
# Made beside the file and renamed into place: an interrupted run leaves no
# image without its partition table (make would keep it as done).
final=$1
file=$final.part
mkdir -p "$(dirname "$final")"
rm -f "$file"
truncate -s 64M "$file"
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
entry() { # first sectors
    printf '\x00\x00\x00\x00\x83\x00\x00\x00'
    le32 "$1"
    le32 "$2"
}
{ entry 2048 63488; entry 65536 65536; } | dd of="$file" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$file" bs=1 seek=510 conv=notrunc status=none
mv -f "$file" "$final"
