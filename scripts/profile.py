#!/usr/bin/env python3
"""Where a benchmark's instructions go: each executed guest instruction of
one measured phase, attributed to its PD (or the kernel) and function.

Boot a benchmark image with QEMU's translation and execution log, e.g.

    DISKS=build/bench/disk0.img scripts/qemu.sh build/bench/blk-filter1.elf \\
        -d in_asm,exec,nochain -D /tmp/trace.log

(`make bench` builds the images: profile right after it, while the
programs in target/ are the ones in the image, or their blocks show as
`?`; a run logs some hundred MB), then

    scripts/profile.py /tmp/trace.log 5 2048 blk_bench virtio_blk blk_server filter_passthrough

The phase runs from the client's START-th read of the retired-instruction
counter (`mrs pmevcntr0_el0`) to the next: the benchmark reads it twice a
phase (1 and 2: reads at depth 1, 3 and 4 writes, 5 and 6 reads at depth
32, 7 and 8 writes). Figures are per request (REQUESTS, 2048 in
`make bench`). PD programs are looked up in target/aarch64-unknown-none/system
and the kernel in target/aarch64-unknown-none-softfloat/system/kernel.

Options (environment): MARK=program (the client that reads the counter,
default blk_bench), ANNOTATE=function and ANNOTATE_PD=program: instead of
the summary, each instruction of that function with how often it ran per
request.

How it works: every PD is linked at the same addresses, so a translated
block is matched to the PD whose program holds its instruction words
there; `nochain` makes QEMU log every block it executes, and `in_asm`
gives each block's instructions when it is translated (the first `Trace`
line after it names the block's host address).
"""
import bisect
import collections
import os
import re
import struct
import subprocess
import sys

PD_DIR = "target/aarch64-unknown-none/system"
KERNEL = "target/aarch64-unknown-none-softfloat/system/kernel"
KERNEL_BASE = 0x40000000


def load_elf(path):
    """The executable segments (vaddr, bytes) and sorted function symbols."""
    data = open(path, "rb").read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and p_flags & 1:
            segments.append((p_vaddr, data[p_offset:p_offset + p_filesz]))
    out = subprocess.run(["llvm-nm", "-n", "--defined-only", "-C", path], capture_output=True, text=True).stdout
    symbols = sorted((int(a, 16), name) for a, kind, name in (l.split(" ", 2) for l in out.splitlines() if l.count(" ") >= 2) if kind in "tTwW")
    return segments, symbols, [a for a, _ in symbols]


def word_at(segments, va):
    for base, data in segments:
        if base <= va < base + len(data) - 3:
            return struct.unpack_from("<I", data, va - base)[0]
    return None


def function(symbols, addresses, va):
    i = bisect.bisect_right(addresses, va) - 1
    return re.sub(r"::h[0-9a-f]{16}$", "", symbols[i][1]) if i >= 0 else "?"


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    log, start, requests, programs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    mark = os.environ.get("MARK", "blk_bench")
    annotate, annotate_pd = os.environ.get("ANNOTATE"), os.environ.get("ANNOTATE_PD", "")
    pds = {name: load_elf(os.path.join(PD_DIR, name)) for name in programs}
    kernel = load_elf(KERNEL)

    blocks = {}  # host address -> [(va, pd, function, text)]
    pending = None
    instructions, in_block = [], False
    marks, counting = 0, False
    per_function, per_pd, per_instruction = collections.Counter(), collections.Counter(), {}
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                in_block, instructions = True, []
                continue
            if in_block:
                if line.startswith("0x"):
                    fields = line.split()
                    instructions.append((int(fields[0].rstrip(":"), 16), int(fields[1], 16), " ".join(fields[2:])))
                elif not line.strip():
                    in_block, pending = False, instructions
                continue
            if not line.startswith("Trace"):
                continue
            fields = line.split()
            host, pc = fields[2], int(fields[3].strip("[]").split("/")[1], 16)
            if pending and pending[0][0] == pc:
                if pc >= KERNEL_BASE:
                    _, symbols, addresses = kernel
                    blocks[host] = [(va, "kernel", function(symbols, addresses, va), t) for va, _, t in pending]
                else:
                    owners = [n for n, (segs, _, _) in pds.items() if all(word_at(segs, va) == w for va, w, _ in pending)]
                    who = owners[0] if owners else "?"
                    _, symbols, addresses = pds.get(who, ([], [], []))
                    blocks[host] = [(va, "|".join(owners) or "?", function(symbols, addresses, va) if symbols else "?", t) for va, _, t in pending]
                pending = None
            block = blocks.get(host)
            if block is None:
                continue
            for va, who, fn, text in block:
                if mark in who and text.startswith("mrs") and "pmevcntr0_el0" in text:
                    marks += 1
                    counting = marks == start
            if counting:
                for va, who, fn, text in block:
                    per_function[(who, fn)] += 1
                    per_pd[who] += 1
                    if annotate and annotate in fn and who.startswith(annotate_pd):
                        per_instruction[va] = (per_instruction.get(va, (0, text))[0] + 1, text)
    total = sum(per_pd.values())
    print(f"{marks} counter reads; {total} instructions in the phase, {total / requests:.1f} per request")
    if annotate:
        for va in sorted(per_instruction):
            n, text = per_instruction[va]
            print(f"{n / requests:8.2f}  {va:#x}  {text}")
        return
    for who, n in per_pd.most_common():
        print(f"  {who:40s} {n / requests:9.1f}")
    print()
    for (who, fn), n in per_function.most_common(40):
        print(f"{n / requests:9.1f}  {who.split('|')[0]:20s} {fn[:110]}")


if __name__ == "__main__":
    main()
