//! Host tests of the kernel's logic: a fake machine, systems built as boot
//! specs, and PDs simulated by setting registers and making system calls.

extern crate std;
use crate::machine::Machine;
use crate::pd::{PdId, State};
use crate::system::Kernel;
use abi::{event, grant_handle, sys, Error, FaultInfo, FaultKind, Lend, MessageInfo, FAULT_LABEL, GRANT_READ, GRANT_WRITE};
use bootspec::*;
use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec;
use std::vec::Vec;

const MEM_BASE: u64 = 0x4000_0000;
const MEM_SIZE: usize = 1 << 20;

/// IPC buffer of PD `i` in the fake physical memory.
fn ipc_buffer(i: usize) -> u64 {
    MEM_BASE + (i as u64) * 4096
}

struct FakeMachine {
    mem: Vec<u8>,
    console: String,
    masked: BTreeSet<u32>,
    powered_off: Option<u64>,
    /// The running PD's pages: virtual page -> (physical page, writable).
    pages: BTreeMap<u64, (u64, bool)>,
    /// The system counter (1 MHz: one tick per microsecond).
    clock: u64,
    deadline: Option<u64>,
}

impl FakeMachine {
    fn new() -> Self {
        FakeMachine {
            mem: vec![0; MEM_SIZE],
            console: String::new(),
            masked: BTreeSet::new(),
            powered_off: None,
            pages: BTreeMap::new(),
            clock: 1000,
            deadline: None,
        }
    }
    fn at(&mut self, paddr: u64, len: usize) -> &mut [u8] {
        let off = (paddr - MEM_BASE) as usize;
        &mut self.mem[off..off + len]
    }
    fn write_mr(&mut self, pd: usize, i: usize, v: u64) {
        self.at(ipc_buffer(pd) + 8 * i as u64, 8).copy_from_slice(&v.to_le_bytes());
    }
    fn read_mr(&mut self, pd: usize, i: usize) -> u64 {
        u64::from_le_bytes(self.at(ipc_buffer(pd) + 8 * i as u64, 8).try_into().unwrap())
    }
}

impl Machine for FakeMachine {
    fn console_write(&mut self, bytes: &[u8]) {
        self.console.push_str(core::str::from_utf8(bytes).unwrap());
    }
    fn console_write_phys(&mut self, paddr: u64, len: usize) {
        let s = String::from_utf8(self.at(paddr, len).to_vec()).unwrap();
        self.console.push_str(&s);
    }
    fn copy_phys(&mut self, dst: u64, src: u64, len: usize) {
        let s = (src - MEM_BASE) as usize;
        let d = (dst - MEM_BASE) as usize;
        self.mem.copy_within(s..s + len, d);
    }
    fn zero_phys(&mut self, dst: u64, len: usize) {
        self.at(dst, len).fill(0);
    }
    fn irq_mask(&mut self, irq: u32) {
        self.masked.insert(irq);
    }
    fn irq_unmask(&mut self, irq: u32) {
        self.masked.remove(&irq);
    }
    fn power_off(&mut self, status: u64) {
        self.powered_off = Some(status);
    }
    fn read_phys(&mut self, paddr: u64, out: &mut [u8]) {
        out.copy_from_slice(self.at(paddr, out.len()));
    }
    fn user_phys(&mut self, vaddr: u64, write: bool) -> Option<u64> {
        let &(page, writable) = self.pages.get(&(vaddr & !0xfff))?;
        (writable || !write).then_some(page | (vaddr & 0xfff))
    }
    fn now(&mut self) -> u64 {
        self.clock
    }
    fn counter_hz(&self) -> u64 {
        1_000_000
    }
    fn set_deadline(&mut self, at: Option<u64>) {
        self.deadline = at;
    }
}

/// Describes a test system; `build` turns it into a spec and a kernel.
struct Sys {
    pds: Vec<PdDesc>,
    restore: Vec<RestoreOp>,
    lends: Vec<LendDesc>,
}

impl Sys {
    fn new() -> Sys {
        Sys { pds: Vec::new(), restore: Vec::new(), lends: Vec::new() }
    }
    fn pd(mut self, name: &str, priority: u8) -> Sys {
        let mut d = PdDesc::empty();
        d.set_name(name);
        d.priority = priority;
        d.entry = 0x20_0000;
        d.stack_top = abi::layout::STACK_TOP;
        d.ipc_buffer_paddr = ipc_buffer(self.pds.len());
        self.pds.push(d);
        self
    }
    fn passive(mut self) -> Sys {
        self.pds.last_mut().unwrap().flags |= PD_PASSIVE;
        self
    }
    fn flags(mut self, f: u8) -> Sys {
        self.pds.last_mut().unwrap().flags |= f;
        self
    }
    /// A channel between `a` (id `ida`) and `b` (id `idb`); `a_calls`: a may
    /// PPC b.
    fn channel(mut self, a: usize, ida: usize, b: usize, idb: usize, a_calls: bool) -> Sys {
        let rights_a = RIGHT_NOTIFY | if a_calls { RIGHT_PPC } else { 0 };
        self.pds[a].channels[ida] =
            ChannelDesc { kind: CHANNEL_PD, rights: rights_a, peer: b as u8, peer_channel: idb as u8, ..Default::default() };
        self.pds[b].channels[idb] =
            ChannelDesc { kind: CHANNEL_PD, rights: RIGHT_NOTIFY, peer: a as u8, peer_channel: ida as u8, ..Default::default() };
        self
    }
    fn notify_only(mut self, a: usize, ida: usize) -> Sys {
        self.pds[a].channels[ida].rights = RIGHT_PPC;
        self
    }
    /// Set the rights of a channel end, whatever its kind.
    fn rights(mut self, pd: usize, ch: usize, rights: u8) -> Sys {
        self.pds[pd].channels[ch].rights = rights;
        self
    }
    fn irq(mut self, pd: usize, ch: usize, irq: u16) -> Sys {
        self.pds[pd].channels[ch] = ChannelDesc { kind: CHANNEL_IRQ, irq, ..Default::default() };
        self
    }
    fn child(mut self, parent: usize, child: usize, id: u8) -> Sys {
        self.pds[parent].children[id as usize] = child as u8;
        self.pds[child].parent = parent as u8;
        self.pds[child].id_in_parent = id;
        self
    }
    fn restore(mut self, pd: usize, op: RestoreOp) -> Sys {
        self.pds[pd].restore_first = self.restore.len() as u32 - self.pds[pd].restore_count;
        self.restore.push(op);
        self.pds[pd].restore_count += 1;
        self
    }
    fn build(self) -> Harness {
        let mut header = Header::empty();
        header.ram_base = MEM_BASE;
        header.ram_size = MEM_SIZE as u64;
        let builder = SpecBuilder { header, pds: &self.pds, restore: &self.restore, lends: &self.lends };
        let mut bytes = vec![0u8; builder.size()];
        builder.write(&mut bytes).unwrap();
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let spec = Spec::parse(bytes).unwrap();
        let mut k = Kernel::empty();
        k.load(&spec);
        k.schedule();
        Harness { k, m: FakeMachine::new() }
    }
}

struct Harness {
    k: Kernel,
    m: FakeMachine,
}

impl Harness {
    fn current(&self) -> PdId {
        self.k.current.expect("a PD is running")
    }
    /// The running PD makes system call `nr` with `args` in x0...
    fn sys(&mut self, nr: u64, args: &[u64]) {
        let me = self.current();
        let ctx = self.k.pds[me].ctx_mut();
        ctx.x[..args.len()].copy_from_slice(args);
        ctx.x[7] = nr;
        self.k.syscall(&mut self.m, me);
        self.k.schedule();
    }
    fn sys_as(&mut self, pd: PdId, nr: u64, args: &[u64]) {
        assert_eq!(self.current(), pd, "expected {} to be running", self.k.pds[pd].name());
        self.sys(nr, args);
    }
    /// Let every PD finish its init by waiting, highest priority first.
    fn settle(&mut self) {
        while let Some(pd) = self.k.current {
            self.sys_as(pd, sys::RECV, &[]);
        }
    }
    fn x(&self, pd: PdId, i: usize) -> u64 {
        self.k.pds[pd].ctx().x[i]
    }
    fn state(&self, pd: PdId) -> State {
        self.k.pds[pd].state()
    }
}

