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
use std::path::Path;
use std::process::ExitStatus;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tej_core::{Assembler, Frame, FrameBuilder, Limits, Status};
use tej_test_support::firmware::status::{ANSWER, BYE, PING, QUIT, READY, REFUSED};
use tej_test_support::firmware::{
    self, drain, encoded, join, Firmware, Sections, BOOT_TIMEOUT, EXIT_TIMEOUT,
};
use tej_test_support::golden::{self, unhex};
use tej_test_support::rng::{FrameLimits, Rng};

/// The firmware's limits.
const LIMITS: FrameLimits = Firmware::Uart.limits();

/// The footprint budget of issue 16: `.text` at most 16 KiB.
const TEXT_BUDGET: u64 = 16 * 1024;
/// Static RAM (`.data` + `.bss`): the frame buffers are 5.3 KiB of it.
const STATIC_RAM_BUDGET: u64 = 8 * 1024;

/// Random frames per boot.
const RANDOM_FRAMES: usize = 40;
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

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

/// QEMU running the firmware, UART0 connected to the host's `port`;
/// what it prints drained as it comes.
struct Qemu {
    qemu: firmware::Qemu,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Qemu {
    fn start(elf: &Path, port: u16) -> Qemu {
        // nodelay: QEMU writes the UART's bytes one at a time, which
        // Nagle's algorithm would hold back for the host's delayed ACKs.
        let serial = format!("tcp:127.0.0.1:{port},nodelay=on");
        let mut qemu = firmware::Qemu::start(elf, ["-serial", &serial]);
        let stdout = qemu.child.stdout.take().map(drain);
        let stderr = qemu.drain_stderr();
        Qemu {
            qemu,
            stdout,
            stderr,
        }
    }

    /// Waits for QEMU to exit; returns its status and what the firmware
    /// printed through semihosting.
    fn wait(&mut self) -> (ExitStatus, String) {
        let status = self.qemu.wait_exit(EXIT_TIMEOUT);
        let stdout = self.stdout.take().map(join).unwrap_or_default();
        let stderr = self.stderr.take().map(join).unwrap_or_default();
        assert!(stderr.trim().is_empty(), "QEMU wrote to stderr: {stderr}");
        (status, stdout)
    }
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
            if let Some(status) = qemu.qemu.child.try_wait().unwrap() {
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
        firmware::write_split(
            &mut self.stream,
            bytes,
            rng,
            &[1, 2, 5, 16, 100, 1000],
            true,
        );
    }

    /// Reads the boot frame.
    fn expect_ready(&mut self) {
        let ready = self.next_frame();
        assert_eq!(ready.status.get(), READY, "boot frame: {ready:?}");
        assert_eq!(ready.files.len(), 0);
        assert_eq!(ready.message.as_deref(), Some(&b"tej-firmware ready"[..]));
    }
}

/// The golden frames that fit the firmware's limits (and are not status 2 or 3):
/// their wire bytes and content.
fn golden() -> Vec<(String, Vec<u8>, Content)> {
    let mut fitting = Vec::new();
    for vector in golden::vectors() {
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
        let fits = files.len() <= LIMITS.files
            && files
                .iter()
                .all(|(name, data)| name.len() <= LIMITS.name_len && data.len() <= LIMITS.file_len)
            && message
                .as_ref()
                .is_none_or(|m| m.len() <= LIMITS.message_len);
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
    let Some(elf) = firmware::elf(Firmware::Uart) else {
        return;
    };
    let mut rng = Firmware::Uart.rng();
    let started = Instant::now();
    let mut board = Board::boot(&elf);
    board.expect_ready();

    // (what, wire, expected content) for every frame to send.
    let mut frames = golden();
    assert!(frames.len() >= 5, "the golden frames fit the limits");
    let at_limit = {
        let name = "n".repeat(LIMITS.name_len);
        let data: Vec<u8> = (0..LIMITS.file_len).map(|i| (i * 31) as u8).collect();
        let mut builder = FrameBuilder::new(Status::MAX);
        for _ in 0..LIMITS.files {
            builder = builder.file(name.clone(), data.clone());
        }
        builder.message(vec![b'm'; LIMITS.message_len]).build()
    };
    let random = (0..RANDOM_FRAMES).map(|_| rng.frame(&LIMITS, &[PING, QUIT]));
    for (i, frame) in std::iter::once(at_limit).chain(random).enumerate() {
        let wire = frame.encode_to_vec().expect("encode");
        frames.push((format!("random {i}"), wire, content(&frame)));
    }

    // Send in batches of one to three frames back to back, then read the
    // echoes, in order.
    let mut bytes = 0;
    let mut sent = 0;
    while sent < frames.len() {
        let batch = &frames[sent..(sent + 1 + rng.usize(..3)).min(frames.len())];
        let wire: Vec<u8> = batch.iter().flat_map(|(_, wire, _)| wire.clone()).collect();
        board.send_split(&wire, &mut rng);
        for (what, wire, expected) in batch {
            let echo = board.next_frame();
            assert_eq!(echo.status.get(), ANSWER, "{what}: status of the echo");
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
    let Some(elf) = firmware::elf(Firmware::Uart) else {
        return;
    };
    // Each frame is sent whole and at once, as a real peer sends it: the
    // refusal comes from the length that exceeds a limit, and must still
    // reach the host after the firmware has read the rest.
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "five files",
            encoded(&[("f", 10); 5], b"five"),
            "file count 5 exceeds the limit of 4 at offset 2",
        ),
        (
            "a 65-byte name",
            encoded(&[(&"n".repeat(65), 100)], b""),
            "file name length 65 exceeds the limit of 64 at offset 10",
        ),
        (
            "a 2 KiB file",
            encoded(&[("big", 2048)], b"after the file"),
            "file size 2048 exceeds the limit of 1024 at offset 15",
        ),
        (
            "a 2 KiB message",
            encoded(&[], &[b'm'; 2048]),
            "message size 2048 exceeds the limit of 1024 at offset 10",
        ),
        (
            "a status byte without its top bit",
            [&[0x05][..], &encoded(&[("f", 40)], b"")[1..]].concat(),
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

#[test]
fn firmware_footprint_fits_the_budget() {
    let Some(elf) = firmware::elf(Firmware::Uart) else {
        return;
    };
    let sections = Sections::read(&elf);
    let ram = sections.static_ram();
    sections.print(&format!("tej-firmware footprint ({})", elf.display()));
    println!("  static RAM     {ram:6} bytes (.data + .bss)");
    sections.assert_text_within(TEXT_BUDGET);
    assert!(
        ram <= STATIC_RAM_BUDGET,
        "static RAM is {ram} bytes, over the budget of {STATIC_RAM_BUDGET}"
    );
}
