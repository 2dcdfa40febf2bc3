//! The benchmark client (make bench): instructions per 4 KiB request.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use blk_clients::bench::Bench;
    use microkit::{protection_domain, ChannelSet, Handler, Infallible};

    /// `None` when the client has no configuration; it then does nothing.
    struct Pd(Option<Bench>);

    #[protection_domain]
    fn init() -> Pd {
        Pd(Bench::new())
    }

    impl Handler for Pd {
        type Error = Infallible;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), Infallible> {
            if let Some(b) = self.0.as_mut() {
                b.notified(channels)?;
            }
            Ok(())
        }
    }
}