#[test]
fn boot_runs_highest_priority_pd_first() {
    let h = Sys::new().pd("low", 1).pd("high", 200).pd("mid", 50).build();
    assert_eq!(h.current(), 1);
    assert_eq!(h.k.pds[1].ctx().pc, 0x20_0000);
    assert_eq!(h.k.pds[1].ctx().sp, abi::layout::STACK_TOP);
}

#[test]
fn notify_wakes_waiting_receiver_with_its_channel_bit() {
    let mut h = Sys::new().pd("a", 10).pd("b", 5).channel(0, 1, 1, 4, false).build();
    h.settle();
    assert_eq!(h.k.current, None);
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::NOTIFY, &[1]);
    assert_eq!(h.x(0, 0), 0, "notify returns ok");
    // a keeps running (higher priority); b is runnable with bit 4.
    assert_eq!(h.current(), 0);
    assert_eq!(h.state(1), State::Runnable);
    assert_eq!(h.x(1, 0), event::NOTIFIED);
    assert_eq!(h.x(1, 1), 1 << 4);
    h.sys_as(0, sys::RECV, &[]);
    assert_eq!(h.current(), 1);
}

#[test]
fn notification_to_higher_priority_preempts_the_sender() {
    let mut h = Sys::new().pd("low", 1).pd("high", 100).channel(0, 0, 1, 0, false).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::NOTIFY, &[0]);
    assert_eq!(h.current(), 1);
    // When high waits again, low resumes with its notify result.
    h.sys_as(1, sys::RECV, &[]);
    assert_eq!(h.current(), 0);
    assert_eq!(h.x(0, 0), 0);
}

#[test]
fn signal_recv_notifies_then_waits_in_one_call() {
    let mut h = Sys::new().pd("low", 1).pd("high", 100).channel(0, 0, 1, 2, false).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::SIGNAL_RECV, &[0]);
    // low waits; high runs with the notification.
    assert_eq!(h.state(0), State::Waiting);
    assert_eq!(h.current(), 1);
    assert_eq!((h.x(1, 0), h.x(1, 1)), (event::NOTIFIED, 1 << 2));
    // A notification back wakes low as a plain recv would.
    h.sys_as(1, sys::SIGNAL_RECV, &[2]);
    assert_eq!(h.current(), 0);
    assert_eq!((h.x(0, 0), h.x(0, 1)), (event::NOTIFIED, 1 << 0));
}

#[test]
fn a_pd_woken_by_signal_recv_runs_next_only_ahead_of_lower_priorities() {
    // a signals c as it waits; b, of c's priority, was queued first.
    let mut h = Sys::new().pd("a", 10).pd("b", 10).pd("c", 10).pd("low", 1).channel(0, 0, 2, 0, false).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.k.make_runnable(3);
    h.k.make_runnable(1);
    h.sys_as(0, sys::SIGNAL_RECV, &[0]);
    assert_eq!(h.current(), 1, "b was first in line");
    h.sys_as(1, sys::RECV, &[]);
    assert_eq!(h.current(), 2, "then c, with its notification");
    assert_eq!(h.x(2, 0), event::NOTIFIED);
    h.sys_as(2, sys::RECV, &[]);
    assert_eq!(h.current(), 3);
    // With only a lower priority queued, the woken PD goes straight in.
    h.k.make_runnable(0);
    h.k.schedule();
    assert_eq!(h.current(), 0, "a outranks low");
    h.sys_as(0, sys::SIGNAL_RECV, &[0]);
    assert_eq!(h.current(), 2);
    h.sys_as(2, sys::RECV, &[]);
    assert_eq!(h.current(), 3, "low kept its place in the queue");
}

#[test]
fn signal_recv_on_an_irq_channel_acks_then_waits() {
    let mut h = Sys::new().pd("driver", 10).irq(0, 5, 79).build();
    h.settle();
    h.k.irq(&mut h.m, 79);
    h.k.schedule();
    assert!(h.m.masked.contains(&79));
    h.sys_as(0, sys::SIGNAL_RECV, &[5]);
    assert!(!h.m.masked.contains(&79));
    assert_eq!(h.state(0), State::Waiting);
}

#[test]
fn a_refused_signal_recv_returns_the_error_without_waiting() {
    let mut h = Sys::new().pd("a", 1).pd("b", 2).channel(0, 1, 1, 1, false).notify_only(0, 1).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    for (ch, err) in [(7, Error::InvalidChannel), (u64::MAX, Error::InvalidChannel), (1, Error::NotPermitted)] {
        h.sys_as(0, sys::SIGNAL_RECV, &[ch]);
        assert_eq!((h.x(0, 0), h.x(0, 1)), (event::REFUSED, err as u64), "channel {ch}");
        assert_eq!(h.current(), 0, "the caller keeps running");
    }
    assert_eq!(h.k.pds[1].pending(), 0, "the other PD saw nothing");
}

#[test]
fn notifications_accumulate_while_the_receiver_runs() {
    let mut h = Sys::new().pd("a", 1).pd("b", 1).channel(0, 2, 1, 3, false).channel(0, 5, 1, 6, false).build();
    // a runs first (equal priority, queued first); b has not waited yet.
    h.sys_as(0, sys::NOTIFY, &[2]);
    h.sys_as(0, sys::NOTIFY, &[5]);
    h.sys_as(0, sys::RECV, &[]);
    h.sys_as(1, sys::RECV, &[]);
    assert_eq!(h.current(), 1, "pending bits return at once");
    assert_eq!(h.x(1, 0), event::NOTIFIED);
    assert_eq!(h.x(1, 1), 1 << 3 | 1 << 6);
}

#[test]
fn using_a_channel_the_pd_does_not_hold_is_an_error() {
    let mut h = Sys::new().pd("a", 1).pd("b", 2).channel(0, 1, 1, 1, false).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    for (nr, ch, err) in [
        (sys::NOTIFY, 7, Error::InvalidChannel),
        (sys::NOTIFY, 62, Error::InvalidChannel),
        (sys::NOTIFY, u64::MAX, Error::InvalidChannel),
        (sys::PP_CALL, 9, Error::InvalidChannel),
        (sys::IRQ_ACK, 3, Error::InvalidChannel),
        (sys::PP_CALL, 1, Error::NotPermitted),
        (sys::IRQ_ACK, 1, Error::NotPermitted),
    ] {
        h.sys_as(0, nr, &[ch, MessageInfo::new(0, 0).raw()]);
        assert_eq!(h.x(0, 0), err as u64, "syscall {nr} on channel {ch}");
        assert_eq!(h.current(), 0, "the caller keeps running");
    }
    assert_eq!(h.state(1), State::Waiting, "the other PD saw nothing");
    assert_eq!(h.k.pds[1].pending(), 0);
}

#[test]
fn notify_without_the_notify_right_is_not_permitted() {
    let mut h = Sys::new().pd("a", 1).pd("b", 2).channel(0, 1, 1, 1, true).notify_only(0, 1).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::NOTIFY, &[1]);
    assert_eq!(h.x(0, 0), Error::NotPermitted as u64);
}

