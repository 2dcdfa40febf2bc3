//! The system description: `system.xml` in the seL4 Microkit System
//! Description Format (SDF), plus a few extensions, read into a model and
//! checked with the Microkit's rules.
//!
//! The flow is `text -> read -> validate -> model`:
//!
//! 1. [`parse`] reads the XML (module `parse`): syntax, then every element
//!    and attribute (unknown ones are errors), each value on its own
//!    (integers, booleans, ranges, alignment), then the names that elements
//!    use to refer to each other.
//! 2. If reading found nothing wrong, module `validate` checks the rules
//!    that relate elements: unique names and ids, non-overlapping maps,
//!    PPC priorities, the PD limit, and so on.
//!
//! Each phase reports every problem it finds, as [`Error`]s with a
//! `file:line:col`, sorted by position; the next phase runs only if the
//! previous one found none. A [`SystemDescription`] handed out therefore
//! obeys all rules, and later stages (layout, boot spec) can rely on them.
//!
//! Extensions over the Microkit SDF: `can_power_off` on a protection
//! domain. This crate is pure host code and never panics on any input.
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

/// Read the file at `path` and [`parse`] it. A file that cannot be read
/// gives one error at line 0, column 0.
pub fn parse_file(path: &Path) -> Result<SystemDescription, Vec<Error>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(xml) => parse(&file, &xml),
        Err(err) => Err(vec![Error {
            message: format!("cannot read system description '{file}': {err}"),
            file,
            line: 0,
            col: 0,
        }]),
    }
}
