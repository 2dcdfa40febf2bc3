//! `filter_faulty`: fault injection, after dm-flakey, dm-dust and QEMU's
//! blkdebug. Its `rules` param lists rules separated by `;`, each
//!
//! ```text
//! ACTION OPS BLOCKS [count=N] [after=N] [p=P] [status=io|invalid|nodevice]
//! ```
//!
//! - ACTION: `fail` (the request fails with `status`, I/O error by
//!   default, before it goes down), `corrupt` (a read that succeeded gets
//!   the first byte of its first block in range inverted, through a
//!   read-write grant), `fault` (the filter faults: an undefined
//!   instruction), `loop` (the filter spins until the kernel stops it at
//!   its call budget);
//! - OPS: `read`, `write`, `flush` or `any`, or several joined by `,`;
//! - BLOCKS: `A..B` (a request matches if it touches a block from A up to,
//!   not including, B), `A..` or `all` (flushes match any range);
//! - `after=N`: skip the first N matching requests; `count=N`: act at most
//!   N times; `p=P`: act with probability P (a decimal from 0 to 1), drawn
//!   from a generator seeded with the `seed` param (default 1), so a run
//!   is repeatable.
//!
//! The first rule that matches a request decides for it. Example:
//! `fail write 100..200 count=3; corrupt read 7..8; loop flush all after=1`.
//!
//! The rules' counts and the generator live in the filter's bounce buffer
//! (one page, [`Keep`]), which a restart (`on_fault="restart"`) does not
//! reload as it does the filter's own memory: `fault read 0..1 count=1`
//! faults once, not once a life.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use blk::filter::{Completion, Filter, Io, RequestData, Verdict};
use blk::{Op, Shared, Status, BLOCK_SIZE};
use heapless::Vec;

/// Rules one filter holds at most.
pub const MAX_RULES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Fail(Status),
    Corrupt,
    Fault,
    Loop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// Bit `op.raw()` per operation it applies to.
    pub ops: u8,
    pub first: u64,
    pub end: u64,
    pub after: u64,
    pub count: u64,
    /// Probability in parts per 2^32 (2^32 = always).
    pub chance: u64,
    /// Matching requests seen so far.
    seen: u64,
    /// Times it acted.
    acted: u64,
}

/// Why the rules do not read: the text of the console message.
pub type RuleError = &'static str;

fn ops_of(word: &str) -> Result<u8, RuleError> {
    let mut ops = 0;
    for op in word.split(',') {
        ops |= match op {
            "read" => 1 << Op::Read.raw(),
            "write" => 1 << Op::Write.raw(),
            "flush" => 1 << Op::Flush.raw() | 1 << Op::FlushCompleted.raw(),
            "any" => 0xff,
            _ => return Err("an operation is read, write, flush or any"),
        };
    }
    Ok(ops)
}

fn blocks_of(word: &str) -> Result<(u64, u64), RuleError> {
    if word == "all" {
        return Ok((0, u64::MAX));
    }
    let (a, b) = word.split_once("..").ok_or("blocks are A..B, A.. or all")?;
    let first = a.parse().map_err(|_| "a block range starts with a block number")?;
    let end = if b.is_empty() { u64::MAX } else { b.parse().map_err(|_| "a block range ends with a block number")? };
    if end <= first {
        return Err("a block range A..B needs A < B");
    }
    Ok((first, end))
}