#[test]
fn ppc_switches_to_the_waiting_callee_and_back_with_the_reply() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).passive().channel(0, 3, 1, 8, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    let info = MessageInfo::new(0x42, 3);
    h.sys_as(0, sys::PP_CALL, &[3, info.raw(), 11, 22, 33, 44]);
    assert_eq!(h.current(), 1, "direct switch to the callee");
    assert!(matches!(h.state(0), State::Calling { callee: 1, queued: false }));
    assert_eq!(h.x(1, 0), event::PPC);
    assert_eq!(h.x(1, 1), 8, "the callee's own channel id");
    assert_eq!(MessageInfo::from_raw(h.x(1, 2)), info);
    assert_eq!(&h.k.pds[1].ctx().x[3..7], &[11, 22, 33, 44]);
    // Reply with label 7, 2 registers.
    let reply = MessageInfo::new(7, 2);
    h.sys_as(1, sys::REPLY_RECV, &[reply.raw(), 0, 101, 202]);
    assert_eq!(h.state(1), State::Waiting);
    assert_eq!(h.current(), 0);
    assert_eq!(h.x(0, 0), 0);
    assert_eq!(MessageInfo::from_raw(h.x(0, 1)), reply);
    assert_eq!(&h.k.pds[0].ctx().x[2..4], &[101, 202]);
}

#[test]
fn message_registers_beyond_four_travel_through_ipc_buffers() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    for i in 4..64 {
        h.m.write_mr(0, i, 1000 + i as u64);
    }
    h.m.write_mr(1, 63, 0xdead);
    h.sys_as(0, sys::PP_CALL, &[0, MessageInfo::new(1, 63).raw(), 0, 1, 2, 3]);
    for i in 4..63 {
        assert_eq!(h.m.read_mr(1, i), 1000 + i as u64);
    }
    assert_eq!(h.m.read_mr(1, 63), 0xdead, "only `count` registers are copied");
    for i in 4..10 {
        h.m.write_mr(1, i, 2000 + i as u64);
    }
    h.sys_as(1, sys::REPLY_RECV, &[MessageInfo::new(0, 10).raw()]);
    for i in 4..10 {
        assert_eq!(h.m.read_mr(0, i), 2000 + i as u64);
    }
}

#[test]
fn message_count_over_the_limit_is_refused() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, MessageInfo::new(1, 65).raw()]);
    assert_eq!(h.x(0, 0), Error::InvalidMessage as u64);
    h.sys_as(0, sys::PP_CALL, &[0, MessageInfo::new(1, 0).raw() | 0x100]);
    assert_eq!(h.x(0, 0), Error::InvalidMessage as u64);
    assert_eq!(h.state(1), State::Waiting);
}

#[test]
fn malformed_reply_reaches_the_caller_as_an_error() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    h.sys_as(1, sys::REPLY_RECV, &[MessageInfo::new(0, 100).raw()]);
    assert_eq!(h.x(0, 0), Error::InvalidMessage as u64);
    assert_eq!(h.state(1), State::Waiting);
}

#[test]
fn nested_ppc_unwinds_in_order() {
    // a -> b -> c, each callee of strictly higher priority.
    let mut h = Sys::new()
        .pd("a", 1)
        .pd("b", 5)
        .passive()
        .pd("c", 9)
        .passive()
        .channel(0, 0, 1, 0, true)
        .channel(1, 1, 2, 0, true)
        .build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, MessageInfo::new(1, 1).raw(), 10]);
    h.sys_as(1, sys::PP_CALL, &[1, MessageInfo::new(2, 1).raw(), h.x(1, 3) + 1]);
    assert_eq!(h.current(), 2);
    assert_eq!(h.x(2, 3), 11);
    h.sys_as(2, sys::REPLY_RECV, &[MessageInfo::new(0, 1).raw(), 0, h.x(2, 3) * 2]);
    assert_eq!(h.current(), 1, "the reply returns to b, which still serves a");
    assert_eq!(h.x(1, 2), 22);
    h.sys_as(1, sys::REPLY_RECV, &[MessageInfo::new(0, 1).raw(), 0, h.x(1, 2) + 1]);
    assert_eq!(h.current(), 0);
    assert_eq!(h.x(0, 2), 23);
}

#[test]
fn calls_to_a_busy_callee_queue_by_priority_then_arrival() {
    // server (prio 50) is busy calling "inner"; three clients queue.
    let mut h = Sys::new()
        .pd("c1", 10)
        .pd("c2", 20)
        .pd("c3", 20)
        .pd("server", 50)
        .pd("inner", 60)
        .channel(0, 0, 3, 0, true)
        .channel(1, 0, 3, 1, true)
        .channel(2, 0, 3, 2, true)
        .channel(3, 9, 4, 0, true)
        .build();
    h.settle();
    // c1 calls; server takes it and calls inner, which waits without
    // replying: the server stays blocked in its call.
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    h.sys_as(3, sys::PP_CALL, &[9, 0]);
    assert_eq!(h.current(), 4);
    h.sys_as(4, sys::RECV, &[]);
    // Meanwhile c3, then c2, call the busy server.
    h.k.make_runnable(2);
    h.k.make_runnable(1);
    h.k.schedule();
    h.sys_as(2, sys::PP_CALL, &[0, 0]);
    h.sys_as(1, sys::PP_CALL, &[0, 0]);
    assert!(matches!(h.state(1), State::Calling { callee: 3, queued: true }));
    assert!(matches!(h.state(2), State::Calling { callee: 3, queued: true }));
    // inner replies at last (woken as if by a notification); the server
    // finishes c1.
    h.k.make_runnable(4);
    h.k.schedule();
    h.sys_as(4, sys::REPLY_RECV, &[0]);
    assert_eq!(h.current(), 3);
    h.sys_as(3, sys::REPLY_RECV, &[0]);
    assert_eq!(h.current(), 3, "server takes the next queued caller at once");
    assert_eq!(h.x(3, 1), 2, "c3 arrived first among the priority-20 callers");
    h.sys_as(3, sys::REPLY_RECV, &[0]);
    assert_eq!(h.x(3, 1), 1, "then c2");
    h.sys_as(3, sys::REPLY_RECV, &[0]);
    assert_eq!(h.state(3), State::Waiting);
}

#[test]
fn callee_fault_fails_the_call_in_progress_and_the_queue() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    let info = FaultInfo { kind: FaultKind::UnmappedRead, address: 0x1234, pc: 0x20_0010, esr: 0 };
    h.k.fault(&mut h.m, 1, info);
    h.k.schedule();
    assert_eq!(h.state(1), State::Faulted);
    assert_eq!(h.current(), 0);
    assert_eq!(h.x(0, 0), Error::CalleeFaulted as u64);
    assert_eq!(
        h.m.console,
        "kernel: pd 'server' faulted: read from unmapped address at address 0x1234, pc 0x200010; stopped\n"
    );
    // A dead callee without a parent refuses further calls at once.
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    assert_eq!(h.x(0, 0), Error::CalleeFaulted as u64);
    assert_eq!(h.current(), 0);
}

