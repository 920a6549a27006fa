//! `tej-firmware` (`tej-examples/firmware`) on a Cortex-M4 in QEMU
//! (`mps2-an386`), speaking TEJ to this test over its UART0.
//!
//! The test builds the firmware itself (`cargo build --release` in its
//! folder, into `<workspace>/target/firmware`), opens a listener on
//! 127.0.0.1, boots QEMU with UART0 connected to it, and checks:
//!
//! - the boot frame (status 5, `tej-firmware ready`);
//! - an echo (status 6, the same files and message) of every golden frame
//!   that fits the firmware's limits and of random frames up to those
//!   limits, sent in random splits with small pauses, some back to back;
//! - a ping (status 2) answered with a ping;
//! - status 3 answered with status 4, then QEMU's exit status 0;
//! - for each kind of frame beyond the limits, sent whole and at once, as a
//!   real peer sends it: a status-7 frame naming the error (the firmware
//!   reads the rest before it exits, so the refusal is not lost to a
//!   reset), then a failing exit status;
//! - the footprint: the ELF's `.text` is at most 16 KiB.
//!
//! Where `qemu-system-arm` or the `thumbv7em-none-eabihf` target is missing
//! each test prints `SKIP: <reason>` and passes, unless
//! `TEJ_REQUIRE_FIRMWARE=1` or `TEJ_REQUIRE_INTEROP=1` (as in CI), which
//! turn the skip into a failure. `TEJ_FIRMWARE_SEED` picks the random seed.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tej_core::{Assembler, Frame, FrameBuilder, Limits, Status};
use tej_test_support::firmware::{self, Firmware, QEMU};

/// The golden frames tej-core's own tests use.
const FIXTURE: &str = include_str!("../../tej-core/tests/fixtures/reference-frames.json");

// The firmware's limits (`tej-embedded-example`'s `MAX_*`) and statuses.
const MAX_FILES: usize = 4;
const MAX_NAME_LEN: usize = 64;
const MAX_FILE_LEN: usize = 1024;
const MAX_MESSAGE_LEN: usize = 1024;
const PING: u8 = 2;
const QUIT: u8 = 3;
const BYE: u8 = 4;
const READY: u8 = 5;
const ECHO: u8 = 6;
const REFUSED: u8 = 7;

/// The footprint budget of issue 16: `.text` at most 16 KiB.
const TEXT_BUDGET: u64 = 16 * 1024;
/// Static RAM (`.data` + `.bss`): the frame buffers are 5.3 KiB of it.
const STATIC_RAM_BUDGET: u64 = 8 * 1024;

/// Random frames per boot.
const RANDOM_FRAMES: usize = 40;
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The firmware's ELF (built with the other firmware on first use), or
/// `None` after a `SKIP` line: see [`tej_test_support::firmware`].
fn firmware() -> Option<PathBuf> {
    firmware::elf(Firmware::Uart)
}