/// A probability `0.25`, `1`, `0` as parts per 2^32.
fn chance_of(word: &str) -> Result<u64, RuleError> {
    const BAD: RuleError = "p is a probability from 0 to 1, like 0.25";
    let (whole, frac) = word.split_once('.').unwrap_or((word, ""));
    let whole: u64 = whole.parse().map_err(|_| BAD)?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    let mut digits = 0u64;
    for b in frac.bytes().chain(core::iter::repeat_n(b'0', 9 - frac.len())) {
        digits = digits * 10 + u64::from(b - b'0');
    }
    let billionths = whole * 1_000_000_000 + digits;
    if billionths > 1_000_000_000 {
        return Err(BAD);
    }
    Ok(billionths * (1 << 32) / 1_000_000_000)
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let mut words = text.split_whitespace();
        let action = match words.next().ok_or("an empty rule")? {
            "fail" => Action::Fail(Status::IoError),
            "corrupt" => Action::Corrupt,
            "fault" => Action::Fault,
            "loop" => Action::Loop,
            _ => return Err("a rule starts with fail, corrupt, fault or loop"),
        };
        let ops = ops_of(words.next().ok_or("a rule names its operations")?)?;
        let (first, end) = blocks_of(words.next().ok_or("a rule names its blocks")?)?;
        let mut rule = Rule { action, ops, first, end, after: 0, count: u64::MAX, chance: 1 << 32, seen: 0, acted: 0 };
        let mut given: [Option<&str>; 4] = [None; 4];
        for (i, option) in words.enumerate() {
            let (key, value) = option.split_once('=').ok_or("options are count=N, after=N, p=P or status=S")?;
            // (Each once: a second would silently win over the first.)
            if given.contains(&Some(key)) {
                return Err("an option given twice (count, after, p and status each at most once)");
            }
            if let Some(slot) = given.get_mut(i) {
                *slot = Some(key);
            }
            match key {
                "count" => rule.count = value.parse().map_err(|_| "count is a number")?,
                "after" => rule.after = value.parse().map_err(|_| "after is a number")?,
                "p" => rule.chance = chance_of(value)?,
                "status" => {
                    let Action::Fail(_) = rule.action else { return Err("only a fail rule has a status") };
                    rule.action = Action::Fail(match value {
                        "io" => Status::IoError,
                        "invalid" => Status::InvalidRequest,
                        "nodevice" => Status::NoDevice,
                        _ => return Err("status is io, invalid or nodevice"),
                    });
                }
                _ => return Err("options are count=N, after=N, p=P or status=S"),
            }
        }
        if action == Action::Corrupt && ops & !(1 << Op::Read.raw()) != 0 {
            return Err("corrupt applies to reads only");
        }
        Ok(rule)
    }

    /// Whether request `io` is one this rule is about.
    fn matches(&self, io: &Io) -> bool {
        let ops = self.ops & 1 << io.op.raw() != 0;
        let blocks = !io.op.moves_data() || (io.block < self.end && io.block.saturating_add(u64::from(io.count)) > self.first);
        ops && blocks
    }
}

/// What the filter asks of its PD for `fault` and `loop`: the host tests
/// record it, the PD does it.
pub trait Misbehave {
    /// Fault: never returns on the target.
    fn fault(&mut self);
    /// Spin until stopped: never returns on the target.
    fn spin(&mut self);
}

pub struct Faulty<M> {
    pub rules: Vec<Rule, MAX_RULES>,
    rng: u64,
    pub misbehave: M,
    keep: Option<Keep>,
}

/// Where the rules' counts and the generator outlive a restart: the
/// filter's bounce buffer, which is not part of its image. Words: a magic,
/// a fingerprint of the rules and seed (other rules start afresh), the
/// generator, then each rule's matches seen and times acted.
pub struct Keep {
    mem: Shared<'static>,
    fingerprint: u64,
}

/// The bytes the keep uses.
pub const KEEP_BYTES: usize = 8 * (3 + 2 * MAX_RULES);
const KEEP_MAGIC: u64 = u64::from_le_bytes(*b"FAULTY01");

impl Keep {
    fn word(&self, i: usize) -> u64 {
        self.mem.read::<u64>(8 * i).unwrap_or(0)
    }

    fn set(&self, i: usize, value: u64) {
        let _ = self.mem.write(8 * i, &value);
    }
}

/// FNV-1a over `parts`, each followed by a 0 byte.
fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// State word bit: corrupt this read in the post-op.
const CORRUPT: u64 = 1;