#[test]
fn fault_goes_to_the_parent_which_restarts_the_child_with_fresh_memory() {
    let data = MEM_BASE + 0x8_0000;
    let pristine = MEM_BASE + 0x9_0000;
    let bss = MEM_BASE + 0xa_0000;
    let mut h = Sys::new()
        .pd("parent", 100)
        .pd("child", 10)
        .child(0, 1, 3)
        .restore(1, RestoreOp { kind: RESTORE_COPY, _reserved: 0, dst_paddr: data, src_paddr: pristine, len: 16 })
        .restore(1, RestoreOp { kind: RESTORE_ZERO, _reserved: 0, dst_paddr: bss, src_paddr: 0, len: 8 })
        .build();
    h.m.at(pristine, 16).copy_from_slice(b"initial contents");
    h.m.at(data, 16).copy_from_slice(b"scribbled over!!");
    h.m.at(bss, 8).fill(0xff);
    h.settle();
    h.k.make_runnable(1);
    h.k.schedule();
    h.k.pds[1].ctx_mut().pc = 0x20_0abc;
    h.k.pds[1].ctx_mut().x[19] = 77;
    let info = FaultInfo { kind: FaultKind::WriteToReadOnly, address: 0x40_0000, pc: 0x20_0abc, esr: 0x9200_004f };
    h.k.fault(&mut h.m, 1, info);
    h.k.schedule();
    assert!(h.m.console.ends_with("pc 0x200abc; its parent handles it\n"), "{}", h.m.console);
    assert_eq!(h.current(), 0, "the parent runs its fault handler");
    assert_eq!(h.x(0, 0), event::FAULT);
    assert_eq!(h.x(0, 1), 3, "the child id");
    assert_eq!(MessageInfo::from_raw(h.x(0, 2)).label(), FAULT_LABEL);
    assert_eq!(&h.k.pds[0].ctx().x[3..7], &[FaultKind::WriteToReadOnly as u64, 0x40_0000, 0x20_0abc, 0x9200_004f]);
    h.sys_as(0, sys::PD_RESTART, &[3]);
    assert_eq!(h.x(0, 0), 0);
    assert_eq!(h.m.at(data, 16), b"initial contents");
    assert_eq!(h.m.at(bss, 8), &[0; 8]);
    assert_eq!(h.state(1), State::Runnable);
    assert_eq!(h.k.pds[1].ctx().pc, 0x20_0000);
    assert_eq!(h.k.pds[1].ctx().x[19], 0);
    h.sys_as(0, sys::RECV, &[]);
    assert_eq!(h.current(), 1);
}

#[test]
fn only_a_pds_own_children_can_be_restarted() {
    let mut h = Sys::new().pd("parent", 100).pd("child", 10).pd("other", 50).child(0, 1, 0).build();
    h.settle();
    h.k.make_runnable(2);
    h.k.schedule();
    h.sys_as(2, sys::PD_RESTART, &[0]);
    assert_eq!(h.x(2, 0), Error::InvalidChild as u64);
    h.sys_as(2, sys::PD_STOP, &[0]);
    assert_eq!(h.x(2, 0), Error::InvalidChild as u64);
    h.sys_as(2, sys::PD_RESTART, &[1000]);
    assert_eq!(h.x(2, 0), Error::InvalidChild as u64);
    assert_eq!(h.state(1), State::Waiting);
}

#[test]
fn fault_resume_continues_the_child_where_it_stopped() {
    let mut h = Sys::new().pd("parent", 100).pd("child", 10).child(0, 1, 0).build();
    h.settle();
    h.k.make_runnable(1);
    h.k.schedule();
    h.k.pds[1].ctx_mut().pc = 0x20_0100;
    h.k.fault(&mut h.m, 1, FaultInfo { kind: FaultKind::Breakpoint, address: 0, pc: 0x20_0100, esr: 0 });
    h.k.schedule();
    h.sys_as(0, sys::FAULT_RESUME, &[0]);
    assert_eq!(h.x(0, 0), 0);
    h.sys_as(0, sys::FAULT_RESUME, &[0]);
    assert_eq!(h.x(0, 0), Error::NotPermitted as u64, "it is no longer faulted");
    h.sys_as(0, sys::RECV, &[]);
    assert_eq!(h.current(), 1);
    assert_eq!(h.k.pds[1].ctx().pc, 0x20_0100);
}

#[test]
fn a_faulted_pd_leaves_everyone_else_running() {
    let mut h = Sys::new().pd("a", 5).pd("b", 5).pd("c", 5).channel(1, 0, 2, 0, false).build();
    h.k.fault(&mut h.m, 0, FaultInfo { kind: FaultKind::UndefinedInstruction, address: 0, pc: 0, esr: 0 });
    h.k.schedule();
    assert_eq!(h.current(), 1);
    h.sys_as(1, sys::NOTIFY, &[0]);
    h.sys_as(1, sys::RECV, &[]);
    assert_eq!(h.current(), 2);
    assert_eq!(h.state(0), State::Faulted);
}

#[test]
fn interrupt_is_masked_delivered_and_re_enabled_by_ack() {
    let mut h = Sys::new().pd("driver", 10).irq(0, 5, 79).build();
    h.settle();
    assert_eq!(h.k.irq_binding(79), Some((0, 5)));
    assert_eq!(h.k.irq_binding(80), None);
    h.k.irq(&mut h.m, 79);
    h.k.schedule();
    assert!(h.m.masked.contains(&79));
    assert_eq!(h.current(), 0);
    assert_eq!(h.x(0, 0), event::NOTIFIED);
    assert_eq!(h.x(0, 1), 1 << 5);
    h.sys_as(0, sys::IRQ_ACK, &[5]);
    assert_eq!(h.x(0, 0), 0);
    assert!(!h.m.masked.contains(&79));
    // An interrupt nobody owns changes nothing.
    h.k.irq(&mut h.m, 80);
    assert!(h.m.masked.is_empty());
}

#[test]
fn power_off_needs_the_right() {
    let mut h = Sys::new().pd("plain", 5).pd("monitor", 1).flags(PD_CAN_POWER_OFF).build();
    h.sys_as(0, sys::POWER_OFF, &[0]);
    assert_eq!(h.x(0, 0), Error::NotPermitted as u64);
    assert_eq!(h.m.powered_off, None);
    h.sys_as(0, sys::RECV, &[]);
    h.sys_as(1, sys::POWER_OFF, &[3]);
    assert_eq!(h.m.powered_off, Some(3));
}

#[test]
fn debug_puts_prints_from_the_ipc_buffer() {
    let mut h = Sys::new().pd("a", 5).build();
    h.m.write_mr(0, 0, 0x4141_4141);
    h.m.at(ipc_buffer(0) + abi::DEBUG_AREA.start as u64, 6).copy_from_slice(b"hello\n");
    h.sys_as(0, sys::DEBUG_PUTS, &[6]);
    assert_eq!(h.m.console, "hello\n", "message registers are not printed");
    // An overlong length is cut to the debug area, never past the page.
    h.sys_as(0, sys::DEBUG_PUTS, &[u64::MAX]);
    assert_eq!(h.m.console.len(), 6 + abi::DEBUG_AREA.len());
}

#[test]
fn unknown_system_call_is_an_error() {
    let mut h = Sys::new().pd("a", 5).build();
    h.sys_as(0, 999, &[]);
    assert_eq!(h.x(0, 0), Error::InvalidSyscall as u64);
}

#[test]
fn tick_rotates_equal_priorities_only() {
    let mut h = Sys::new().pd("a", 5).pd("b", 5).pd("low", 1).build();
    assert_eq!(h.current(), 0);
    h.k.tick();
    assert_eq!(h.current(), 1);
    h.k.tick();
    assert_eq!(h.current(), 0);
    h.sys_as(0, sys::RECV, &[]);
    h.k.tick();
    assert_eq!(h.current(), 1, "alone at its priority, b keeps the CPU");
}

#[test]
fn passive_pd_is_not_woken_by_notifications() {
    let mut h = Sys::new().pd("client", 1).pd("server", 10).passive().channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::NOTIFY, &[0]);
    assert_eq!(h.state(1), State::Waiting);
    assert_eq!(h.current(), 0);
    // The next call wakes it; the notification comes first once it waits.
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    assert_eq!(h.x(1, 0), event::PPC);
    h.sys_as(1, sys::REPLY_RECV, &[0]);
    assert_eq!(h.current(), 1);
    assert_eq!(h.x(1, 0), event::NOTIFIED);
}

/// What a differential test compares: who runs, the run queues in order,
/// and each PD's scheduling state, pending events and event registers.
fn snapshot(k: &Kernel) -> (Option<PdId>, Vec<PdId>, Vec<String>) {
    let mut q = k.runq.clone();
    let queued = core::iter::from_fn(|| q.pop_highest()).collect();
    let pds = k
        .pds
        .iter()
        .map(|p| {
            std::format!(
                "{:?} pending {:#x} faults {:#x} caller {:?} queued {:#x} x {:?}",
                p.state(),
                p.pending(),
                p.pending_faults(),
                p.caller(),
                p.queued_callers(),
                &p.ctx().x[..8]
            )
        })
        .collect();
    (k.current, queued, pds)
}

