//! The aarch64 shell around the kernel's logic: boot, exception entry, and
//! the `Machine` implementation on the real hardware.

pub mod boot;
pub mod console;
pub mod fpu;
pub mod gic;
pub mod mmu;
pub mod pmu;
pub mod power;
pub mod timer;
pub mod vectors;

use crate::fault::{self, ec};
use crate::machine::Machine;
use crate::pd::{PdId, UserContext};
use crate::system::Kernel;
use bootspec::platform::{KERNEL_VIRT_OFFSET, TIMER_IRQ};
use bootspec::{Header, Spec};
use console::kprintln;

/// The kernel's state. Filled once by `kmain`, then used by one kernel
/// entry at a time.
static mut KERNEL: Kernel = Kernel::empty();

/// Copy `blocks` 64-byte blocks from `src` to `dst` through four SIMD
/// registers, 64 bytes a load and a store: a grant copy of a 4 KiB block
/// takes about 210 instructions (eight general registers a loop took 640,
/// the library's copy, one register at a time, about 2,000). The kernel is
/// built without FP, so the compiler never uses these registers; they hold
/// some PD's values (the FP owner's, see `fpu`), so the copy saves the four
/// it uses on the stack and puts them back. EL1 may use the unit in either
/// of the CPACR settings the kernel uses (only EL0 traps).
///
/// # Safety
/// Both ranges are mapped, `blocks * 64` bytes long, and apart; `blocks`
/// is at least 1 (0 would wrap the count).
unsafe fn copy_blocks(dst: *mut u8, src: *const u8, blocks: usize) {
    debug_assert!(blocks > 0);
    // SAFETY: the caller's promise; the loop reads and writes exactly
    // those bytes, and v0-v3 are as they were after it. The stack stays
    // 16-byte aligned.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [sp, #-64]!",
            "stp q2, q3, [sp, #32]",
            // An odd block first, then two a loop.
            "tbz {n}, #0, 2f",
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{src}], #64",
            "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{dst}], #64",
            "subs {n}, {n}, #1",
            "b.eq 3f",
            "2:",
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{src}], #64",
            "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{dst}], #64",
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{src}], #64",
            "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{dst}], #64",
            "subs {n}, {n}, #2",
            "b.ne 2b",
            "3:",
            "ldp q2, q3, [sp, #32]",
            "ldp q0, q1, [sp], #64",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) blocks => _,
        );
    }
}

/// The kernel state, for the duration of one kernel entry.
fn kernel() -> &'static mut Kernel {
    // SAFETY: there is one core and the kernel runs with interrupts masked,
    // so entries never overlap; each entry takes this reference once (or,
    // when a fast entry (`handle_signal_recv` ...) hands over to `handle_trap`, twice, the
    // first no longer used).
    unsafe { &mut *core::ptr::addr_of_mut!(KERNEL) }
}

/// Kernel view of physical memory: the linear map.
pub fn phys_to_virt(paddr: u64) -> *mut u8 {
    (paddr + KERNEL_VIRT_OFFSET) as *mut u8
}

/// The hardware the kernel's logic drives.
pub struct Arch;

impl Machine for Arch {
    fn console_write(&mut self, bytes: &[u8]) {
        console::write_bytes(bytes);
    }

    fn console_write_phys(&mut self, paddr: u64, len: usize) {
        // SAFETY: the caller passes a PD's IPC buffer, a page of RAM the
        // spec describes; `len` is capped at a page by the syscall layer.
        let bytes = unsafe { core::slice::from_raw_parts(phys_to_virt(paddr), len) };
        console::write_bytes(bytes);
    }

    fn copy_phys(&mut self, dst: u64, src: u64, len: usize) {
        let (d, s) = (phys_to_virt(dst), phys_to_virt(src).cast_const());
        let blocks = len / 64;
        let apart = dst.saturating_add(len as u64) <= src || src.saturating_add(len as u64) <= dst;
        // SAFETY: both ranges lie in RAM covered by the linear map: they
        // come from the boot spec (IPC buffers, restore ops, lent regions)
        // or from a translation checked to be RAM (a grant copy's buffer,
        // which may overlap the grant if a PD maps a region lent to it:
        // hence `copy`, not `copy_nonoverlapping`, unless they are apart).
        unsafe {
            if apart && blocks > 0 {
                copy_blocks(d, s, blocks);
                if len % 64 != 0 {
                    core::ptr::copy_nonoverlapping(s.add(blocks * 64), d.add(blocks * 64), len % 64);
                }
            } else {
                core::ptr::copy(s, d, len);
            }
        }
    }

    fn zero_phys(&mut self, dst: u64, len: usize) {
        // SAFETY: as for `copy_phys`.
        unsafe { core::ptr::write_bytes(phys_to_virt(dst), 0, len) }
    }

    fn irq_mask(&mut self, irq: u32) {
        gic::disable(irq);
    }

