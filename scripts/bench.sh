#!/usr/bin/env bash
# make bench: boot each benchmark system (scripts/qemu.sh: `-icount shift=0,sleep=off`)
# (one instruction = one cycle = one nanosecond of virtual time, identical on
# every run), collect the figures the benchmark PDs print, and end with them
# in a fixed order. Figures are instructions per operation.
#
# The kernel figures are the same on every run. The block figures depend a
# little on when the host finishes each disk request (that decides how many
# completions one interrupt carries), so each block system runs $BLK_RUNS
# times and the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

tool=target/release/strata
kernel=target/aarch64-unknown-none-softfloat/system/kernel
pd_dir=target/aarch64-unknown-none/system
mkdir -p build/bench

figures=(ppc_roundtrip_passive ppc_roundtrip_active notify_roundtrip boot_to_first_pd
    blk_read_qd1_direct blk_read_qd1_server blk_write_qd1_direct blk_write_qd1_server
    blk_read_qd32_direct blk_read_qd32_server blk_write_qd32_direct blk_write_qd32_server
    blk_read_qd1_filter1 blk_read_qd1_filter3 blk_write_qd1_filter1 blk_read_qd32_filter1 blk_read_qd32_filter3
    blk_write_qd32_filter1 blk_write_qd1_filter1_read
    blk_read_qd1_crypt blk_write_qd1_crypt blk_read_qd32_crypt blk_write_qd32_crypt
    blk_read_qd1_cache_hit blk_read_qd32_cache_hit
    blk_read_qd1_integrity blk_write_qd1_integrity blk_read_qd32_integrity blk_write_qd32_integrity
    blk_read_qd1_overlay_base blk_read_qd1_content blk_read_qd32_content)
declare -A value
runs=${BLK_RUNS:-3}
# The block benchmarks write to a disk image of their own; the encryption
# benchmark's is a LUKS1 disk as cryptsetup formats it (with few PBKDF2
# iterations: the benchmark measures requests, not opening the disk).
plain=build/bench/disk0.img
luks=build/bench/luks0.img
if [ ! -f $luks ]; then
    truncate -s 64M $luks
    printf 'bench passphrase' | cryptsetup luksFormat --type luks1 --batch-mode --cipher aes-xts-plain64 --key-size 512 \
        --hash sha256 --pbkdf-force-iterations 1000 --key-file=- $luks
fi

# The integrity benchmark's disk starts blank (the filter formats it), and
# a first run, not counted, writes the blocks the reads then check: every
# run ends with a flush, which writes the filter's MAC table.
integrity=build/bench/integrity0.img
rm -f $integrity
truncate -s 64M $integrity

# The linked clone's disk is blank before each run (its reads are of
# blocks it never wrote); the content disk's is an application disk of one
# 16 MiB file.
clone=build/bench/clone0.img
apps=build/bench/apps.img
if [ ! -f $apps ]; then
    rm -rf build/bench/apps
    mkdir -p build/bench/apps
    head -c 16M /dev/urandom >build/bench/apps/data.bin
    $tool appdisk build/bench/apps $apps >/dev/null
fi

for system in bench/*.xml; do
    name=$(basename "$system" .xml)
    image=build/bench/$name.elf
    $tool build "$system" --kernel $kernel --search-path $pd_dir -o "$image" --pmu-user >/dev/null
    n=1
    [[ $name == blk-* ]] && n=$runs
    declare -A samples=()
    if [[ $name == blk-integrity* ]]; then
        if ! DISKS=$integrity timeout -s KILL 300 scripts/qemu.sh "$image" >build/bench/$name.0.log 2>&1; then
            echo "bench: $system did not finish cleanly; console in build/bench/$name.0.log" >&2
            exit 1
        fi
    fi
    for run in $(seq "$n"); do
        log=build/bench/$name.$run.log
        # sleep=off: QEMU may not stop on SIGTERM once idle; the systems
        # power off by themselves, and `timeout -s KILL` is the backstop.
        disks=$plain
        [[ $name == blk-crypt* ]] && disks=$luks
        [[ $name == blk-integrity* ]] && disks=$integrity
        if [[ $name == blk-overlay* ]]; then
            rm -f $clone
            truncate -s 64M $clone
            disks="$clone $plain"
        fi
        [[ $name == blk-content* ]] && disks=$apps
        if ! DISKS=$disks timeout -s KILL 300 scripts/qemu.sh "$image" >"$log" 2>&1; then
            echo "bench: $system did not finish cleanly; console in $log" >&2
            exit 1
        fi
        tr -d '\r' <"$log" | sed "s/^/  [$name $run] /"
        while IFS=': ' read -r key val; do
            samples[$key]="${samples[$key]:-} $val"
        done < <(tr -d '\r' <"$log" | grep -E '^[a-z0-9_]+: [0-9]+$')
    done
    for key in "${!samples[@]}"; do
        # The median of the runs.
        read -r -a vals <<<"${samples[$key]}"
        value[$key]=$(printf '%s\n' "${vals[@]}" | sort -n | sed -n "$(((${#vals[@]} + 1) / 2))p")
    done
    unset samples
done

echo
for f in "${figures[@]}"; do
    if [ -z "${value[$f]:-}" ]; then
        echo "bench: no figure for $f" >&2
        exit 1
    fi
    echo "$f: ${value[$f]}"
done