/// The fast paths of `signal_recv`, `pp_call` and `reply_recv` against the
/// general one: one random run of system calls, interrupts and ticks on two
/// kernels, the one taking a fast path whenever it applies, the other
/// never; after every step both are in the same state. The run must take
/// each fast path often, and pass over it (passive peer, peer or callee
/// busy, better PD queued, events, callers or a child's fault waiting, IRQ
/// channel, bad channel, no caller to reply to) often too.
#[test]
fn the_fast_paths_do_what_the_general_path_does() {
    // a and b at 10, c and e at 50 (e passive), d at 100; a and b may call
    // c; a is d's parent.
    let sys = || {
        Sys::new()
            .pd("a", 10)
            .pd("b", 10)
            .pd("c", 50)
            .pd("d", 100)
            .pd("e", 50)
            .passive()
            .channel(0, 0, 1, 0, false)
            .channel(0, 1, 2, 0, true)
            .channel(1, 1, 2, 1, true)
            .channel(2, 2, 3, 0, false)
            .channel(3, 1, 4, 0, false)
            .channel(0, 2, 3, 2, false)
            .irq(1, 3, 40)
            // Rights mean nothing on an IRQ channel; they must not make it
            // look like a PD channel.
            .rights(1, 3, RIGHT_NOTIFY | RIGHT_PPC)
            .child(0, 3, 0)
            .build()
    };
    let (mut fast, mut general) = (sys(), sys());
    let mut seed = 0x9e37_79b9u32;
    let mut rand = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    let (mut taken, mut passed, mut decisions) = (0, 0, 0);
    let (mut taken_by, mut passed_by) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
    for _ in 0..60_000 {
        let Some(me) = general.k.current else {
            // Nobody runs: an interrupt, or a notification from outside.
            let (pd, bit) = (rand(5) as PdId, rand(4) as usize);
            for h in [&mut fast, &mut general] {
                if bit == 3 {
                    h.k.irq(&mut h.m, 40);
                } else {
                    h.k.signal(pd, bit);
                }
                h.k.schedule();
            }
            assert_eq!(snapshot(&fast.k), snapshot(&general.k));
            continue;
        };
        let ch = rand(5) as u64;
        let (nr, args) = match rand(10) {
            0..=3 => (sys::SIGNAL_RECV, [ch, 0]),
            4 => (sys::NOTIFY, [ch, 0]),
            5 => (sys::RECV, [0, 0]),
            6 => (sys::REPLY_RECV, [MessageInfo::new(0, 1).raw(), 0]),
            7 if rand(2) == 0 => (sys::PP_CALL, [ch, MessageInfo::new(0, 1).raw()]),
            // (Lending nothing: `x6` is 0.)
            7 => (sys::PP_CALL_LEND, [ch, MessageInfo::new(0, 1).raw()]),
            8 => (sys::IRQ_ACK, [ch, 0]),
            9 if me == 3 => {
                // d faults; a, its parent, hears of it when it next waits.
                let info = FaultInfo { kind: FaultKind::Breakpoint, address: 0, pc: 0x20_0000, esr: 0 };
                for h in [&mut fast, &mut general] {
                    h.k.fault(&mut h.m, me, info);
                    h.k.schedule();
                }
                assert_eq!(snapshot(&fast.k), snapshot(&general.k));
                continue;
            }
            9 if me == 0 && rand(2) == 0 => (sys::FAULT_RESUME, [0, 0]),
            _ => {
                for h in [&mut fast, &mut general] {
                    h.k.tick();
                    h.k.schedule();
                }
                assert_eq!(snapshot(&fast.k), snapshot(&general.k));
                continue;
            }
        };
        for h in [&mut fast, &mut general] {
            let ctx = h.k.pds[me].ctx_mut();
            ctx.x[..2].copy_from_slice(&args);
            ctx.x[6] = 0;
            ctx.x[7] = nr;
        }
        // As the exception entry does it: a PD that took the fast path is
        // entered without `schedule`.
        if fast.k.syscall_fast(&mut fast.m, me) {
            taken += 1;
            *taken_by.entry(nr).or_insert(0) += 1;
        } else {
            passed += (nr == sys::SIGNAL_RECV) as u32;
            *passed_by.entry(nr).or_insert(0) += 1;
            let _ = fast.k.syscall_general(&mut fast.m, me);
            fast.k.schedule();
        }
        // When the general path says who runs next is decided, a
        // scheduling pass agrees.
        let decided = general.k.syscall_general(&mut general.m, me);
        let next = general.k.current;
        general.k.schedule();
        if decided {
            decisions += 1;
            assert_eq!(general.k.current, next, "{nr} by {me} said who runs next, and schedule disagrees");
        }
        assert_eq!(snapshot(&fast.k), snapshot(&general.k), "after {} by {}", nr, me);
        assert_eq!(fast.m.masked, general.m.masked);
    }
    assert!(taken > 500 && passed > 500, "fast path taken {taken} times, passed over {passed}");
    assert!(decisions > 200, "the general path said who runs next {decisions} times");
    for nr in [sys::SIGNAL_RECV, sys::PP_CALL, sys::REPLY_RECV] {
        let (t, p) = (taken_by.get(&nr).copied().unwrap_or(0), passed_by.get(&nr).copied().unwrap_or(0));
        assert!(t > 100 && p > 100, "system call {nr}: fast path taken {t} times, passed over {p}");
    }
}

/// A PD with a caller queued on it does not block in `signal_recv`: it
/// takes the call (the fast path must leave this to the general one).
#[test]
fn signal_recv_with_a_queued_caller_serves_it_and_still_signals() {
    let mut h = Sys::new()
        .pd("a", 10)
        .pd("b", 10)
        .pd("c", 50)
        .pd("d", 100)
        .channel(0, 0, 2, 0, true)
        .channel(1, 0, 2, 1, true)
        .channel(2, 2, 3, 0, false)
        .build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, MessageInfo::new(0, 0).raw()]);
    // c takes a's call and waits without replying; b's call queues.
    h.sys_as(2, sys::RECV, &[]);
    h.k.make_runnable(1);
    h.k.schedule();
    h.sys_as(1, sys::PP_CALL, &[0, MessageInfo::new(0, 0).raw()]);
    assert_eq!(h.k.current, None);
    h.k.signal(2, 5);
    h.k.schedule();
    assert_eq!((h.x(2, 0), h.x(2, 1)), (event::NOTIFIED, 1 << 5));
    h.sys_as(2, sys::SIGNAL_RECV, &[2]);
    // d outranks c and runs with the notification; c did not block but
    // took b's call, and runs when d is done.
    assert_eq!(h.current(), 3);
    assert_eq!((h.x(3, 0), h.x(3, 1)), (event::NOTIFIED, 1));
    assert_eq!(h.state(2), State::Runnable);
    assert_eq!((h.x(2, 0), h.x(2, 1)), (event::PPC, 1), "c serves b's call");
    h.sys_as(3, sys::RECV, &[]);
    assert_eq!(h.current(), 2);
}

// ---- grants -------------------------------------------------------------

/// Where the lent region sits in the fake RAM, and the filter's own pages.
const LENT: u64 = MEM_BASE + 0x8_0000;
const FILTER_PAGE: u64 = MEM_BASE + 0x9_0000;
const FILTER_RO_PAGE: u64 = MEM_BASE + 0x9_1000;
const BUF: u64 = 0x7000_0000;
const RO_BUF: u64 = 0x7000_1000;

