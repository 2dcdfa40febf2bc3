//! Grants: memory lent for one protected procedure call.
//!
//! A PD may lend the callee of a PPC part of a region it holds the right to
//! lend (`<lend>` in the `<channel>`: the boot spec's `LendDesc`s of the
//! channel), without mapping that region itself: the filter server lends a
//! filter exactly one request's data. The callee reaches a lent range only
//! through kernel-checked copies (`GRANT_READ`, `GRANT_WRITE`) naming a
//! *grant handle*, in the manner of Hubris's leases:
//!
//! - Every descriptor of a `PP_CALL_LEND` is checked before the call
//!   starts: the region is one the channel lends, the rights are within the
//!   channel's, the range lies inside the region. One bad descriptor fails
//!   the whole call with `InvalidLend` and lends nothing.
//! - The grants live in the lender's record for exactly as long as its
//!   call is served: the reply, the callee's fault and the lender's stop
//!   all end them.
//! - A handle is `lease << 8 | index`. The kernel numbers each PD's lending
//!   calls (1, 2, 3, ..., never 0) and tells the callee the number with the
//!   call (`x7`), so a handle kept from an earlier call names a lease that
//!   is over: refused with `InvalidGrant`, as is any handle of a PD that
//!   serves no lending call.
//! - A copy touches the grant only within `[0, len)` and only with its
//!   rights, and the callee's own buffer only where the MMU lets the callee
//!   itself read it (to copy from) or write it (to copy into), in RAM.
//!
//! Why copies and not a window mapped for the call: the tool builds every
//! translation table and the kernel never edits one, which is what lets a
//! checker prove from the image what each PD can reach; a mapped window
//! would make a filter's reach change at every call and need TLB
//! maintenance on every reply and fault path. A misuse gets an error code
//! instead of a fault. The cost is the copy itself (the docs give the
//! figures).

use crate::machine::Machine;
use crate::pd::{Caller, Grant, PdId};
use crate::system::Kernel;
use abi::{Error, Lend, GRANT_READ, GRANT_WRITE, LEND_AREA, MAX_LENDS};
use bootspec::{ChannelDesc, LendDesc};

const PAGE: u64 = 4096;

impl Kernel {
    /// Check the `count` lend descriptors in `me`'s IPC buffer for a call
    /// on channel `c`, and hold them as `me`'s grants under its next lease
    /// number. On an error `me` lends nothing.
    pub(crate) fn lend(&mut self, m: &mut impl Machine, me: PdId, c: &ChannelDesc, count: usize) -> Result<(), Error> {
        self.pds[me].end_lease();
        if count > MAX_LENDS {
            return Err(Error::InvalidLend);
        }
        let lends: &[LendDesc] = self.lendable(c);
        let area = self.pds[me].desc().ipc_buffer_paddr + LEND_AREA.start as u64;
        let ram = self.ram.clone();
        let lent = &mut self.lent[me % abi::MAX_PDS];
        for i in 0..count {
            // One descriptor at a time: a call lends few.
            let mut d = [0u8; 16];
            m.read_phys(area + 16 * i as u64, &mut d);
            let word = |k: usize| u64::from_le_bytes(d[8 * k..8 * k + 8].try_into().unwrap_or_default());
            lent[i] = check_lend(&Lend::from_words([word(0), word(1)]), lends, &ram)?;
        }
        self.pds[me].start_lease(count as u8);
        Ok(())
    }

