//! The filter PD shell on the target.

use blk::config::{name_str, FilterConfig};
use blk::filter::{self, CallPage, DataError, Filter, Io, RequestData, SetupCall, SetupStep, Verdict};
use blk::Status;
use microkit::{debug_println, get_mr, set_mr, Channel, Grant, Handler, Infallible, MessageInfo};

microkit::var!(blk_filter_config: FilterConfig = FilterConfig::UNSET);

/// This filter's record, as the tool patched it.
pub fn config() -> &'static FilterConfig {
    blk_filter_config()
}

/// Print one of the filter's messages on the console: `<filter>: disk
/// <disk>: <message>`.
pub fn say(args: core::fmt::Arguments) {
    let cfg = config();
    debug_println!("{}: disk {}: {}", name_str(&cfg.name), name_str(&cfg.disk), args);
}

/// Memory the tool mapped in this PD, `size` bytes at `vaddr`.
fn mapped(vaddr: u64, size: u64) -> Option<blk::Shared<'static>> {
    // SAFETY: the tool maps [vaddr, vaddr + size) read-write in this PD for
    // its whole life (its record says where, and callers pass the record's
    // values); it is reached only through `Shared`'s checked copies.
    #[allow(unsafe_code)]
    unsafe {
        blk::Shared::mapped(vaddr, size)
    }
}

/// This filter's bounce buffer (its substitute data), if it has one.
pub fn bounce() -> Option<blk::Shared<'static>> {
    let b = &config().bounce;
    (b.size > 0).then(|| mapped(b.vaddr, b.size)).flatten()
}

/// Request data reached through the grants of the upcall being served.
pub struct Grants;

impl Grants {
    fn grant(io: &Io) -> Result<Grant, DataError> {
        match io.grant {
            0 => Err(DataError::NoAccess),
            g => Ok(Grant::lent(g as usize - 1)),
        }
    }
}

fn data_error(e: microkit::Error) -> DataError {
    match e {
        microkit::Error::NotPermitted => DataError::ReadOnly,
        microkit::Error::OutOfRange => DataError::OutOfRange,
        e => DataError::Refused(e as u64),
    }
}

impl RequestData for Grants {
    fn read(&self, io: &Io, offset: u64, out: &mut [u8]) -> Result<(), DataError> {
        Self::grant(io)?.read(offset, out).map_err(data_error)
    }

    fn write(&self, io: &Io, offset: u64, data: &[u8]) -> Result<(), DataError> {
        Self::grant(io)?.write(offset, data).map_err(data_error)
    }
}

/// A filter that could not start: fails every request.
struct Broken;

impl Filter for Broken {
    fn pre(&mut self, _: &Io, _: &dyn RequestData, _: &mut u64) -> Verdict {
        Verdict::Fail(Status::IoError)
    }
    fn post(&mut self, _: &Io, _: blk::filter::Completion, _: &dyn RequestData) -> Verdict {
        Verdict::Fail(Status::IoError)
    }
    fn setup(&mut self, _: &SetupCall, _: Option<&blk::Shared<'_>>) -> SetupStep {
        SetupStep::Fail(Status::IoError)
    }
}

/// A filter PD: the filter and its call page.
pub struct FilterPd<F> {
    filter: Option<F>,
    page: Option<CallPage<'static>>,
    bounce: Option<blk::Shared<'static>>,
}

impl<F: Filter> FilterPd<F> {
    /// Read the record and make the filter with `make`; an error (what is
    /// wrong, for the console) leaves a PD that fails every request.
    pub fn start(make: impl FnOnce(&'static FilterConfig) -> Result<F, &'static str>) -> FilterPd<F> {
        let cfg = config();
        if !cfg.is_set() {
            debug_println!("{}: not configured (declare it with <filter> in a <disk>)", microkit::pd_name());
            return FilterPd { filter: None, page: None, bounce: None };
        }
        let page = mapped(cfg.calls.vaddr, cfg.calls.size).and_then(CallPage::new);
        let filter = match make(cfg) {
            Ok(f) => Some(f),
            Err(why) => {
                debug_println!("{}: cannot start: {}; every request of disk {} that reaches it fails", name_str(&cfg.name), why, name_str(&cfg.disk));
                None
            }
        };
        FilterPd { filter, page, bounce: bounce() }
    }
}

impl<F: Filter> Handler for FilterPd<F> {
    type Error = Infallible;

    fn protected(&mut self, _channel: Channel, msg: MessageInfo) -> Result<MessageInfo, Infallible> {
        let Some(page) = &self.page else { return Ok(MessageInfo::new(0, 0)) };
        if msg.label() == filter::label::SETUP {
            let call = SetupCall::from_mrs(core::array::from_fn(get_mr));
            let step = match &mut self.filter {
                Some(f) => f.setup(&call, self.bounce.as_ref()),
                None => Broken.setup(&call, None),
            };
            for (i, mr) in step.mrs().into_iter().enumerate() {
                set_mr(i, mr);
            }
            return Ok(MessageInfo::new(filter::label::DONE, 4));
        }
        if msg.label() == filter::label::REPORT {
            if let Some(f) = &mut self.filter {
                f.report();
            }
            return Ok(MessageInfo::new(filter::label::DONE, 0));
        }
        if msg.label() != filter::label::UPCALL {
            return Ok(MessageInfo::new(0, 0));
        }
        let n = get_mr(0) as usize;
        let served = match &mut self.filter {
            Some(f) => filter::serve(f, page, n, &Grants),
            None => filter::serve(&mut Broken, page, n, &Grants),
        };
        set_mr(0, served as u64);
        Ok(MessageInfo::new(filter::label::DONE, 1))
    }
}
