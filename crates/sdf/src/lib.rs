//! The system description: `system.xml` in the seL4 Microkit System
//! Description Format (SDF), plus a few extensions, read into a model and
//! checked with the Microkit's rules.
//!
//! The flow is `text -> read -> validate -> model`:
//!
//! 1. Reading (module `parse`, public as [`read`]): syntax, then every
//!    element and attribute (unknown ones are errors), each value on its own
//!    (integers, booleans, ranges, alignment, perms letters), what must hold
//!    within one element (budget <= period, the shape of a policy), then the
//!    names that elements use to refer to each other.
//! 2. If reading found nothing wrong, validation (module `validate`) checks
//!    the rules that relate elements: unique names and ids, non-overlapping
//!    maps, no writable and executable map, PPC priorities, the PD limit, a
//!    region or interrupt claimed by one device at most, and so on.
//!
//! Each phase reports every problem it finds, as [`Error`]s with a
//! `file:line:col`, sorted by position; the next phase runs only if the
//! previous one found none. A [`SystemDescription`] handed out by [`parse`]
//! therefore obeys all rules, and later stages (layout, boot spec) can rely
//! on them. [`read`] stops after reading: its model resolves every name (all
//! indices are in range, all names exist) but may break validation rules.
//! The isolation verifier uses it, so that a system that breaks a rule can
//! still be analysed and the violation reported with a witness.
//!
//! # Extensions over the Microkit SDF
//!
//! - `can_power_off="true"` on a `protection_domain`: the PD may power the
//!   machine off.
//! - `<device>`, a child of `<system>`: a piece of hardware and the PDs that
//!   own it. The verifier checks that only owners map its memory and
//!   receive its interrupts, and that all device memory belongs to a device.
//!
//!   ```xml
//!   <device name="rtc" owner="rtc_driver">
//!       <region mr="rtc_regs"/>     <!-- a memory_region: MMIO or DMA -->
//!       <interrupt irq="34"/>       <!-- an SPI, as in <irq irq=".."/> -->
//!   </device>
//!   ```
//!
//!   `name` and `owner` are required; `owner` lists one or more protection
//!   domains separated by spaces or commas (each once). A device declares at
//!   least one `<region>` or `<interrupt>`. Reading checks that the names
//!   resolve and the interrupt numbers are valid SPIs; validation that
//!   device names are unique and that no region and no interrupt is claimed
//!   twice (by two devices, or twice by one).
//! - `<policy>`, a child of `<system>`: an information-flow property for the
//!   verifier (`strata verify`). `name` (unique) and `kind` are required;
//!   `kind` is one of:
//!
//!   - `no-flow`: no information flows from any `<from>` to any `<to>`.
//!   - `mediated`, with `via="pd ..."` (one or more PDs, separated by spaces
//!     or commas): every flow from a `<from>` to a `<to>` passes through at
//!     least one of the `via` PDs. A mediator is neither a source nor a
//!     target.
//!   - `isolated`, with `pd=".."`: that PD shares no channel, no parent or
//!     child link, and no memory region that it or the other side maps
//!     writable, with any PD but those listed in `<allow pd=".."/>`
//!     (zero or more; not the PD itself).
//!
//!   `<from>` and `<to>` (at least one of each, in `no-flow` and `mediated`
//!   only) carry exactly one of `pd=".."`, `region=".."` (a memory region)
//!   and `device=".."`; a policy may not name one entity both as a source
//!   and as a target. `via` belongs only on `mediated`, `pd` and `<allow>`
//!   only on `isolated`.
//!
//!   ```xml
//!   <policy name="client1-never-sees-disk0" kind="no-flow">
//!       <from pd="client1"/> <to device="disk0"/> <to region="cache0"/>
//!   </policy>
//!   <policy name="disk-writes-encrypted" kind="mediated" via="encrypt">
//!       <from pd="app"/> <to region="dma"/>
//!   </policy>
//!   <policy name="vault-alone" kind="isolated" pd="vault">
//!       <allow pd="vault_client"/>
//!   </policy>
//!   ```
//!
//! This crate is pure host code and never panics on any input.
#![forbid(unsafe_code)]

mod error;
mod model;
mod parse;
mod validate;
mod values;

use std::path::Path;

pub use error::Error;
pub use model::*;

/// Parse and validate the system description `xml`. `file` is the path as
/// it should appear in messages.
///
/// On failure, returns every error of the first phase that found any,
/// sorted by position.
pub fn parse(file: &str, xml: &str) -> Result<SystemDescription, Vec<Error>> {
    let sd = parse::read(file, xml)?;
    validate::validate(&sd)?;
    Ok(sd)
}

/// Only read the system description `xml`: syntax, elements, attributes,
/// values and names, without the validation rules that relate elements
/// (see the crate documentation). For analysis tools that must see a
/// system even when it breaks a rule; everything else uses [`parse`].
pub fn read(file: &str, xml: &str) -> Result<SystemDescription, Vec<Error>> {
    parse::read(file, xml)
}

/// Read the file at `path` and [`parse`] it. A file that cannot be read
/// gives one error at line 0, column 0.
pub fn parse_file(path: &Path) -> Result<SystemDescription, Vec<Error>> {
    with_file(path, parse)
}

/// Read the file at `path` and [`read`] it (no validation rules). A file
/// that cannot be read gives one error at line 0, column 0.
pub fn read_file(path: &Path) -> Result<SystemDescription, Vec<Error>> {
    with_file(path, read)
}

fn with_file(
    path: &Path,
    phase: fn(&str, &str) -> Result<SystemDescription, Vec<Error>>,
) -> Result<SystemDescription, Vec<Error>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(xml) => phase(&file, &xml),
        Err(err) => Err(vec![Error {
            message: format!("cannot read system description '{file}': {err}"),
            file,
            line: 0,
            col: 0,
        }]),
    }
}