impl<M: Misbehave> Faulty<M> {
    /// The filter for the `rules` and `seed` params, keeping its counts
    /// in `keep` (its bounce buffer; at least [`KEEP_BYTES`]) if given: an
    /// earlier life's counts for the same rules go on from where they were.
    pub fn new(rules: &str, seed: Option<&str>, misbehave: M, keep: Option<Shared<'static>>) -> Result<Faulty<M>, RuleError> {
        let mut out = Vec::new();
        for text in rules.split(';').map(str::trim).filter(|t| !t.is_empty()) {
            out.push(Rule::parse(text)?).map_err(|_| "more than 8 rules")?;
        }
        let seed_value: u64 = match seed {
            Some(s) => s.trim().parse().map_err(|_| "seed is a number")?,
            None => 1,
        };
        let keep = keep.filter(|m| m.len() >= KEEP_BYTES).map(|mem| Keep { mem, fingerprint: fingerprint(&[rules.as_bytes(), seed.unwrap_or("").as_bytes()]) });
        let mut f = Faulty { rules: out, rng: seed_value | 1, misbehave, keep };
        f.resume();
        Ok(f)
    }

    /// Take an earlier life's counts from the keep, or start it afresh.
    fn resume(&mut self) {
        let Some(keep) = &self.keep else { return };
        if keep.word(0) == KEEP_MAGIC && keep.word(1) == keep.fingerprint {
            self.rng = keep.word(2) | 1;
            for (i, r) in self.rules.iter_mut().enumerate() {
                (r.seen, r.acted) = (keep.word(3 + 2 * i), keep.word(4 + 2 * i));
            }
            return;
        }
        keep.set(0, 0);
        keep.set(1, keep.fingerprint);
        for i in 2..KEEP_BYTES / 8 {
            keep.set(i, 0);
        }
        keep.set(2, self.rng);
        keep.set(0, KEEP_MAGIC);
    }

    /// Rule `i`'s counts and the generator into the keep (before the rule
    /// acts: a fault or a spin does not come back).
    fn save(&self, i: usize) {
        let Some(keep) = &self.keep else { return };
        keep.set(2, self.rng);
        keep.set(3 + 2 * i, self.rules[i].seen);
        keep.set(4 + 2 * i, self.rules[i].acted);
    }

    /// xorshift64: 32 random bits.
    fn draw(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng >> 32
    }

    /// The action for `io`, if a rule acts on it.
    fn decide(&mut self, io: &Io) -> Option<Action> {
        let i = self.rules.iter().position(|r| r.matches(io))?;
        let draw = if self.rules[i].chance < 1 << 32 { self.draw() } else { 0 };
        let r = &mut self.rules[i];
        r.seen += 1;
        let acts = !(r.seen <= r.after || r.acted >= r.count || draw >= r.chance);
        if acts {
            r.acted += 1;
        }
        let action = r.action;
        self.save(i);
        acts.then_some(action)
    }
}

impl<M: Misbehave> Filter for Faulty<M> {
    fn pre(&mut self, io: &Io, _: &dyn RequestData, state: &mut u64) -> Verdict {
        match self.decide(io) {
            Some(Action::Fail(status)) => Verdict::Fail(status),
            Some(Action::Corrupt) => {
                *state = CORRUPT;
                Verdict::Continue
            }
            Some(Action::Fault) => {
                self.misbehave.fault();
                Verdict::Fail(Status::IoError)
            }
            Some(Action::Loop) => {
                self.misbehave.spin();
                Verdict::Fail(Status::IoError)
            }
            None => Verdict::Continue,
        }
    }

