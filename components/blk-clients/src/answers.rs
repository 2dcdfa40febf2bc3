//! The verify client's account of the answers it gets, apart from the PD so
//! the host tests it: each request of a phase answered once, to an id the
//! phase sent, and a read or write that succeeded moving the one block it
//! asked for. A server or driver that answered twice, answered for a
//! request never sent, or claimed success without moving the block would
//! otherwise pass unnoticed (the counts would still add up).

use blk::{Response, Status};
use core::fmt;

/// Requests a phase sends at most (their ids are 0, 1, ...).
pub const MAX_REQUESTS: usize = 256;

/// An answer that does not fit what was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stray {
    /// An id this phase has not sent.
    Unknown,
    /// A second answer to one request.
    Twice,
    /// Success, but a block count other than the one block asked for.
    Count(u32),
}

impl fmt::Display for Stray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stray::Unknown => f.write_str("never sent"),
            Stray::Twice => f.write_str("answered twice"),
            Stray::Count(n) => write!(f, "succeeded with {n} blocks moved, not 1"),
        }
    }
}

/// Which requests of the current phase were answered.
pub struct Answers {
    answered: [u64; MAX_REQUESTS / 64],
}

impl Default for Answers {
    fn default() -> Self {
        Answers::new()
    }
}

impl Answers {
    pub const fn new() -> Answers {
        Answers { answered: [0; MAX_REQUESTS / 64] }
    }

    /// A new phase: nothing answered yet.
    pub fn restart(&mut self) {
        self.answered = [0; MAX_REQUESTS / 64];
    }

    /// Account for `r`, an answer to one of the single-block requests with
    /// ids `0..sent`. `Ok` if it is the first answer to one of them and
    /// says what it did (whatever its status). `Count` is a first answer
    /// too, a wrong one: its request is answered all the same. `Unknown`
    /// and `Twice` are no answer to anything and change nothing.
    pub fn take(&mut self, r: &Response, sent: u64) -> Result<(), Stray> {
        let id = r.id as usize;
        if r.id as u64 >= sent || id >= MAX_REQUESTS {
            return Err(Stray::Unknown);
        }
        let (word, bit) = (id / 64, 1u64 << (id % 64));
        if self.answered[word] & bit != 0 {
            return Err(Stray::Twice);
        }
        self.answered[word] |= bit;
        if r.status() == Ok(Status::Ok) && r.count != 1 {
            return Err(Stray::Count(r.count));
        }
        Ok(())
    }
}

impl Stray {
    /// Whether the answer was its request's one answer (a wrong one), so
    /// the request is no longer in flight.
    pub fn answered(&self) -> bool {
        matches!(self, Stray::Count(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sent_request_is_answered_once() {
        let mut a = Answers::new();
        assert_eq!(a.take(&Response::new(0, Status::Ok, 1), 2), Ok(()));
        assert_eq!(a.take(&Response::new(0, Status::Ok, 1), 2), Err(Stray::Twice));
        assert_eq!(a.take(&Response::new(2, Status::Ok, 1), 2), Err(Stray::Unknown));
        assert_eq!(a.take(&Response::new(u32::MAX, Status::Ok, 1), u64::MAX), Err(Stray::Unknown));
        // A failure moves nothing and says so; it is still its answer.
        assert_eq!(a.take(&Response::new(1, Status::IoError, 0), 2), Ok(()));
        assert_eq!(a.take(&Response::new(1, Status::Ok, 1), 2), Err(Stray::Twice));
        a.restart();
        assert_eq!(a.take(&Response::new(0, Status::Ok, 1), 2), Ok(()));
    }

    #[test]
    fn a_success_must_move_the_block() {
        let mut a = Answers::new();
        let wrong = a.take(&Response::new(5, Status::Ok, 0), 10);
        assert_eq!(wrong, Err(Stray::Count(0)));
        // It was request 5's answer, a wrong one: no other is to come.
        assert!(wrong.unwrap_err().answered());
        assert_eq!(a.take(&Response::new(5, Status::Ok, 1), 10), Err(Stray::Twice));
        assert_eq!(a.take(&Response::new(6, Status::Ok, 2), 10), Err(Stray::Count(2)));
        assert!(!Stray::Twice.answered() && !Stray::Unknown.answered());
    }

    #[test]
    fn the_last_id_of_a_full_phase_is_known() {
        let mut a = Answers::new();
        let last = MAX_REQUESTS as u32 - 1;
        assert_eq!(a.take(&Response::new(last, Status::Ok, 1), MAX_REQUESTS as u64), Ok(()));
        assert_eq!(a.take(&Response::new(last, Status::Ok, 1), MAX_REQUESTS as u64), Err(Stray::Twice));
    }
}