impl Sys {
    /// Channel `ch` of `pd` may lend these regions (paddr, size, rights).
    fn lends(mut self, pd: usize, ch: usize, regions: &[(u64, u64, u8)]) -> Sys {
        let c = &mut self.pds[pd].channels[ch];
        c.lend_first = self.lends.len() as u16;
        c.lend_count = regions.len() as u16;
        for &(paddr, size, rights) in regions {
            self.lends.push(LendDesc { paddr, size, rights, _reserved: [0; 7] });
        }
        self
    }
    fn call_budget(mut self, us: u32) -> Sys {
        self.pds.last_mut().unwrap().call_budget_us = us;
        self
    }
}

impl Harness {
    /// Write lend descriptors into `pd`'s IPC buffer.
    fn put_lends(&mut self, pd: usize, lends: &[Lend]) {
        for (i, l) in lends.iter().enumerate() {
            let w = l.to_words();
            let at = ipc_buffer(pd) + abi::LEND_AREA.start as u64 + 16 * i as u64;
            self.m.at(at, 8).copy_from_slice(&w[0].to_le_bytes());
            self.m.at(at + 8, 8).copy_from_slice(&w[1].to_le_bytes());
        }
    }
    /// The running PD lends `lends` and calls channel 0.
    fn call_lending(&mut self, lends: &[Lend]) {
        let me = self.current();
        self.put_lends(me, lends);
        self.sys(sys::PP_CALL_LEND, &[0, MessageInfo::new(1, 0).raw(), 0, 0, 0, 0, lends.len() as u64]);
    }
    /// The running PD copies between grant `handle` and its buffer.
    fn grant_op(&mut self, nr: u64, handle: u64, offset: u64, buf: u64, len: u64) -> u64 {
        let me = self.current();
        self.sys(nr, &[handle, offset, buf, len]);
        self.x(me, 0)
    }
}

fn lend(index: u16, rights: u8, offset: u64, len: u32) -> Lend {
    Lend { lend: index, rights, _reserved: 0, len, offset }
}

/// A server (0) that may lend a filter (1, passive, above it) one region
/// read-write and another read-only; the filter has a writable and a
/// read-only page of its own, and the filter runs when the server calls.
fn lending_system() -> Harness {
    let mut h = Sys::new()
        .pd("server", 10)
        .pd("filter", 20)
        .passive()
        .channel(0, 0, 1, 0, true)
        .lends(0, 0, &[(LENT, 0x4000, GRANT_READ | GRANT_WRITE), (LENT + 0x4000, 0x1000, GRANT_READ)])
        .build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.m.pages.insert(BUF, (FILTER_PAGE, true));
    h.m.pages.insert(RO_BUF, (FILTER_RO_PAGE, false));
    for i in 0..0x5000u64 {
        h.m.at(LENT + i, 1)[0] = (i % 251) as u8;
    }
    h
}

#[test]
fn a_lending_call_gives_the_callee_exactly_the_lent_range_with_its_rights() {
    let mut h = lending_system();
    h.call_lending(&[lend(0, GRANT_READ, 0x1000, 0x1000), lend(0, GRANT_READ | GRANT_WRITE, 0x2000, 0x800)]);
    assert_eq!(h.current(), 1, "the filter serves the call");
    assert_eq!(h.x(1, 7), 1, "the call's lease is in x7");
    // Read grant 0 whole into the filter's page.
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), 0, BUF, 0x1000), 0);
    let expect: Vec<u8> = (0x1000..0x2000u64).map(|i| (i % 251) as u8).collect();
    assert_eq!(h.m.at(FILTER_PAGE, 0x1000), &expect[..]);
    // Grant 0 is read-only; grant 1 may be written, within its 0x800 bytes.
    h.m.at(FILTER_PAGE, 4).copy_from_slice(b"DATA");
    assert_eq!(h.grant_op(sys::GRANT_WRITE, grant_handle(1, 0), 0, BUF, 4), Error::NotPermitted as u64);
    assert_eq!(h.grant_op(sys::GRANT_WRITE, grant_handle(1, 1), 0x7fc, BUF, 4), 0);
    assert_eq!(h.m.at(LENT + 0x27fc, 4), b"DATA");
    assert_eq!(h.m.at(LENT + 0x2800, 1)[0], (0x2800 % 251) as u8, "nothing past the grant");
    assert_eq!(h.grant_op(sys::GRANT_WRITE, grant_handle(1, 1), 0x7fd, BUF, 4), Error::OutOfRange as u64);
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), 0x800, BUF, 0x801), Error::OutOfRange as u64);
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), u64::MAX, BUF, 2), Error::OutOfRange as u64);
    // Handles that name nothing: another index, another lease, junk bits.
    for bad in [grant_handle(1, 2), grant_handle(0, 0), grant_handle(2, 0), 1 << 40 | grant_handle(1, 0), u64::MAX] {
        assert_eq!(h.grant_op(sys::GRANT_READ, bad, 0, BUF, 1), Error::InvalidGrant as u64, "handle {bad:#x}");
    }
    // The reply ends the lease: the same handle is dead.
    h.sys_as(1, sys::REPLY_RECV, &[MessageInfo::new(0, 0).raw()]);
    assert_eq!(h.current(), 0);
    h.k.current = Some(1);
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), 0, BUF, 1), Error::InvalidGrant as u64);
}

#[test]
fn a_handle_kept_from_an_earlier_call_is_refused() {
    let mut h = lending_system();
    h.call_lending(&[lend(0, GRANT_READ, 0, 0x1000)]);
    h.sys_as(1, sys::REPLY_RECV, &[MessageInfo::new(0, 0).raw()]);
    h.call_lending(&[lend(0, GRANT_READ, 0x3000, 0x1000)]);
    assert_eq!(h.current(), 1);
    assert_eq!(h.x(1, 7), 2, "the next lease");
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), 0, BUF, 1), Error::InvalidGrant as u64);
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(2, 0), 0, BUF, 1), 0);
    assert_eq!(h.m.at(FILTER_PAGE, 1)[0], (0x3000 % 251) as u8);
}

