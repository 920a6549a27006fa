//! The two QEMU firmwares, built for the tests that boot them:
//! `tej-firmware` (`tej-examples/firmware`, UART) and `tej-firmware-net`
//! (`tej-examples/firmware-net`, LAN9118), each with `cargo build
//! --release` in its folder, into `<workspace>/target/<folder>`.
//!
//! The first test to ask for either builds both at once: the builds are
//! mostly one core's work each, and the second suite then finds its
//! firmware up to date. Where `qemu-system-arm` or the
//! `thumbv7em-none-eabihf` target is missing, [`elf`] prints
//! `SKIP: <reason>` and gives `None`, unless `TEJ_REQUIRE_FIRMWARE=1` or
//! `TEJ_REQUIRE_INTEROP=1` (as in CI) make that a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::workspace_root;

/// The emulator both firmwares run in.
pub const QEMU: &str = "qemu-system-arm";
/// The target both firmwares are built for.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// Which firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// `tej-firmware`: TEJ over UART0.
    Uart = 0,
    /// `tej-firmware-net`: TEJ over smoltcp on the LAN9118.
    Net = 1,
}

impl Firmware {
    /// Both, in the order of their discriminants.
    const ALL: [Firmware; 2] = [Firmware::Uart, Firmware::Net];

    fn folder(self) -> &'static str {
        match self {
            Firmware::Uart => "firmware",
            Firmware::Net => "firmware-net",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Firmware::Uart => "tej-firmware",
            Firmware::Net => "tej-firmware-net",
        }
    }
}

/// Why a firmware is not there.
#[derive(Debug, Clone)]
enum Missing {
    /// QEMU or the target is not installed.
    Skip(String),
    /// Cargo failed: its output.
    Build(String),
}

/// The firmware's ELF; `None` after printing `SKIP: <reason>` when QEMU or
/// the target is missing (a panic instead when the firmware tests are
/// required). A failing build always panics.
pub fn elf(which: Firmware) -> Option<PathBuf> {
    static BUILT: OnceLock<Vec<Result<PathBuf, Missing>>> = OnceLock::new();
    let built = BUILT.get_or_init(build_both);
    match &built[which as usize] {
        Ok(elf) => Some(elf.clone()),
        Err(Missing::Build(output)) => panic!("building {} failed:\n{output}", which.binary()),
        Err(Missing::Skip(reason)) => {
            if required() {
                panic!("the firmware tests are required (TEJ_REQUIRE_FIRMWARE or TEJ_REQUIRE_INTEROP) but cannot run: {reason}");
            }
            // Straight to stderr: the harness captures `eprintln!`.
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            let _ = writeln!(std::io::stderr(), "SKIP: {reason} (in {test})");
            None
        }
    }
}

/// Whether CI asked for the firmware tests to run, not skip.
pub fn required() -> bool {
    ["TEJ_REQUIRE_FIRMWARE", "TEJ_REQUIRE_INTEROP"]
        .iter()
        .any(|name| {
            matches!(
                std::env::var(name).as_deref().map(str::trim),
                Ok("1") | Ok("true") | Ok("yes")
            )
        })
}

fn build_both() -> Vec<Result<PathBuf, Missing>> {
    if let Err(reason) = prerequisites() {
        return Firmware::ALL
            .iter()
            .map(|_| Err(Missing::Skip(reason.clone())))
            .collect();
    }
    std::thread::scope(|scope| {
        let builds: Vec<_> = Firmware::ALL
            .iter()
            .map(|&which| scope.spawn(move || build(which)))
            .collect();
        builds
            .into_iter()
            .map(|build| build.join().expect("a firmware build thread"))
            .collect()
    })
}

fn prerequisites() -> Result<(), String> {
    let qemu = Command::new(QEMU)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    if !qemu.is_ok_and(|output| output.status.success()) {
        return Err(format!(
            "{QEMU} is not on PATH (Debian: apt-get install qemu-system-arm)"
        ));
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run rustc: {error}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if !Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Err(format!(
            "the {TARGET} target is not installed (rustup target add {TARGET})"
        ));
    }
    Ok(())
}

fn build(which: Firmware) -> Result<PathBuf, Missing> {
    let root = workspace_root();
    let target_dir = root.join("target").join(which.folder());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .current_dir(root.join("tej-examples").join(which.folder()))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host would replace the firmware's own
        // (its linker script) from .cargo/config.toml.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| Missing::Build(format!("cannot run cargo: {error}")))?;
    if !output.status.success() {
        return Err(Missing::Build(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    Ok(target_dir.join(TARGET).join("release").join(which.binary()))
}
