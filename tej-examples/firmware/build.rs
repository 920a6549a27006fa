//! Puts `memory.x` where the linker (through cortex-m-rt's `link.x`) finds it:
//! the `memory.x` of the package being built (tej-firmware-net builds with
//! this script too). Cargo runs it again whenever it changes.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
