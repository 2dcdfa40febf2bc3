//! Put the components' linker script (`pd.ld`) on the link search path of
//! every PD binary that uses this crate; `.cargo/config.toml` passes
//! `-Tpd.ld` for the component target.
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy("pd.ld", out.join("pd.ld")).unwrap();
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rerun-if-changed=pd.ld");
}