    fn irq_unmask(&mut self, irq: u32) {
        gic::enable(irq);
    }

    fn power_off(&mut self, status: u64) {
        power::power_off(status)
    }

    fn read_phys(&mut self, paddr: u64, out: &mut [u8]) {
        // SAFETY: the caller passes RAM the spec describes (a PD's IPC
        // buffer), covered by the linear map; `out` is kernel memory.
        unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(paddr), out.as_mut_ptr(), out.len()) }
    }

    fn user_phys(&mut self, vaddr: u64, write: bool) -> Option<u64> {
        let par: u64;
        // SAFETY: address translation as EL0 in the running PD's address
        // space (TTBR0 is the PD's during its system call); it reads the
        // tables and writes only PAR_EL1.
        unsafe {
            if write {
                core::arch::asm!("at s1e0w, {}", "isb", "mrs {}, par_el1", in(reg) vaddr, lateout(reg) par, options(nostack));
            } else {
                core::arch::asm!("at s1e0r, {}", "isb", "mrs {}, par_el1", in(reg) vaddr, lateout(reg) par, options(nostack));
            }
        }
        // PAR_EL1.F (bit 0) set: no translation with those rights. The
        // memory attributes (bits 63:56) must be Normal memory (any
        // non-zero high nibble), never a device.
        if par & 1 != 0 || par >> 60 == 0 {
            return None;
        }
        Some((par & 0x0000_ffff_ffff_f000) | (vaddr & 0xfff))
    }

    fn now(&mut self) -> u64 {
        timer::now()
    }

    fn counter_hz(&self) -> u64 {
        timer::frequency()
    }

    fn set_deadline(&mut self, at: Option<u64>) {
        timer::set_deadline(at)
    }
}

/// Entry from `boot.rs` with the MMU on, on the kernel stack.
#[no_mangle]
extern "C" fn kmain(spec_paddr: u64) -> ! {
    // SAFETY: the tool placed the spec in RAM at this address; the header
    // says how long it is, and `Spec::parse` checks everything else.
    let bytes: &'static [u8] = unsafe {
        let header = &*(phys_to_virt(spec_paddr) as *const Header);
        core::slice::from_raw_parts(phys_to_virt(spec_paddr), header.total_size as usize)
    };
    let spec = match Spec::parse(bytes) {
        Ok(spec) => spec,
        Err(e) => {
            kprintln!("kernel: boot spec rejected: {:?}", e);
            power::power_off(3);
        }
    };
    pmu::init(spec.header.flags & bootspec::FLAG_PMU_USER != 0);
    // (Before anything may copy: `copy_blocks` uses SIMD registers at EL1,
    // which the CPACR setting `init` makes allow.)
    fpu::init();
    let k = kernel();
    k.load(&spec);
    // SAFETY: BOOT_EL was written once by `_start`.
    let entered_at = unsafe { core::ptr::addr_of!(boot::BOOT_EL).read() };
    kprintln!("kernel: entered at EL{}, starting {} protection domains", entered_at, k.pds.len());
    gic::init();
    for (irq, trigger) in k.bound_irqs() {
        gic::configure(irq, trigger);
        gic::enable(irq);
    }
    gic::configure(TIMER_IRQ, bootspec::TRIGGER_LEVEL);
    gic::enable(TIMER_IRQ);
    timer::init();
    let ctx = next_context(k);
    // SAFETY: `ctx` is the saved state of the PD chosen to run.
    unsafe { vectors::return_to_user(ctx) }
}

/// Entries from EL0 whose x7 asks for `signal_recv`, `pp_call` or
/// `reply_recv` (the exception vector sends each to its own, every other
/// entry to `handle_trap`), with the PD's registers saved.
///
/// The hand-offs of a block request between client, server and driver (a
/// `signal_recv` that wakes its peer) and of an upcall to a filter (a
/// `pp_call` to a waiting filter, its `reply_recv`) go straight through:
/// the fast path has already chosen who runs, so the entry makes no
/// scheduling decision and saves few registers of its own (one entry per
/// call, so each saves only what its own path needs). Anything else,
/// including an interrupt or fault that found one of those numbers in x7,
/// goes on to `handle_trap`.
#[inline(always)]
fn fast_entry(kind: u64, fast: impl FnOnce(&mut Kernel, PdId) -> bool) -> *mut UserContext {
    let k = kernel();
    if kind == vectors::TRAP_SYNC && esr() >> 26 == ec::SVC64 {
        if let Some(cur) = k.current {
            if fast(k, cur) {
                return enter(k);
            }
        }
    }
    handle_trap(kind)
}

#[no_mangle]
extern "C" fn handle_signal_recv(kind: u64) -> *mut UserContext {
    fast_entry(kind, |k, cur| k.signal_recv_fast(cur, k.pds[cur].ctx().x[0]))
}