#[test]
fn a_bad_lend_fails_the_call_and_lends_nothing() {
    let mut h = lending_system();
    let rw = GRANT_READ | GRANT_WRITE;
    for (lends, what) in [
        (vec![lend(1, rw, 0, 0x1000)], "write to a read-only region"),
        (vec![lend(0, GRANT_WRITE, 0, 0x1000)], "write without read"),
        (vec![lend(0, 4 | GRANT_READ, 0, 0x1000)], "unknown right"),
        (vec![lend(0, GRANT_READ, 0x3001, 0x1000)], "past the region's end"),
        (vec![lend(0, GRANT_READ, u64::MAX - 10, 0x100)], "wrapping range"),
        (vec![lend(0, GRANT_READ, 0, 0)], "empty range"),
        (vec![lend(2, GRANT_READ, 0, 1)], "no such region"),
        (vec![lend(0, GRANT_READ, 0, 1), lend(9, GRANT_READ, 0, 1)], "one bad among good"),
    ] {
        h.call_lending(&lends);
        assert_eq!(h.current(), 0, "{what}: the call did not happen");
        assert_eq!(h.x(0, 0), Error::InvalidLend as u64, "{what}");
        assert_eq!(h.k.pds[0].lease(), 0, "{what}: nothing lent");
        assert_eq!(h.state(1), State::Waiting);
    }
    // A lendable region outside RAM (a spec no tool would write) is refused.
    let mut h2 = Sys::new().pd("server", 10).pd("filter", 20).passive().channel(0, 0, 1, 0, true).lends(0, 0, &[(0x0900_0000, 0x1000, GRANT_READ)]).build();
    h2.settle();
    h2.k.make_runnable(0);
    h2.k.schedule();
    h2.call_lending(&[lend(0, GRANT_READ, 0, 0x1000)]);
    assert_eq!(h2.x(0, 0), Error::InvalidLend as u64, "device memory is never lent");
    let too_many = vec![lend(0, GRANT_READ, 0, 1); abi::MAX_LENDS + 1];
    h.put_lends(0, &too_many[..abi::MAX_LENDS]);
    h.sys(sys::PP_CALL_LEND, &[0, 0, 0, 0, 0, 0, abi::MAX_LENDS as u64 + 1]);
    assert_eq!(h.x(0, 0), Error::InvalidLend as u64, "more descriptors than the area holds");
    // A channel that lends nothing, or carries no PPC, refuses any lend.
    let mut h = Sys::new().pd("a", 10).pd("b", 20).passive().channel(0, 0, 1, 0, true).channel(0, 1, 1, 1, false).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.call_lending(&[lend(0, GRANT_READ, 0, 1)]);
    assert_eq!(h.x(0, 0), Error::InvalidLend as u64);
    h.sys(sys::PP_CALL_LEND, &[1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(h.x(0, 0), Error::NotPermitted as u64);
    // With no descriptors it is a plain call, whose callee gets lease 0.
    h.call_lending(&[]);
    assert_eq!(h.current(), 1);
    assert_eq!(h.x(1, 7), 0);
    for bad in [grant_handle(0, 0), grant_handle(1, 0)] {
        assert_eq!(h.grant_op(sys::GRANT_READ, bad, 0, BUF, 1), Error::InvalidGrant as u64);
    }
}

#[test]
fn a_grant_copy_touches_only_memory_the_callee_may_use_itself() {
    let mut h = lending_system();
    h.call_lending(&[lend(0, GRANT_READ | GRANT_WRITE, 0, 0x4000)]);
    let handle = grant_handle(1, 0);
    h.m.at(FILTER_PAGE + 0xff0, 0x10).fill(0xee);
    for (nr, buf, len, what) in [
        (sys::GRANT_READ, RO_BUF, 4, "into its read-only page"),
        (sys::GRANT_READ, BUF + 0xff8, 0x10, "running off its page into nothing"),
        (sys::GRANT_READ, 0x1234_0000, 4, "into no memory"),
        (sys::GRANT_WRITE, 0x1234_0000, 4, "from no memory"),
        (sys::GRANT_READ, u64::MAX - 2, 4, "a wrapping buffer"),
    ] {
        assert_eq!(h.grant_op(nr, handle, 0, buf, len), Error::InvalidBuffer as u64, "{what}");
    }
    assert!(h.m.at(FILTER_PAGE + 0xff0, 0x10).iter().all(|&b| b == 0xee), "a refused copy copies nothing");
    // From a read-only page into the grant is fine.
    h.m.at(FILTER_RO_PAGE, 2).copy_from_slice(b"ok");
    assert_eq!(h.grant_op(sys::GRANT_WRITE, handle, 0x10, RO_BUF, 2), 0);
    assert_eq!(h.m.at(LENT + 0x10, 2), b"ok");
    // A page outside RAM is refused even if mapped (device memory).
    h.m.pages.insert(0x7100_0000, (0x0900_0000, true));
    assert_eq!(h.grant_op(sys::GRANT_READ, handle, 0, 0x7100_0000, 4), Error::InvalidBuffer as u64);
    // Only the PD the lender calls holds its grants: the lender does not.
    h.sys_as(1, sys::REPLY_RECV, &[0]);
    assert_eq!(h.grant_op(sys::GRANT_READ, handle, 0, BUF, 4), Error::InvalidGrant as u64);
}

#[test]
fn a_copy_across_a_page_boundary_lands_in_each_page_where_it_is_mapped() {
    // Two buffers of two pages: one whose pages follow each other in
    // physical memory (copied in one run), one whose second page comes
    // first (copied page by page).
    const SPLIT: u64 = 0x7200_0000;
    const RUN: u64 = 0x7300_0000;
    let (low, high, run) = (MEM_BASE + 0xa_0000, MEM_BASE + 0xa_1000, MEM_BASE + 0xb_0000);
    let mut h = lending_system();
    h.m.pages.insert(SPLIT, (high, true));
    h.m.pages.insert(SPLIT + 0x1000, (low, true));
    h.m.pages.insert(RUN, (run, true));
    h.m.pages.insert(RUN + 0x1000, (run + 0x1000, true));
    h.call_lending(&[lend(0, GRANT_READ | GRANT_WRITE, 0, 0x4000)]);
    let handle = grant_handle(1, 0);
    let lent = |i: u64| (i % 251) as u8;
    for (buf, first, second) in [(SPLIT, high, low), (RUN, run, run + 0x1000)] {
        // 0x1000 bytes from grant offset 0x123 into the buffer at 0x800:
        // half into each page.
        h.m.at(first, 0x1000).fill(0xee);
        h.m.at(second, 0x1000).fill(0xee);
        assert_eq!(h.grant_op(sys::GRANT_READ, handle, 0x123, buf + 0x800, 0x1000), 0);
        let want = |from: u64| (from..from + 0x800).map(lent).collect::<Vec<u8>>();
        assert_eq!(h.m.at(first + 0x800, 0x800), &want(0x123)[..], "{buf:#x}: the first half");
        assert_eq!(h.m.at(second, 0x800), &want(0x923)[..], "{buf:#x}: the second half");
        assert!(h.m.at(first, 0x800).iter().all(|&b| b == 0xee), "{buf:#x}: nothing before it");
        assert!(h.m.at(second + 0x800, 0x800).iter().all(|&b| b == 0xee), "{buf:#x}: nothing after it");
        // And back: the buffer's two halves into the grant at 0x2000.
        h.m.at(first + 0x800, 0x800).fill(1);
        h.m.at(second, 0x800).fill(2);
        assert_eq!(h.grant_op(sys::GRANT_WRITE, handle, 0x2000, buf + 0x800, 0x1000), 0);
        assert!(h.m.at(LENT + 0x2000, 0x800).iter().all(|&b| b == 1), "{buf:#x}: the first half");
        assert!(h.m.at(LENT + 0x2800, 0x800).iter().all(|&b| b == 2), "{buf:#x}: the second half");
        assert_eq!(h.m.at(LENT + 0x3000, 1)[0], lent(0x3000), "{buf:#x}: nothing past it");
    }
}

#[test]
fn a_callee_that_faults_ends_the_lease_and_a_restart_holds_nothing_of_it() {
    let mut h = Sys::new()
        .pd("parent", 30)
        .pd("server", 10)
        .pd("filter", 20)
        .passive()
        .channel(1, 0, 2, 0, true)
        .lends(1, 0, &[(LENT, 0x1000, GRANT_READ)])
        .child(0, 2, 0)
        .build();
    h.settle();
    h.k.make_runnable(1);
    h.k.schedule();
    h.call_lending(&[lend(0, GRANT_READ, 0, 0x1000)]);
    assert_eq!(h.current(), 2);
    let info = FaultInfo { kind: FaultKind::UnmappedRead, address: 0, pc: 0, esr: 0 };
    h.k.fault(&mut h.m, 2, info);
    assert_eq!(h.k.pds[1].lease(), 0, "nothing lent any more");
    assert_eq!(h.x(1, 0), Error::CalleeFaulted as u64);
    // Restarted, the filter holds nothing of the earlier call.
    h.k.schedule();
    h.sys_as(0, sys::PD_RESTART, &[0]);
    h.sys_as(0, sys::RECV, &[]);
    h.sys_as(2, sys::RECV, &[]);
    h.k.current = Some(2);
    assert_eq!(h.grant_op(sys::GRANT_READ, grant_handle(1, 0), 0, BUF, 1), Error::InvalidGrant as u64);
}

// ---- call budgets ------------------------------------------------------

#[test]
fn a_callee_past_its_budget_is_stopped_and_its_caller_told() {
    let mut h = Sys::new()
        .pd("parent", 5)
        .pd("server", 10)
        .pd("filter", 20)
        .passive()
        .call_budget(500)
        .channel(1, 0, 2, 0, true)
        .child(0, 2, 3)
        .build();
    h.settle();
    h.k.make_runnable(1);
    h.k.schedule();
    h.sys_as(1, sys::PP_CALL, &[0, 0]);
    assert_eq!(h.current(), 2);
    assert_eq!(h.m.deadline, Some(1500), "the timer is set for now + 500 us");
    // A timer interrupt before the deadline changes nothing.
    h.m.clock = 1499;
    h.k.check_budgets(&mut h.m);
    assert_eq!(h.state(2), State::Runnable);
    // At the deadline the filter is stopped as a fault.
    h.m.clock = 1500;
    h.k.check_budgets(&mut h.m);
    h.k.schedule();
    assert_eq!(h.state(2), State::Faulted);
    assert!(h.m.console.contains("pd 'filter' faulted: ran past its call budget"), "{}", h.m.console);
    assert_eq!(h.current(), 1, "the caller runs again");
    assert_eq!(h.x(1, 0), Error::CalleeFaulted as u64);
    assert_eq!(h.m.deadline, None, "no deadline left");
    // The parent gets the fault and may restart the filter.
    h.sys_as(1, sys::RECV, &[]);
    assert_eq!(h.current(), 0);
    assert_eq!((h.x(0, 0), h.x(0, 1), h.x(0, 3)), (event::FAULT, 3, FaultKind::BudgetExceeded as u64));
}

#[test]
fn a_reply_within_the_budget_ends_it() {
    let mut h = Sys::new().pd("server", 10).pd("filter", 20).passive().call_budget(100).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    for round in 0..3 {
        h.sys_as(0, sys::PP_CALL, &[0, 0]);
        let at = h.m.clock + 100;
        assert_eq!(h.k.pds[1].deadline(), Some(at));
        h.m.clock += 99;
        h.sys_as(1, sys::REPLY_RECV, &[0]);
        assert_eq!(h.k.pds[1].deadline(), None, "round {round}");
        if round == 0 {
            assert_eq!(h.m.deadline, Some(at), "the timer, set by the first call, is left as it is");
        }
        h.k.settle_deadline(&mut h.m);
        assert_eq!(h.m.deadline, None, "round {round}: no timer left set to wake an idle CPU");
        h.m.clock += 1000;
        h.k.check_budgets(&mut h.m);
        assert_eq!(h.state(1), State::Waiting, "round {round}: not stopped after replying");
        assert_eq!(h.x(0, 0), 0);
    }
    assert_eq!(h.m.deadline, None);
}

#[test]
fn a_deadline_left_set_by_an_ended_call_moves_the_timer_to_the_running_one() {
    let mut h = Sys::new().pd("server", 10).pd("filter", 20).passive().call_budget(100).channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    let first = h.m.clock + 100;
    h.sys_as(1, sys::REPLY_RECV, &[0]);
    h.m.clock += 10;
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    let second = h.m.clock + 100;
    assert_eq!(h.m.deadline, Some(first), "a later deadline does not touch the timer");
    h.m.clock = first;
    h.k.check_budgets(&mut h.m);
    assert_eq!(h.state(1), State::Runnable, "the call that ended is not charged to this one");
    assert_eq!(h.m.deadline, Some(second));
    h.m.clock = second;
    h.k.check_budgets(&mut h.m);
    assert_eq!(h.state(1), State::Faulted, "the running call's own deadline still holds");
}

#[test]
fn a_pd_without_a_budget_is_never_stopped_for_time() {
    let mut h = Sys::new().pd("server", 10).pd("filter", 20).passive().channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    assert_eq!(h.m.deadline, None);
    h.m.clock += 1 << 40;
    h.k.check_budgets(&mut h.m);
    assert_eq!(h.state(1), State::Runnable);
}

// ---- a system that can never run again --------------------------------

#[test]
fn a_system_where_nothing_can_ever_run_is_reported_and_powered_off() {
    // a faults with no parent; b, passive, waits for a call only a could
    // make.
    let mut h = Sys::new().pd("a", 10).pd("b", 20).passive().channel(0, 0, 1, 0, true).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    assert!(!h.k.stuck(), "a runs");
    let info = FaultInfo { kind: FaultKind::Breakpoint, address: 0, pc: 0x20_0000, esr: 0 };
    h.k.fault(&mut h.m, 0, info);
    h.k.schedule();
    assert!(h.k.stuck());
    h.k.report_stuck(&mut h.m);
    assert_eq!(h.m.powered_off, Some(crate::stuck::STUCK_STATUS));
    assert!(h.m.console.contains("kernel: no protection domain can run again; powering off\n"), "{}", h.m.console);
    assert!(h.m.console.contains("kernel:   'a': faulted (no parent to restart it)\n"), "{}", h.m.console);
    assert!(h.m.console.contains("kernel:   'b': waits for a call nobody can make\n"), "{}", h.m.console);
}

#[test]
fn a_pd_waiting_on_an_interrupt_or_a_pending_deadline_keeps_the_system_alive() {
    let mut h = Sys::new()
        .pd("driver", 10)
        .irq(0, 3, 79)
        .pd("idle", 5)
        .pd("server", 20)
        .passive()
        .channel(0, 1, 2, 0, true)
        .build();
    h.settle();
    assert!(!h.k.stuck(), "a device may still interrupt the driver");
    // The driver blocks in a call instead, which the server keeps: no
    // interrupt can wake anyone.
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[1, 0]);
    h.sys_as(2, sys::RECV, &[]);
    assert!(matches!(h.state(0), State::Calling { callee: 2, queued: false }));
    assert!(h.k.stuck());
    h.k.budgets_running = 1;
    assert!(!h.k.stuck(), "a call deadline is still to come");
}

#[test]
fn a_parent_that_calls_its_child_faulted_before_the_parent_waited_is_refused_not_queued() {
    // (The child faults in its init right after its restart; the parent
    // calls it before it waits to hear of the fault. Queued, it would wait
    // for a restart only it could make.)
    let mut h = Sys::new().pd("server", 10).pd("filter", 20).passive().channel(0, 0, 1, 0, true).child(0, 1, 0).build();
    h.settle();
    h.k.make_runnable(0);
    h.k.schedule();
    h.sys_as(0, sys::PD_RESTART, &[0]);
    assert_eq!(h.current(), 1);
    h.k.fault(&mut h.m, 1, FaultInfo { kind: FaultKind::UndefinedInstruction, address: 0, pc: 0x20_0000, esr: 0 });
    h.k.schedule();
    h.sys_as(0, sys::PP_CALL, &[0, 0]);
    assert_eq!(h.state(0), State::Runnable);
    assert_eq!(h.x(0, 0), Error::CalleeFaulted as u64);
    // Then it hears of the fault when it waits.
    h.sys_as(0, sys::RECV, &[]);
    assert_eq!(h.x(0, 0), event::FAULT);
}

#[test]
fn a_reply_to_a_call_its_caller_no_longer_waits_for_still_ends_the_budget() {
    // The server's parent stops the server while the filter serves it.
    let mut h = Sys::new().pd("parent", 5).pd("server", 10).pd("filter", 20).passive().call_budget(100).channel(1, 0, 2, 0, true).child(0, 1, 0).build();
    h.settle();
    h.k.make_runnable(1);
    h.k.schedule();
    h.sys_as(1, sys::PP_CALL, &[0, 0]);
    h.k.stop_child(0, 0).unwrap();
    h.sys_as(2, sys::REPLY_RECV, &[0]);
    assert_eq!(h.k.pds[2].deadline(), None);
    h.m.clock += 1000;
    h.k.check_budgets(&mut h.m);
    assert_eq!(h.state(2), State::Waiting, "the idle filter is not stopped at the old deadline");
}
