#!/usr/bin/env bash
# make bench: boot each benchmark system under `-icount shift=0,sleep=off`
# (one instruction = one cycle = one nanosecond of virtual time, identical on
# every run), collect the figures the benchmark PDs print, and end with them
# in a fixed order. Figures are instructions per operation.
set -euo pipefail
cd "$(dirname "$0")/.."

tool=target/release/strata
kernel=target/aarch64-unknown-none-softfloat/system/kernel
pd_dir=target/aarch64-unknown-none/system
mkdir -p build/bench

figures=(boot_to_first_pd ppc_roundtrip_passive ppc_roundtrip_active notify_roundtrip)
declare -A value

for system in bench/*.xml; do
    name=$(basename "$system" .xml)
    image=build/bench/$name.elf
    $tool build "$system" --kernel $kernel --search-path $pd_dir -o "$image" --pmu-user >/dev/null
    log=build/bench/$name.log
    # sleep=off: QEMU may not stop on SIGTERM once idle; the systems power
    # off by themselves, and `timeout -s KILL` is the backstop.
    if ! timeout -s KILL 300 scripts/qemu.sh "$image" -icount shift=0,sleep=off >"$log" 2>&1; then
        echo "bench: $system did not finish cleanly; console in $log" >&2
        exit 1
    fi
    tr -d '\r' <"$log" | sed 's/^/  /'
    while IFS=': ' read -r key val; do
        value[$key]=$val
    done < <(tr -d '\r' <"$log" | grep -E '^[a-z0-9_]+: [0-9]+$')
done

echo
for f in "${figures[@]}"; do
    if [ -z "${value[$f]:-}" ]; then
        echo "bench: no figure for $f" >&2
        exit 1
    fi
    echo "$f: ${value[$f]}"
done