/// A small deterministic PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("TEJ_FIRMWARE_SEED")
            .ok()
            .and_then(|seed| seed.trim().parse().ok())
            .unwrap_or(0x7e1_f1f1);
        println!("random seed {seed} (set TEJ_FIRMWARE_SEED to change it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A length up to `max`, often an edge: 0, `max`, or small.
    fn len(&mut self, max: usize) -> usize {
        match self.below(5) {
            0 => 0,
            1 => max,
            2 => self.below(17).min(max),
            _ => self.below(max + 1),
        }
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.len(max);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A UTF-8 name of at most `max` bytes, with 1- to 4-byte characters.
    fn name(&mut self, max: usize) -> String {
        let len = self.len(max);
        let mut name = String::new();
        loop {
            let c = ['a', 'Z', '7', '.', '/', '-', ' ', 'é', '漢', '🦀'][self.below(10)];
            if name.len() + c.len_utf8() > len {
                return name;
            }
            name.push(c);
        }
    }

    /// A frame within the firmware's limits, of any status but 2 and 3.
    fn frame(&mut self) -> Frame {
        let status = loop {
            let status = self.below(128) as u8;
            if status != QUIT && status != PING {
                break status;
            }
        };
        let mut builder =
            FrameBuilder::new(Status::new(status).unwrap()).version(self.next() as u8);
        for _ in 0..self.below(MAX_FILES + 1) {
            builder = builder.file(self.name(MAX_NAME_LEN), self.bytes(MAX_FILE_LEN));
        }
        let message = self.bytes(MAX_MESSAGE_LEN);
        if !message.is_empty() {
            builder = builder.message(message);
        }
        builder.build()
    }
}

/// A frame's files and message, what an echo must carry over.
type Content = (Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

fn content(frame: &Frame) -> Content {
    let files = frame
        .files
        .iter()
        .map(|file| {
            let data = file.data().expect("files are in memory");
            (file.name.clone(), data.to_vec())
        })
        .collect();
    (files, frame.message.as_ref().map(|m| m.to_vec()))
}

fn describe(content: &Content) -> String {
    let files: Vec<String> = content
        .0
        .iter()
        .map(|(name, data)| format!("{name:?} ({} bytes)", data.len()))
        .collect();
    let message = content.1.as_ref().map(Vec::len);
    format!("files [{}], message {message:?} bytes", files.join(", "))
}

/// QEMU running the firmware, killed when dropped.
struct Qemu {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Qemu {
    fn start(elf: &Path, port: u16) -> Qemu {
        let mut child = Command::new(QEMU)
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4"])
            .args(["-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            // nodelay: QEMU writes the UART's bytes one at a time, which
            // Nagle's algorithm would hold back for the host's delayed ACKs.
            .arg("-serial")
            .arg(format!("tcp:127.0.0.1:{port},nodelay=on"))
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-arm");
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Qemu {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for QEMU to exit; returns its status and what the firmware
    /// printed through semihosting.
    fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll qemu") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "QEMU did not exit within {EXIT_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.take().map(join).unwrap_or_default();
        let stderr = self.stderr.take().map(join).unwrap_or_default();
        assert!(stderr.trim().is_empty(), "QEMU wrote to stderr: {stderr}");
        (status, stdout)
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// The host's end of UART0.
struct Board {
    qemu: Qemu,
    stream: TcpStream,
    assembler: Assembler,
    unread: Vec<u8>,
}

impl Board {
    /// Boots the firmware and takes its connection.
    fn boot(elf: &Path) -> Board {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut qemu = Qemu::start(elf, port);
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => panic!("accept: {error}"),
            }
            if let Some(status) = qemu.child.try_wait().unwrap() {
                let stderr = qemu.stderr.take().map(join).unwrap_or_default();
                panic!("QEMU exited ({status}) without connecting: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "QEMU did not connect within {BOOT_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream.set_write_timeout(Some(FRAME_TIMEOUT)).unwrap();
        Board {
            qemu,
            stream,
            assembler: Assembler::new(Limits::default()),
            unread: Vec::new(),
        }
    }

    /// The next frame from the firmware.
    fn next_frame(&mut self) -> Frame {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            let assembled = self
                .assembler
                .decode(&self.unread)
                .expect("the firmware sends valid TEJ");
            self.unread.drain(..assembled.consumed);
            if let Some(frame) = assembled.frame {
                return frame;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the firmware's connection closed inside or before a frame"),
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    assert!(
                        Instant::now() < deadline,
                        "no frame from the firmware within {FRAME_TIMEOUT:?}"
                    );
                }
                Err(error) => panic!("read from the firmware: {error}"),
            }
        }
    }

    /// The connection ends (QEMU exits) with nothing more sent.
    fn expect_closed(&mut self) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    assert!(Instant::now() < deadline, "the connection stayed open");
                }
                Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
                Err(error) => panic!("read from the firmware: {error}"),
            }
        }
        assert!(
            self.unread.is_empty(),
            "bytes after the last frame: {:?}",
            self.unread
        );
    }

    /// Sends `bytes` in random pieces with short random pauses, so that
    /// UART0 gets them a few at a time and at uneven speeds.
    fn send_split(&mut self, bytes: &[u8], rng: &mut Rng) {
        let largest = [1, 2, 5, 16, 100, 1000, bytes.len()][rng.below(7)];
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = 1 + rng.below(largest.min(rest.len()));
            self.stream
                .write_all(&rest[..len])
                .expect("write to the firmware");
            rest = &rest[len..];
            if rng.below(16) == 0 {
                thread::sleep(Duration::from_micros(rng.below(1500) as u64));
            }
        }
    }

    /// Reads the boot frame.
    fn expect_ready(&mut self) {
        let ready = self.next_frame();
        assert_eq!(ready.status.get(), READY, "boot frame: {ready:?}");
        assert_eq!(ready.files.len(), 0);
        assert_eq!(ready.message.as_deref(), Some(&b"tej-firmware ready"[..]));
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The golden frames that fit the firmware's limits (and are not status 2 or 3):
/// their wire bytes and content.
fn golden() -> Vec<(String, Vec<u8>, Content)> {
    let json: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let mut fitting = Vec::new();
    for vector in json.as_array().expect("an array") {
        let expect = &vector["expect"];
        let files: Vec<(String, Vec<u8>)> = expect["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|file| {
                let name = file["name"].as_str().expect("name").to_owned();
                (name, unhex(file["data_hex"].as_str().expect("data_hex")))
            })
            .collect();
        let message = expect["message_hex"].as_str().map(unhex);
        let fits = files.len() <= MAX_FILES
            && files
                .iter()
                .all(|(name, data)| name.len() <= MAX_NAME_LEN && data.len() <= MAX_FILE_LEN)
            && message.as_ref().is_none_or(|m| m.len() <= MAX_MESSAGE_LEN);
        let status = expect["status"].as_u64();
        if fits && status != Some(u64::from(QUIT)) && status != Some(u64::from(PING)) {
            let name = vector["name"].as_str().expect("name").to_owned();
            let wire = unhex(vector["wire_hex"].as_str().expect("wire_hex"));
            fitting.push((name, wire, (files, message)));
        }
    }
    fitting
}

#[test]
fn firmware_echoes_golden_and_random_frames_then_exits_cleanly() {
    let Some(elf) = firmware() else { return };
    let mut rng = Rng::from_env();
    let started = Instant::now();
    let mut board = Board::boot(&elf);
    board.expect_ready();

    // (what, wire, expected content) for every frame to send.
    let mut frames = golden();
    assert!(frames.len() >= 5, "the golden frames fit the limits");
    let at_limit = {
        let name = "n".repeat(MAX_NAME_LEN);
        let data: Vec<u8> = (0..MAX_FILE_LEN).map(|i| (i * 31) as u8).collect();
        let mut builder = FrameBuilder::new(Status::MAX);
        for _ in 0..MAX_FILES {
            builder = builder.file(name.clone(), data.clone());
        }
        builder.message(vec![b'm'; MAX_MESSAGE_LEN]).build()
    };
    let random = (0..RANDOM_FRAMES).map(|_| rng.frame());
    for (i, frame) in std::iter::once(at_limit).chain(random).enumerate() {
        let wire = frame.encode_to_vec().expect("encode");
        frames.push((format!("random {i}"), wire, content(&frame)));
    }

    // Send in batches of one to three frames back to back, then read the
    // echoes, in order.
    let mut bytes = 0;
    let mut sent = 0;
    while sent < frames.len() {
        let batch = &frames[sent..(sent + 1 + rng.below(3)).min(frames.len())];
        let wire: Vec<u8> = batch.iter().flat_map(|(_, wire, _)| wire.clone()).collect();
        board.send_split(&wire, &mut rng);
        for (what, wire, expected) in batch {
            let echo = board.next_frame();
            assert_eq!(echo.status.get(), ECHO, "{what}: status of the echo");
            assert_eq!(echo.version, 1, "{what}: version of the echo");
            let got = content(&echo);
            assert!(
                got == *expected,
                "{what}: the echo differs: sent {}, got {}",
                describe(expected),
                describe(&got)
            );
            bytes += 2 * wire.len();
        }
        sent += batch.len();
    }

    // A ping, carrying a file even, is answered with an empty ping.
    let ping = FrameBuilder::new(Status::PING)
        .file("probe", "x")
        .build()
        .encode_to_vec()
        .unwrap();
    board.send_split(&ping, &mut rng);
    let pong = board.next_frame();
    assert_eq!(pong.status.get(), PING, "the answer to a ping: {pong:?}");
    assert!(pong.files.is_empty() && pong.message.is_none(), "{pong:?}");

    board.send_split(
        &FrameBuilder::new(Status::new(QUIT).unwrap())
            .message("stop")
            .build()
            .encode_to_vec()
            .unwrap(),
        &mut rng,
    );
    let bye = board.next_frame();
    assert_eq!(bye.status.get(), BYE, "the answer to status 3: {bye:?}");
    board.expect_closed();
    let (status, printed) = board.qemu.wait();
    assert!(
        status.success(),
        "QEMU's exit status after status 3: {status}\n{printed}"
    );
    assert!(printed.contains("tej-firmware: ready"), "{printed}");
    let bye_line = format!("tej-firmware: bye after {} frames", frames.len());
    assert!(printed.contains(&bye_line), "{printed}");
    if let Some(sizes) = printed.lines().find(|line| line.contains("frame buffers")) {
        println!("{sizes}");
    }
    println!(
        "{} frames ({} golden, {} random, 1 at the limits) echoed: {bytes} bytes over UART0 in {:.1?}",
        frames.len(),
        frames.len() - RANDOM_FRAMES - 1,
        RANDOM_FRAMES,
        started.elapsed()
    );
}

#[test]
fn firmware_refuses_whole_frames_beyond_its_limits() {
    let Some(elf) = firmware() else { return };
    let frame = |files: Vec<(String, Vec<u8>)>, message: Vec<u8>| {
        let mut builder = FrameBuilder::new(Status::DEFAULT);
        for (name, data) in files {
            builder = builder.file(name, data);
        }
        if !message.is_empty() {
            builder = builder.message(message);
        }
        builder.build().encode_to_vec().unwrap()
    };
    let file = |name: &str, len: usize| (name.to_owned(), vec![0x5a; len]);
    // Each frame is sent whole and at once, as a real peer sends it: the
    // refusal comes from the length that exceeds a limit, and must still
    // reach the host after the firmware has read the rest.
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "five files",
            frame((0..5).map(|_| file("f", 10)).collect(), b"five".to_vec()),
            "file count 5 exceeds the limit of 4 at offset 2",
        ),
        (
            "a 65-byte name",
            frame(vec![file(&"n".repeat(65), 100)], Vec::new()),
            "file name length 65 exceeds the limit of 64 at offset 10",
        ),
        (
            "a 2 KiB file",
            frame(vec![file("big", 2048)], b"after the file".to_vec()),
            "file size 2048 exceeds the limit of 1024 at offset 15",
        ),
        (
            "a 2 KiB message",
            frame(Vec::new(), vec![b'm'; 2048]),
            "message size 2048 exceeds the limit of 1024 at offset 10",
        ),
        (
            "a status byte without its top bit",
            [&[0x05][..], &frame(vec![file("f", 40)], Vec::new())[1..]].concat(),
            "status bit is 0 in first byte 0x05 of a frame at offset 0",
        ),
    ];
    for (what, wire, error) in cases {
        let mut board = Board::boot(&elf);
        board.expect_ready();
        board
            .stream
            .write_all(&wire)
            .expect("write the whole frame");
        let refusal = board.next_frame();
        assert_eq!(refusal.status.get(), REFUSED, "{what}: {refusal:?}");
        let message =
            String::from_utf8_lossy(refusal.message.as_deref().unwrap_or_default()).into_owned();
        assert_eq!(
            message,
            format!("refused: cannot decode: {error}"),
            "{what}"
        );
        board.expect_closed();
        let (status, printed) = board.qemu.wait();
        assert!(!status.success(), "{what}: QEMU's exit status {status}");
        assert!(
            printed.contains(&format!("tej-firmware: refused: cannot decode: {error}")),
            "{what}: {printed}"
        );
        println!(
            "{what} ({} bytes sent at once): {message:?}, QEMU {status}",
            wire.len()
        );
    }
}

/// An ELF32 little-endian file's sections: (name, size).
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

#[test]
fn firmware_footprint_fits_the_budget() {
    let Some(elf) = firmware() else { return };
    let sections = elf_sections(&std::fs::read(&elf).expect("read the ELF"));
    let size = |name: &str| {
        sections
            .iter()
            .find(|(section, _)| section == name)
            .map_or(0, |&(_, size)| size)
    };
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let ram = size(".data") + size(".bss") + size(".uninit");
    println!("tej-firmware footprint ({}):", elf.display());
    for name in [".vector_table", ".text", ".rodata", ".data", ".bss"] {
        println!("  {name:14} {:6} bytes", size(name));
    }
    println!("  flash          {flash:6} bytes (.vector_table + .text + .rodata + .data)");
    println!("  static RAM     {ram:6} bytes (.data + .bss)");
    assert!(size(".text") > 0, "the ELF has a .text section");
    assert!(
        size(".text") <= TEXT_BUDGET,
        ".text is {} bytes, over the budget of {TEXT_BUDGET}",
        size(".text")
    );
    assert!(
        ram <= STATIC_RAM_BUDGET,
        "static RAM is {ram} bytes, over the budget of {STATIC_RAM_BUDGET}"
    );
}
