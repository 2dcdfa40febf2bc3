//! The block path's steady state keeps out of the FP/SIMD registers.
//!
//! The kernel switches FP/SIMD state lazily (`kernel/src/arch/fpu.rs`): the
//! first FP or SIMD instruction a PD runs after another PD used those
//! registers traps (exception class 0x07) and the kernel swaps them. If two
//! PDs on the block path both touched them, every hand-off between them
//! would pay that trap. LLVM uses SIMD registers for struct copies, zeroing
//! and spilled constants, so a small code change can bring them into a hot
//! loop unnoticed (it happened once in the driver; see the README's
//! Figures). This boots the server benchmark (`bench/blk-server.xml`: over
//! 6,000 requests through client, filter server and driver) with QEMU
//! logging every exception taken, and counts the FP/SIMD traps. Init code
//! in a few PDs explains a handful; one per round of requests would be
//! hundreds.

use e2e::{boot_to_completion, build_image, root};
use std::time::Duration;

/// FP/SIMD traps allowed in the whole run: the PDs' init code.
const AT_MOST: usize = 16;

#[test]
fn the_block_benchmark_runs_without_fp_simd_switches() {
    let image = build_image("bench/blk-server.xml", true);
    let log = root().join("build/e2e/blk-server-exceptions.log");
    let _ = std::fs::remove_file(&log);
    let log_arg = log.display().to_string();
    let run = boot_to_completion(&image, &["-icount", "shift=0,sleep=off", "-d", "int", "-D", &log_arg], Duration::from_secs(300));
    let figures = ["blk_read_qd1_server: ", "blk_write_qd1_server: ", "blk_read_qd32_server: ", "blk_write_qd32_server: "];
    for f in figures {
        run.expect_prefix(f);
    }
    let exceptions = std::fs::read_to_string(&log).expect("QEMU's exception log");
    // QEMU prints "...with ESR <class>/<syndrome>" for each exception.
    let taken = exceptions.lines().filter(|l| l.starts_with("...with ESR ")).count();
    let fp_traps = exceptions.lines().filter(|l| l.starts_with("...with ESR 0x7/")).count();
    assert!(taken > 10_000, "the log holds every exception (system calls and interrupts: {taken})");
    assert!(fp_traps <= AT_MOST, "{fp_traps} FP/SIMD traps in the block benchmark: some PD on the block path uses FP/SIMD registers in its steady state (look for q/v/d registers in its hot functions with llvm-objdump -d)");
    let _ = std::fs::remove_file(&log);
}