    fn post(&mut self, io: &Io, done: Completion, data: &dyn RequestData) -> Verdict {
        if io.state & CORRUPT == 0 || done.status != Status::Ok {
            return Verdict::Continue;
        }
        // The first byte of the first block in the rule's range.
        let first = self.rules.iter().find(|r| r.action == Action::Corrupt && r.matches(io)).map_or(io.block, |r| r.first.max(io.block));
        let at = (first - io.block) * u64::from(BLOCK_SIZE);
        let mut byte = [0u8; 1];
        if data.read(io, at, &mut byte).is_err() || data.write(io, at, &[!byte[0]]).is_err() {
            // No read-write grant (`strata check` refuses a corrupt rule
            // without one): it cannot corrupt, and the read fails instead.
            return Verdict::Fail(Status::IoError);
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blk::filter::{DataError, Hook, NoData};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Record {
        faults: u32,
        spins: u32,
    }

    impl Misbehave for Record {
        fn fault(&mut self) {
            self.faults += 1;
        }
        fn spin(&mut self) {
            self.spins += 1;
        }
    }

    fn io(op: Op, block: u64, count: u32) -> Io {
        Io { hook: Hook::Pre, op, client: 0, position: 0, block, count, grant: 1, id: 0, state: 0, side: None }
    }

    fn pre(f: &mut Faulty<Record>, io: &Io) -> (Verdict, u64) {
        let mut state = 0;
        let v = f.pre(io, &NoData, &mut state);
        (v, state)
    }

    #[test]
    fn a_fail_rule_fails_matching_requests_only() {
        let mut f = Faulty::new("fail write 100..200 status=invalid", None, Record::default(), None).unwrap();
        assert_eq!(pre(&mut f, &io(Op::Write, 99, 2)).0, Verdict::Fail(Status::InvalidRequest), "touches block 100");
        assert_eq!(pre(&mut f, &io(Op::Write, 98, 2)).0, Verdict::Continue, "ends before it");
        assert_eq!(pre(&mut f, &io(Op::Write, 200, 1)).0, Verdict::Continue, "starts at its end");
        assert_eq!(pre(&mut f, &io(Op::Read, 150, 1)).0, Verdict::Continue, "another operation");
    }

    #[test]
    fn an_option_given_twice_is_refused() {
        assert_eq!(Rule::parse("fail any all count=0 count=5").err(), Some("an option given twice (count, after, p and status each at most once)"));
        assert!(Rule::parse("fail any all status=io status=invalid").is_err());
        assert!(Rule::parse("fail any all count=1 after=2 p=0.5 status=io").is_ok());
        assert_eq!(Rule::parse("fail any all =5").err(), Some("options are count=N, after=N, p=P or status=S"));
    }

    #[test]
    fn count_and_after_bound_when_a_rule_acts() {
        let mut f = Faulty::new("fail any all after=1 count=2", None, Record::default(), None).unwrap();
        let got: std::vec::Vec<bool> = (0..5).map(|b| pre(&mut f, &io(Op::Read, b, 1)).0 != Verdict::Continue).collect();
        assert_eq!(got, [false, true, true, false, false]);
        let mut f = Faulty::new("fail flush all", None, Record::default(), None).unwrap();
        assert_eq!(pre(&mut f, &io(Op::Flush, 0, 0)).0, Verdict::Fail(Status::IoError));
    }

    #[test]
    fn a_probability_is_repeatable_from_its_seed() {
        let run = |seed| {
            let mut f = Faulty::new("fail read all p=0.25", Some(seed), Record::default(), None).unwrap();
            (0..1000).filter(|&b| pre(&mut f, &io(Op::Read, b, 1)).0 != Verdict::Continue).count()
        };
        assert_eq!(run("7"), run("7"));
        assert!((200..300).contains(&run("7")), "about a quarter: {}", run("7"));
        assert_ne!(run("7"), run("8"));
        let mut never = Faulty::new("fail read all p=0", None, Record::default(), None).unwrap();
        assert!((0..100).all(|b| pre(&mut never, &io(Op::Read, b, 1)).0 == Verdict::Continue));
    }

    #[test]
    fn fault_and_loop_are_asked_of_the_pd() {
        let mut f = Faulty::new("fault read 5..6; loop write 5..6", None, Record::default(), None).unwrap();
        pre(&mut f, &io(Op::Read, 5, 1));
        pre(&mut f, &io(Op::Write, 5, 1));
        pre(&mut f, &io(Op::Write, 6, 1));
        assert_eq!((f.misbehave.faults, f.misbehave.spins), (1, 1));
    }

    /// A restart reloads the filter's memory, not its bounce buffer: a
    /// rule's counts and the generator go on from the earlier life; other
    /// rules, or another seed, start afresh.
    #[test]
    fn counts_outlive_a_restart_in_the_bounce_buffer() {
        let keep = Shared::from_words(Box::leak(vec![0u64; 512].into_boxed_slice()));
        let life = |rules: &str, seed: Option<&str>| Faulty::new(rules, seed, Record::default(), Some(keep)).unwrap();
        let mut first = life("fault read 0..1 count=1; fail read all p=0.5", Some("7"));
        pre(&mut first, &io(Op::Read, 0, 1));
        assert_eq!(first.misbehave.faults, 1);
        let draws: std::vec::Vec<bool> = (0..4).map(|b| pre(&mut first, &io(Op::Read, 1 + b, 1)).0 != Verdict::Continue).collect();
        // The next life: the fault rule has acted its once; the random
        // rule draws on from where the first life stopped.
        let mut second = life("fault read 0..1 count=1; fail read all p=0.5", Some("7"));
        pre(&mut second, &io(Op::Read, 0, 1));
        assert_eq!(second.misbehave.faults, 0, "it faulted once, in the first life");
        let mut fresh = life("fault read 0..1 count=1; fail read all p=0.5", Some("7"));
        let mut unkept = Faulty::new("fault read 0..1 count=1; fail read all p=0.5", Some("7"), Record::default(), None).unwrap();
        pre(&mut unkept, &io(Op::Read, 0, 1));
        let all: std::vec::Vec<bool> = (0..8).map(|b| pre(&mut unkept, &io(Op::Read, 1 + b, 1)).0 != Verdict::Continue).collect();
        let next: std::vec::Vec<bool> = (0..4).map(|b| pre(&mut fresh, &io(Op::Read, 5 + b, 1)).0 != Verdict::Continue).collect();
        assert_eq!([draws, next].concat(), all, "one sequence of draws across lives");
        // Other rules start afresh.
        let mut other = life("fault read 0..1 count=1", Some("7"));
        pre(&mut other, &io(Op::Read, 0, 1));
        assert_eq!(other.misbehave.faults, 1);
    }

    struct Block(RefCell<std::vec::Vec<u8>>);

    impl RequestData for Block {
        fn read(&self, _: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
            out.copy_from_slice(&self.0.borrow()[offset as usize..offset as usize + out.len()]);
            Ok(())
        }
        fn write(&self, _: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
            self.0.borrow_mut()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn a_corrupt_rule_inverts_one_byte_of_a_read_that_succeeded() {
        let mut f = Faulty::new("corrupt read 7..8", None, Record::default(), None).unwrap();
        let read = io(Op::Read, 6, 2);
        let (v, state) = pre(&mut f, &read);
        assert_eq!((v, state), (Verdict::Continue, CORRUPT));
        let data = Block(RefCell::new(vec![0x11; 2 * 4096]));
        let post = Io { hook: Hook::Post, state, ..read };
        assert_eq!(f.post(&post, Completion { status: Status::Ok, count: 2 }, &data), Verdict::Continue);
        let d = data.0.borrow();
        assert_eq!((d[4096], d[0], d[4097]), (!0x11, 0x11, 0x11), "block 7's first byte, nothing else");
        drop(d);
        let failed = Block(RefCell::new(vec![0x11; 2 * 4096]));
        f.post(&post, Completion { status: Status::IoError, count: 0 }, &failed);
        assert!(failed.0.borrow().iter().all(|&b| b == 0x11), "a failed read is left alone");
        assert_eq!(f.post(&post, Completion { status: Status::Ok, count: 2 }, &NoData), Verdict::Fail(Status::IoError), "without a grant it says so");
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (rules, why) in [
            ("explode read all", "a rule starts with fail, corrupt, fault or loop"),
            ("fail", "a rule names its operations"),
            ("fail sideways all", "an operation is read, write, flush or any"),
            ("fail read", "a rule names its blocks"),
            ("fail read 9..3", "a block range A..B needs A < B"),
            ("fail read x..3", "a block range starts with a block number"),
            ("fail read all p=1.5", "p is a probability from 0 to 1, like 0.25"),
            ("fail read all colour=red", "options are count=N, after=N, p=P or status=S"),
            ("corrupt write all", "corrupt applies to reads only"),
            ("loop read all status=io", "only a fail rule has a status"),
            ("fail read all;fail read all;fail read all;fail read all;fail read all;fail read all;fail read all;fail read all;fail read all", "more than 8 rules"),
        ] {
            assert_eq!(Faulty::new(rules, None, Record::default(), None).err(), Some(why), "{rules}");
        }
        assert_eq!(Faulty::new("", Some("x"), Record::default(), None).err(), Some("seed is a number"));
    }
}
