//! The shell every filter PD runs around its logic: a filter program is a
//! [`blk::filter::Filter`], a manifest and a few lines:
//!
//! ```ignore
//! blk::filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=", "bounce=0");
//!
//! #[microkit::protection_domain]
//! fn init() -> blk_filter::FilterPd<MyFilter> {
//!     blk_filter::FilterPd::start(|cfg| Ok(MyFilter::new(cfg)))
//! }
//! ```
//!
//! It reads the filter's record (`blk_filter_config`: its name, disk,
//! place in the chain, params, call page and bounce buffer), serves each
//! upcall by running the filter on every entry of the call page
//! ([`blk::filter::serve`]), and gives the filter the request data through
//! the grants of the call ([`Grants`]). A filter that cannot start (a bad
//! param) says why and then fails every request it is given.
#![no_std]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod pd;

#[cfg(target_os = "none")]
pub use pd::*;
