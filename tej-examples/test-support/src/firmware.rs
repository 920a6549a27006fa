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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tej_core::{FrameBuilder, Status};

use crate::rng::{FrameLimits, Rng};
use crate::workspace_root;

/// The emulator both firmwares run in.
pub const QEMU: &str = "qemu-system-arm";
/// The target both firmwares are built for.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The statuses both firmwares speak.
pub mod status {
    /// A ping, answered with an empty ping.
    pub const PING: u8 = 2;
    /// Stops the firmware: answered with [`BYE`], then QEMU exits with 0.
    pub const QUIT: u8 = 3;
    pub const BYE: u8 = 4;
    /// The firmware's first frame on a connection.
    pub const READY: u8 = 5;
    /// The answer to any other frame: its echo (tej-firmware), the hashes
    /// of its files and message (tej-firmware-net).
    pub const ANSWER: u8 = 6;
    /// A frame beyond the firmware's limits, with the error as message.
    pub const REFUSED: u8 = 7;
}

/// How long a firmware may take to boot (to connect, or to listen).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU may take to exit once the firmware is done.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// The largest frame the firmware takes (its `MAX_*`); beyond any of
    /// these it refuses the frame.
    pub const fn limits(self) -> FrameLimits {
        match self {
            Firmware::Uart => FrameLimits {
                files: 4,
                name_len: 64,
                file_len: 1024,
                message_len: 1024,
            },
            Firmware::Net => FrameLimits {
                files: 8,
                name_len: 64,
                file_len: 16 << 20,
                message_len: 4 << 10,
            },
        }
    }

    /// The random numbers of a test of the firmware: seeded from
    /// `TEJ_FIRMWARE_SEED`, else with a seed of the firmware's own.
    pub fn rng(self) -> Rng {
        Rng::from_env("TEJ_FIRMWARE_SEED", 0x7e1_f1f1 + self as u64)
    }

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

/// QEMU's `mps2-an386` (a Cortex-M4) booting `elf`, with semihosting on,
/// stdin closed and stdout and stderr piped; killed when dropped. `device`
/// connects the board to the host (`-serial …`, `-nic …`).
pub struct Qemu {
    pub child: Child,
}

impl Qemu {
    pub fn start(elf: &Path, device: [&str; 2]) -> Qemu {
        let child = Command::new(QEMU)
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
            .args(["-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(device)
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-arm");
        Qemu { child }
    }

    /// Waits at most `timeout` for QEMU to exit; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll qemu") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "QEMU did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reads QEMU's stderr to its end on a thread of its own.
    pub fn drain_stderr(&mut self) -> Option<JoinHandle<String>> {
        self.child.stderr.take().map(drain)
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `pipe` to its end on a thread of its own; the text, lossily.
pub fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// What a drained pipe held (nothing if its thread panicked).
pub fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// The wire bytes of a frame of the default status with `files` (each a
/// name and a length of 0x5a bytes) and `message` (none if empty): how
/// the tests build frames beyond a firmware's limits.
pub fn encoded(files: &[(&str, usize)], message: &[u8]) -> Vec<u8> {
    let mut builder = FrameBuilder::new(Status::DEFAULT);
    for &(name, len) in files {
        builder = builder.file(name, vec![0x5a; len]);
    }
    if !message.is_empty() {
        builder = builder.message(message.to_vec());
    }
    builder.build().encode_to_vec().unwrap()
}

/// Writes `bytes` to `stream` in random pieces, each at most one of
/// `largest` or the whole, so that the firmware gets them a few at a time;
/// with `pauses`, a short random pause after one piece in 16 or so.
pub fn write_split(
    stream: &mut impl Write,
    bytes: &[u8],
    rng: &mut Rng,
    largest: &[usize],
    pauses: bool,
) {
    let largest = largest
        .get(rng.usize(..=largest.len()))
        .map_or(bytes.len(), |&largest| largest);
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = 1 + rng.usize(..largest.min(rest.len()));
        stream
            .write_all(&rest[..len])
            .expect("write to the firmware");
        rest = &rest[len..];
        if pauses && rng.usize(..16) == 0 {
            std::thread::sleep(Duration::from_micros(rng.u64(..1500)));
        }
    }
}

/// A firmware's ELF sections and their sizes, for the footprint tests.
pub struct Sections(Vec<(String, u64)>);

impl Sections {
    /// The sections of the ELF32 little-endian ARM file `elf`.
    pub fn read(elf: &Path) -> Sections {
        Sections(elf_sections(&std::fs::read(elf).expect("read the ELF")))
    }

    /// A section's size; 0 where there is no such section.
    pub fn size(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(section, _)| section == name)
            .map_or(0, |&(_, size)| size)
    }

    /// What goes to flash: `.vector_table + .text + .rodata + .data`.
    pub fn flash(&self) -> u64 {
        self.size(".vector_table") + self.size(".text") + self.size(".rodata") + self.size(".data")
    }

    /// Static RAM: `.data + .bss + .uninit`.
    pub fn static_ram(&self) -> u64 {
        self.size(".data") + self.size(".bss") + self.size(".uninit")
    }

    /// Prints each section's size and the flash total under `title`.
    pub fn print(&self, title: &str) {
        println!("{title}:");
        for name in [".vector_table", ".text", ".rodata", ".data", ".bss"] {
            println!("  {name:14} {:6} bytes", self.size(name));
        }
        let flash = self.flash();
        println!("  flash          {flash:6} bytes (.vector_table + .text + .rodata + .data)");
    }

    /// `.text` is there and at most `budget` bytes.
    pub fn assert_text_within(&self, budget: u64) {
        let text = self.size(".text");
        assert!(text > 0, "the ELF has a .text section");
        assert!(
            text <= budget,
            ".text is {text} bytes, over the budget of {budget}"
        );
    }
}

/// An ELF32 little-endian ARM file's sections: (name, size).
fn elf_sections(elf: &[u8]) -> Vec<(String, u64)> {
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!((elf[4], elf[5]), (1, 1), "ELF32, little endian");
    assert_eq!(u16_at(18), 40, "for ARM");
    let (offset, entry_size, count, names) = (
        u32_at(0x20) as usize,
        usize::from(u16_at(0x2e)),
        usize::from(u16_at(0x30)),
        usize::from(u16_at(0x32)),
    );
    let header = |i: usize| offset + i * entry_size;
    let names_at = u32_at(header(names) + 16) as usize;
    (0..count)
        .map(|i| {
            let start = names_at + u32_at(header(i)) as usize;
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            let name = String::from_utf8_lossy(&elf[start..end]).into_owned();
            (name, u64::from(u32_at(header(i) + 20)))
        })
        .collect()
}