#[no_mangle]
extern "C" fn handle_pp_call(kind: u64) -> *mut UserContext {
    fast_entry(kind, |k, cur| k.pp_call_fast(&mut Arch, cur, k.pds[cur].ctx().x[0]))
}

#[no_mangle]
extern "C" fn handle_reply_recv(kind: u64) -> *mut UserContext {
    fast_entry(kind, |k, cur| k.reply_recv_fast(&mut Arch, cur))
}

/// The syndrome register of this exception.
#[inline(always)]
fn esr() -> u64 {
    let esr: u64;
    // SAFETY: reading the syndrome register of this exception.
    unsafe { core::arch::asm!("mrs {}, esr_el1", out(reg) esr, options(nomem, nostack, preserves_flags)) };
    esr
}

/// Every entry from EL0 lands here with the PD's registers saved.
#[no_mangle]
extern "C" fn handle_trap(kind: u64) -> *mut UserContext {
    let k = kernel();
    let m = &mut Arch;
    let Some(cur) = k.current else {
        // Entries from EL0 always have a running PD.
        kernel_bug("trap from EL0 with no current PD")
    };
    match kind {
        vectors::TRAP_SYNC => {
            let esr = esr();
            match esr >> 26 {
                // (A hand-off comes here only after its fast path
                // failed in its own entry: `handle_signal_recv` ...)
                ec::SVC64 => {
                    if k.syscall_general(m, cur) {
                        return enter(k);
                    }
                }
                ec::FP_ACCESS => fpu::take(k, cur),
                ec::WFI_WFE => {
                    // A PD waiting for an interrupt yields instead.
                    k.pds[cur].ctx_mut().pc += 4;
                    k.tick();
                }
                _ => {
                    let far: u64;
                    // SAFETY: reading the fault address of this exception.
                    unsafe { core::arch::asm!("mrs {}, far_el1", out(reg) far) };
                    let pc = k.pds[cur].ctx().pc;
                    k.fault(m, cur, fault::decode(esr, far, pc));
                }
            }
        }
        vectors::TRAP_IRQ => dispatch_irqs(k, m),
        _ => {
            let pc = k.pds[cur].ctx().pc;
            let info = abi::FaultInfo { kind: abi::FaultKind::Other, address: 0, pc, esr: kind };
            k.fault(m, cur, info);
        }
    }
    next_context(k)
}

/// Take every pending interrupt: the timer ticks, the rest become
/// notifications.
fn dispatch_irqs(k: &mut Kernel, m: &mut Arch) {
    loop {
        let irq = gic::ack();
        if irq == gic::SPURIOUS {
            return;
        }
        if irq == TIMER_IRQ {
            if timer::tick_due() {
                timer::rearm();
                k.tick();
            }
            k.check_budgets(m);
        } else {
            k.irq(m, irq);
        }
        gic::end(irq);
    }
}

/// Decide who runs next, idling until someone can; install its address
/// space and FP access, and return its saved registers.
fn next_context(k: &mut Kernel) -> *mut UserContext {
    k.schedule();
    if k.current.is_none() {
        idle(k);
    }
    enter(k)
}

/// Nothing to run: the tick stops (tickless idle) and we sleep until a
/// device interrupt is pending. Interrupts stay masked; WFI wakes on a
/// pending one and we take it by hand. (Out of line, so that switching
/// from one PD straight to another saves no more registers for it.)
#[inline(never)]
fn idle(k: &mut Kernel) {
    k.settle_deadline(&mut Arch);
    timer::stop();
    // (Once per idle period: an interrupt that makes nothing runnable
    // changes nothing this looks at.)
    if k.stuck() {
        k.report_stuck(&mut Arch);
    }
    while k.current.is_none() {
        // SAFETY: waiting for an interrupt has no other effect.
        unsafe { core::arch::asm!("wfi") };
        dispatch_irqs(k, &mut Arch);
        k.schedule();
    }
    timer::rearm();
}

/// Install the current PD's address space and FP access, and return its
/// saved registers.
#[inline(always)]
fn enter(k: &mut Kernel) -> *mut UserContext {
    let next = k.current.unwrap_or_default();
    mmu::switch_to(k.pds[next].ttbr0());
    fpu::prepare(k, next);
    k.pds[next].ctx_mut()
}

/// An exception inside the kernel: a bug, unless it is the semihosting
/// `hlt` of a machine started without `-semihosting`.
#[no_mangle]
extern "C" fn handle_kernel_fault(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    if esr >> 26 == ec::UNKNOWN && power::is_semihosting_trap(elr) {
        power::psci_off();
    }
    kprintln!("kernel: exception in the kernel: kind {} esr {:#x} elr {:#x} far {:#x}", kind, esr, elr, far);
    power::power_off(4)
}

fn kernel_bug(what: &str) -> ! {
    kprintln!("kernel: bug: {}", what);
    power::power_off(4)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kprintln!("kernel: panic: {}", info);
    power::power_off(5)
}
