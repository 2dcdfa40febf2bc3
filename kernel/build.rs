//! Link the bare-metal kernel with its linker script; host builds (unit
//! tests) need nothing.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/kernel.ld");
    }
    println!("cargo:rerun-if-changed=kernel.ld");
}
