# Strata: `make run` boots the default system, `make test` runs every test.
# On a fresh Debian machine, as root, both install what they need first.

SYSTEM ?= system.xml
BUILD := build
IMAGE_NAME := $(basename $(notdir $(SYSTEM)))
OUT_IMAGE := $(BUILD)/$(IMAGE_NAME).elf

CARGO := RUSTC_BOOTSTRAP=1 cargo
BUILD_STD := -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem
KERNEL_TARGET := aarch64-unknown-none-softfloat
# aarch64-unknown-none without +strict-align (targets/aarch64-unknown-none.json
# says why); cargo names its output directory after the file.
PD_TARGET := aarch64-unknown-none
PD_TARGET_SPEC := $(CURDIR)/targets/$(PD_TARGET).json
KERNEL_ELF := target/$(KERNEL_TARGET)/system/kernel
PD_DIR := target/$(PD_TARGET)/system
TOOL := target/release/strata
# Every crate that builds protection domains: those under components/,
# drivers/ and filters/ with a src/bin (found by name, so a new one needs
# no edit here).
PD_CRATES := $(shell for d in components/*/ drivers/*/ filters/*/; do \
	[ -d $$d/src/bin ] && sed -n 's/^name = "\(.*\)"/\1/p' $$d/Cargo.toml | head -1; done)

QEMU := scripts/qemu.sh
# The disk images `make run` attaches, in virtio-mmio slots 31, 30, ...:
# `make run DISKS="a.img b.img"`. scripts/qemu.sh makes a missing one (64
# MiB, an MBR with two partitions) and keeps it: it holds what the system
# wrote.
DISKS ?= $(BUILD)/disk0.img $(BUILD)/disk1.img
export DISKS

.PHONY: all setup tool kernel components image run check expand verify graph appdisk test bench debug help clean

all: image

setup:
	@scripts/setup.sh

tool: setup
	@cargo build -q --release -p tool

kernel: setup
	@$(CARGO) build -q --profile system $(BUILD_STD) -Zjson-target-spec --target $(CURDIR)/targets/$(KERNEL_TARGET).json -p kernel

components: setup
	@$(CARGO) build -q --profile system $(BUILD_STD) -Zjson-target-spec --target $(PD_TARGET_SPEC) $(addprefix -p ,$(PD_CRATES))

# Build the image of $(SYSTEM) and print its path.
image: tool kernel components
	@mkdir -p $(BUILD)
	@$(TOOL) build $(SYSTEM) --kernel $(KERNEL_ELF) --search-path $(PD_DIR) -o $(OUT_IMAGE) $(TOOL_FLAGS)

# Build and boot $(SYSTEM) on $(DISKS); returns QEMU's exit status.
run: image
	@$(QEMU) $(OUT_IMAGE)

# Validate $(SYSTEM) alone: prints `ok` or the errors. (Filter programs
# are read for what they declare, so the components are built first.)
check: tool components
	@$(TOOL) check $(SYSTEM) --search-path $(PD_DIR)

# Print $(SYSTEM) with its storage declarations expanded into SDF (Microkit's
# elements, plus <lend>, <chain> and <device>, which have no Microkit form):
# the driver, the filter server, each filter PD, their regions, channels
# and lends.
expand: tool components
	@$(TOOL) expand $(SYSTEM) --search-path $(PD_DIR)

# Prove the isolation properties of $(SYSTEM): the report of what each PD
# can reach, the invariants and the declared policies; with IMAGE=file also
# read the built image back and check it grants exactly that.
verify: tool components
	@$(TOOL) verify $(SYSTEM) --search-path $(PD_DIR) $(if $(IMAGE),--image $(IMAGE) --kernel $(KERNEL_ELF))

# The system as Graphviz DOT, or rendered with FORMAT=svg (or png).
FORMAT ?= dot
graph: tool components
ifeq ($(FORMAT),dot)
	@$(TOOL) graph $(SYSTEM) --search-path $(PD_DIR)
else
	@# (Through a file, not a pipe: an error in the system stops it here.)
	@mkdir -p $(BUILD)
	@$(TOOL) graph $(SYSTEM) --search-path $(PD_DIR) > $(BUILD)/graph.dot
	@dot -T$(FORMAT) $(BUILD)/graph.dot
endif

# Build an application disk (what the dynamic content disk serves as a
# FAT volume) from a folder: make appdisk DIR=folder IMAGE=file
appdisk: tool
	@test -n "$(DIR)" -a -n "$(IMAGE)" || { echo "usage: make appdisk DIR=folder IMAGE=file" >&2; exit 2; }
	@$(TOOL) appdisk "$(DIR)" "$(IMAGE)"

# Boot with QEMU's GDB stub on :1234, waiting for the debugger.
debug: image
	@echo "QEMU waits for a debugger on :1234 (leave QEMU with Ctrl-a x). In another terminal:"
	@echo "  gdb-multiarch $(KERNEL_ELF) -ex 'target remote :1234'"
	@echo "The kernel's symbols are loaded. Every PD runs its program at the address it was linked at"
	@echo "(0x200000 up), so a PD's symbols load as they are, e.g. the filter server's:"
	@echo "  (gdb) add-symbol-file $(PD_DIR)/blk_server"
	@echo "  (gdb) break chain.rs:1322   (a file and line: there, Server::run_chains)"
	@echo "All PDs share those addresses: break on a PD's function, then check which PD stopped"
	@echo "(print 'kernel::arch::KERNEL'.current, or the PD's own state)."
	@$(QEMU) $(OUT_IMAGE) -s -S

test: tool kernel components
	cargo test

bench: tool kernel components
	@scripts/bench.sh

# The commands, as the README's table has them.
help:
	@echo 'make run [SYSTEM=file] [DISKS="a.img b.img"]  build and boot a system (default system.xml)'
	@echo 'make test                                     every test'
	@echo 'make check SYSTEM=file                        validate a system: ok or one line per error'
	@echo 'make expand SYSTEM=file                       print it with its storage expanded into SDF'
	@echo 'make verify SYSTEM=file [IMAGE=image]         prove its isolation (and the image'"'"'s)'
	@echo 'make graph SYSTEM=file [FORMAT=svg]           draw it (dot or SVG on stdout)'
	@echo 'make appdisk DIR=folder IMAGE=file            an application disk for the content disk'
	@echo 'make bench                                    benchmarks, in instructions'
	@echo 'make debug                                    boot with a GDB stub on :1234'

clean:
	cargo clean
	rm -rf $(BUILD)