    /// The regions a call on channel `c` may lend.
    fn lendable(&self, c: &ChannelDesc) -> &'static [LendDesc] {
        let first = c.lend_first as usize;
        self.lends.get(first..first + c.lend_count as usize).unwrap_or(&[])
    }

    /// The lease a call from `caller` carries to its callee (`x7` of the
    /// PPC event): 0 if it lends nothing.
    #[inline(always)]
    pub(crate) fn lease_of(&self, caller: PdId) -> u64 {
        self.pds[caller].lease()
    }

    /// End whatever `pd` lent for its call.
    #[inline(always)]
    pub(crate) fn end_lease(&mut self, pd: PdId) {
        self.pds[pd].end_lease();
    }

    /// The grant `handle` names for `me`: one its current caller lent it.
    fn grant(&self, me: PdId, handle: u64) -> Result<Grant, Error> {
        let Caller::Pd(lender) = self.pds[me].caller() else { return Err(Error::InvalidGrant) };
        let (lease, index) = ((handle >> 8) as u32, (handle & 0xff) as usize);
        if handle >> 40 != 0 || !self.pds[lender].lends(lease, index) {
            return Err(Error::InvalidGrant);
        }
        Ok(self.lent[lender % abi::MAX_PDS][index])
    }

    /// `grant_read(handle, offset, dst, len)` (`into_grant` false) or
    /// `grant_write(handle, offset, src, len)` (`into_grant` true) by `me`.
    /// (Out of line, as `pp_call_lend` is: the other system calls' entry
    /// stays as short as without grants.)
    #[inline(never)]
    pub(crate) fn grant_copy(
        &mut self,
        m: &mut impl Machine,
        me: PdId,
        handle: u64,
        offset: u64,
        buf: u64,
        len: u64,
        into_grant: bool,
    ) -> Result<(), Error> {
        let g = self.grant(me, handle)?;
        let need = if into_grant { GRANT_WRITE } else { GRANT_READ };
        if g.rights & need == 0 {
            return Err(Error::NotPermitted);
        }
        match offset.checked_add(len) {
            Some(end) if end <= u64::from(g.len) => {}
            _ => return Err(Error::OutOfRange),
        }
        // The PD's side, a page at a time: translated with the PD's own
        // rights (writable to copy into it), checked to be RAM. Every page
        // is checked before anything is copied, so a bad buffer changes
        // nothing. A buffer whose pages follow each other in physical
        // memory too (a PD's own memory is laid out so) is copied in one
        // run: no second translation, no split at a page boundary.
        let end = buf.checked_add(len).ok_or(Error::InvalidBuffer)?;
        if len == 0 {
            return Ok(());
        }
        let first = self.user_ram(m, buf, !into_grant)?;
        let mut contiguous = true;
        let mut at = (buf & !(PAGE - 1)) + PAGE;
        while at < end {
            let pa = self.user_ram(m, at, !into_grant)?;
            contiguous &= pa == first.wrapping_add(at - buf);
            at += PAGE;
        }
        let ga = g.paddr + offset;
        if contiguous {
            copy_between(m, into_grant, ga, first, len);
            return Ok(());
        }
        let mut at = buf;
        while at < end {
            let chunk = ((at & !(PAGE - 1)) + PAGE).min(end) - at;
            let pa = self.user_ram(m, at, !into_grant)?;
            copy_between(m, into_grant, ga + (at - buf), pa, chunk);
            at += chunk;
        }
        Ok(())
    }

    /// The physical address of `vaddr` in the running PD, which must be
    /// RAM the PD may read (and write, with `write`).
    fn user_ram(&self, m: &mut impl Machine, vaddr: u64, write: bool) -> Result<u64, Error> {
        let pa = m.user_phys(vaddr, write).ok_or(Error::InvalidBuffer)?;
        // The page, not just the address, lies in RAM.
        let page = pa & !(PAGE - 1);
        if page < self.ram.start || page + PAGE > self.ram.end {
            return Err(Error::InvalidBuffer);
        }
        Ok(pa)
    }
}

/// Copy `len` bytes between grant memory at `ga` and the PD's at `pa`:
/// into the grant (`into_grant`) or out of it.
fn copy_between(m: &mut impl Machine, into_grant: bool, ga: u64, pa: u64, len: u64) {
    if into_grant {
        m.copy_phys(ga, pa, len as usize);
    } else {
        m.copy_phys(pa, ga, len as usize);
    }
}

/// The grant a lend descriptor asks for, if the channel allows it. The
/// lent range must be RAM (`ram`): the kernel copies through its map of RAM
/// (the tool refuses to lend anything else; this holds even if a spec
/// said otherwise).
fn check_lend(l: &Lend, lends: &[LendDesc], ram: &core::ops::Range<u64>) -> Result<Grant, Error> {
    let region = lends.get(l.lend as usize).ok_or(Error::InvalidLend)?;
    let rights_ok = l.rights & GRANT_READ != 0 && l.rights & !(GRANT_READ | GRANT_WRITE) == 0 && l.rights & !region.rights == 0;
    let in_region = l.offset.checked_add(u64::from(l.len)).is_some_and(|end| end <= region.size);
    let start = region.paddr.wrapping_add(l.offset);
    let in_ram = start >= ram.start && start.checked_add(u64::from(l.len)).is_some_and(|end| end <= ram.end);
    if !rights_ok || !in_region || !in_ram || l.len == 0 || l._reserved != 0 {
        return Err(Error::InvalidLend);
    }
    Ok(Grant { paddr: region.paddr + l.offset, len: l.len, rights: l.rights })
}
