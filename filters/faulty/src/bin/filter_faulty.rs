//! The fault-injection filter PD.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod pd {
    use filter_faulty::{Faulty, Misbehave};

    // (A page of bounce buffer: the rules' counts, which a restart keeps.)
    blk::filter_manifest!("hooks=pre,post", "ops=read,write,flush", "params=rules,seed", "links=0", "bounce=4096");

    /// `fault` and `loop` for real.
    pub struct Real;

    impl Misbehave for Real {
        fn fault(&mut self) {
            // SAFETY: an undefined instruction: the kernel stops this PD
            // with a fault, which is the point.
            #[allow(unsafe_code)]
            unsafe {
                core::arch::asm!("udf #0xfa")
            };
        }

        fn spin(&mut self) {
            // Until the kernel stops this PD at its call budget.
            loop {
                core::hint::spin_loop();
            }
        }
    }

    #[microkit::protection_domain]
    fn init() -> blk_filter::FilterPd<Faulty<Real>> {
        blk_filter::FilterPd::start(|cfg| Faulty::new(cfg.param("rules").unwrap_or(""), cfg.param("seed"), Real, blk_filter::bounce()))
    }
}
