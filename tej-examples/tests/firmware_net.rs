//! `tej-firmware-net` (`tej-examples/firmware-net`) on a Cortex-M4 in QEMU
//! (`mps2-an386`), smoltcp over the LAN9118, reached through QEMU's
//! user-mode network (`hostfwd` from 127.0.0.1 to the guest's port 7000).
//!
//! The test builds the firmware itself (`cargo build --release` in its
//! folder, into `<workspace>/target/firmware-net`), boots it and checks:
//!
//! - the ready frame (status 5) on two connections open at once;
//! - the answer (status 6) to golden frames and to random frames sent in
//!   random splits on both: one `NAME<TAB>SIZE<TAB>SHA256HEX` line per file,
//!   then the message's, each hash checked here;
//! - a ping answered with a ping;
//! - each kind of frame beyond the limits, sent whole and at once on a new
//!   connection: a status-7 frame naming the error, then the end of that
//!   connection (not a reset), while the other connection still works;
//! - a 16 MiB upload, its hash checked and its throughput printed;
//! - `tej send ADDR FILES… --wait-replies 1` from every runtime, and with
//!   `--wait-replies 2` the answer's hashes;
//! - status 3 answered with status 4, then QEMU's exit status 0;
//! - the footprint: `.text` at most 96 KiB, RAM at most 96 KiB.
//!
//! Where `qemu-system-arm` or the `thumbv7em-none-eabihf` target is missing
//! each test prints `SKIP: <reason>` and passes, unless
//! `TEJ_REQUIRE_FIRMWARE=1` or `TEJ_REQUIRE_INTEROP=1` (as in CI), which
//! turn the skip into a failure. `TEJ_FIRMWARE_SEED` picks the random seed.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tej_core::{Assembler, Frame, FrameBuilder, Limits, Status};
use tej_examples::runtime::Runtime;
use tej_test_support::firmware::status::{ANSWER, BYE, PING, QUIT, READY, REFUSED};
use tej_test_support::firmware::{
    self, encoded, join, Firmware, Sections, BOOT_TIMEOUT, EXIT_TIMEOUT,
};
use tej_test_support::golden;
use tej_test_support::rng::{FrameLimits, Rng};

/// The firmware's limits.
const LIMITS: FrameLimits = Firmware::Net.limits();

/// The footprint budgets of issue 24.
const TEXT_BUDGET: u64 = 96 * 1024;
const RAM_BUDGET: u64 = 96 * 1024;

/// Random frames per connection.
const RANDOM_FRAMES: usize = 12;
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// Random frames within the firmware's limits, files of up to 64 KiB.
const RANDOM_LIMITS: FrameLimits = FrameLimits {
    file_len: 64 << 10,
    ..LIMITS
};

/// A random frame within [`RANDOM_LIMITS`], of any status but 2 and 3.
fn random_frame(rng: &mut Rng) -> Frame {
    rng.frame(&RANDOM_LIMITS, &[PING, QUIT])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The answer the firmware owes for `files` and `message`.
fn expected_answer(files: &[(String, Vec<u8>)], message: Option<&[u8]>) -> String {
    let mut answer = String::new();
    for (name, data) in files {
        let hash = hex(&Sha256::digest(data));
        answer += &format!("{name}\t{}\t{hash}\n", data.len());
    }
    let message = message.unwrap_or_default();
    let hash = hex(&Sha256::digest(message));
    answer + &format!("message\t{}\t{hash}\n", message.len())
}

fn answer_for(frame: &Frame) -> String {
    let files: Vec<(String, Vec<u8>)> = frame
        .files
        .iter()
        .map(|file| (file.name.clone(), file.data().expect("in memory").to_vec()))
        .collect();
    expected_answer(&files, frame.message.as_deref())
}

/// QEMU running the firmware, killed when dropped; what the firmware prints
/// arrives line by line.
struct Qemu {
    qemu: firmware::Qemu,
    port: u16,
    lines: Receiver<String>,
    printed: String,
    stderr: Option<JoinHandle<String>>,
}

impl Qemu {
    fn start(elf: &Path) -> Qemu {
        // A free port for the forward: taken, noted and given back.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let forward = format!("user,model=lan9118,hostfwd=tcp:127.0.0.1:{port}-:7000");
        let mut qemu = firmware::Qemu::start(elf, ["-nic", &forward]);
        let (send, lines) = mpsc::channel();
        let stdout = qemu.child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = qemu.drain_stderr();
        Qemu {
            qemu,
            port,
            lines,
            printed: String::new(),
            stderr,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for a line the firmware prints that contains `text`.
    fn expect_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.printed += &line;
                    self.printed.push('\n');
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("the firmware did not print {text:?}:\n{}", self.printed),
            }
        }
    }

    /// Waits for QEMU to exit; its status and everything printed.
    fn wait(&mut self) -> (ExitStatus, String) {
        let status = self.qemu.wait_exit(EXIT_TIMEOUT);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.printed += &line;
            self.printed.push('\n');
        }
        let stderr = self.stderr.take().map(join).unwrap_or_default();
        // QEMU's LAN9118 drops a packet when its receive FIFO is full, as a
        // real one does, and says so; TCP sends it again.
        let (dropped, other): (Vec<&str>, Vec<&str>) = stderr
            .lines()
            .partition(|line| line.contains("Slirp: Failed to send packet"));
        assert!(other.is_empty(), "QEMU wrote to stderr: {stderr}");
        if !dropped.is_empty() {
            println!(
                "packets dropped by the LAN9118 model (receive FIFO full): {}",
                dropped.len()
            );
        }
        (status, self.printed.clone())
    }
}

/// One TCP connection to the firmware.
struct Conn {
    stream: TcpStream,
    assembler: Assembler,
    unread: Vec<u8>,
}

impl Conn {
    /// Connects and reads the ready frame; retried until the firmware
    /// listens (QEMU takes the host's connection before the guest does).
    fn open(qemu: &Qemu) -> Conn {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Ok(stream) = TcpStream::connect(qemu.addr()) {
                stream.set_nodelay(true).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut conn = Conn {
                    stream,
                    assembler: Assembler::new(Limits::default()),
                    unread: Vec::new(),
                };
                if let Ok(Some(ready)) = conn.try_frame(Duration::from_secs(5)) {
                    assert_eq!(ready.status.get(), READY, "first frame: {ready:?}");
                    let message =
                        String::from_utf8_lossy(ready.message.as_deref().unwrap_or_default());
                    assert!(message.contains("ready"), "{message}");
                    return conn;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no ready frame within {BOOT_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The next frame; `Ok(None)` when the connection ended cleanly first.
    fn try_frame(&mut self, timeout: Duration) -> std::io::Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64 << 10];
        loop {
            let assembled = self
                .assembler
                .decode(&self.unread)
                .map_err(|error| std::io::Error::new(ErrorKind::InvalidData, error))?;
            self.unread.drain(..assembled.consumed);
            if let Some(frame) = assembled.frame {
                return Ok(Some(frame));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    if Instant::now() >= deadline {
                        return Err(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn frame(&mut self) -> Frame {
        match self.try_frame(FRAME_TIMEOUT) {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the firmware closed the connection before a frame"),
            Err(error) => panic!("no frame from the firmware: {error}"),
        }
    }

    /// Sends `bytes` in random pieces.
    fn send_split(&mut self, bytes: &[u8], rng: &mut Rng) {
        firmware::write_split(
            &mut self.stream,
            bytes,
            rng,
            &[1, 7, 100, 1460, 5000],
            false,
        );
    }

    /// Sends `frame` and checks the answer's lines.
    fn exchange(&mut self, what: &str, frame: &Frame, rng: &mut Rng) {
        self.send_split(&frame.encode_to_vec().expect("encode"), rng);
        let answer = self.frame();
        assert_eq!(answer.status.get(), ANSWER, "{what}: {answer:?}");
        assert!(answer.files.is_empty(), "{what}");
        let text = String::from_utf8_lossy(answer.message.as_deref().unwrap_or_default());
        assert_eq!(text, answer_for(frame), "{what}");
    }
}

/// Boots the firmware: the test's random numbers, QEMU, and a first
/// connection (opened once the firmware listens).
fn boot(elf: &Path) -> (Rng, Qemu, Conn) {
    let rng = Firmware::Net.rng();
    let qemu = Qemu::start(elf);
    let conn = Conn::open(&qemu);
    (rng, qemu, conn)
}

fn quit(qemu: &mut Qemu, conn: &mut Conn, rng: &mut Rng) {
    let stop = FrameBuilder::new(Status::new(QUIT).unwrap())
        .message("stop")
        .build();
    conn.send_split(&stop.encode_to_vec().unwrap(), rng);
    let bye = conn.frame();
    assert_eq!(bye.status.get(), BYE, "the answer to status 3: {bye:?}");
    let (status, printed) = qemu.wait();
    assert!(
        status.success(),
        "QEMU's exit status after status 3: {status}\n{printed}"
    );
}

#[test]
fn firmware_net_serves_two_connections_hashes_refuses_and_quits() {
    let Some(elf) = firmware::elf(Firmware::Net) else {
        return;
    };
    let (mut rng, mut qemu, mut a) = boot(&elf);
    let mut b = Conn::open(&qemu);
    println!("{}", qemu.expect_line("connection tasks"));

    // Golden frames on one, random ones on both, interleaved.
    for (name, _, frame) in golden::frames() {
        match frame.status.get() {
            PING => {
                a.send_split(&frame.encode_to_vec().unwrap(), &mut rng);
                let pong = a.frame();
                assert_eq!(pong.status.get(), PING, "{name}: {pong:?}");
            }
            QUIT => {}
            _ => a.exchange(&name, &frame, &mut rng),
        }
    }
    for i in 0..RANDOM_FRAMES {
        a.exchange(
            &format!("random {i} on a"),
            &random_frame(&mut rng),
            &mut rng,
        );
        b.exchange(
            &format!("random {i} on b"),
            &random_frame(&mut rng),
            &mut rng,
        );
    }
    let at_limits = {
        let mut builder = FrameBuilder::new(Status::MAX);
        for i in 0..LIMITS.files {
            let name = format!("{i}{}", "n".repeat(LIMITS.name_len - 1));
            builder = builder.file(name, vec![i as u8; 1000 + i]);
        }
        builder.message(vec![b'm'; LIMITS.message_len]).build()
    };
    b.exchange("a frame at the limits", &at_limits, &mut rng);

    // Frames beyond the limits, each whole and at once on a new connection:
    // refused, that connection closed, the other still served.
    let cases: [(&str, Vec<u8>, String); 4] = [
        (
            "nine files",
            encoded(&[("f", 100); 9], b""),
            "file count 9 exceeds the limit of 8 at offset 2".into(),
        ),
        (
            "a 65-byte name",
            encoded(&[(&"n".repeat(65), 5000)], b""),
            "file name length 65 exceeds the limit of 64 at offset 10".into(),
        ),
        (
            "a message of 4 KiB and 1 byte",
            encoded(&[], &vec![b'm'; LIMITS.message_len + 1]),
            format!(
                "message size {} exceeds the limit of {} at offset 10",
                LIMITS.message_len + 1,
                LIMITS.message_len
            ),
        ),
        (
            "a file of 16 MiB and 1 byte",
            encoded(&[("big", LIMITS.file_len + 1)], b"after"),
            format!(
                "file size {} exceeds the limit of {} at offset 15",
                LIMITS.file_len + 1,
                LIMITS.file_len
            ),
        ),
    ];
    for (what, wire, error) in cases {
        let mut c = Conn::open(&qemu);
        let writer = {
            let mut stream = c.stream.try_clone().unwrap();
            let wire = wire.clone();
            thread::spawn(move || stream.write_all(&wire))
        };
        let refusal = c.frame();
        assert_eq!(refusal.status.get(), REFUSED, "{what}: {refusal:?}");
        let message = String::from_utf8_lossy(refusal.message.as_deref().unwrap_or_default());
        assert_eq!(
            message,
            format!("refused: cannot decode: {error}"),
            "{what}"
        );
        writer.join().unwrap().expect("the whole frame is taken");
        match c.try_frame(FRAME_TIMEOUT) {
            Ok(None) => {}
            other => panic!("{what}: the connection must end cleanly: {other:?}"),
        }
        qemu.expect_line(&format!("refused: cannot decode: {error}"));
        println!("{what} ({} bytes sent at once): {message:?}", wire.len());
        a.exchange(&format!("after {what}"), &random_frame(&mut rng), &mut rng);
    }

    // A 16 MiB file streams through, hashed on the way.
    let data: Vec<u8> = (0..LIMITS.file_len as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8)
        .collect();
    let upload = FrameBuilder::new(Status::DEFAULT)
        .file("upload.bin", data)
        .message("16 MiB")
        .build();
    let started = Instant::now();
    b.exchange("16 MiB upload", &upload, &mut rng);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "16 MiB upload into tej-firmware-net, hashed on the device: {seconds:.2} s, {:.1} MiB/s",
        16.0 / seconds
    );

    quit(&mut qemu, &mut a, &mut rng);
}

#[test]
fn firmware_net_takes_tej_send_from_every_runtime() {
    let Some(elf) = firmware::elf(Firmware::Net) else {
        return;
    };
    let (mut rng, mut qemu, mut control) = boot(&elf);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = vec![
        ("small.txt".into(), b"hello firmware\n".to_vec()),
        (
            "data.bin".into(),
            (0..300_000u32).map(|i| (i * 7) as u8).collect(),
        ),
    ];
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, data)| {
            let path = dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            path
        })
        .collect();
    let answer = expected_answer(&files, None);
    for &runtime in Runtime::ALL {
        for replies in ["1", "2"] {
            let output = Command::new(env!("CARGO_BIN_EXE_tej"))
                .arg("send")
                .arg(qemu.addr())
                .args(&paths)
                .args(["--wait-replies", replies, "--runtime", runtime.name()])
                .args(["--json", "--timeout", "60"])
                .stdin(Stdio::null())
                .output()
                .expect("run tej send");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "tej send --runtime {runtime} --wait-replies {replies}: {}\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            let received: Vec<Value> = stdout
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|line| line["event"] == "received")
                .collect();
            assert_eq!(received[0]["status"], READY, "{runtime}: {stdout}");
            if replies == "2" {
                assert_eq!(received[1]["status"], ANSWER, "{runtime}: {stdout}");
                assert_eq!(received[1]["message"], answer.as_str(), "{runtime}");
            }
            // The firmware finished with this connection before the next.
            qemu.expect_line("closed by the peer after 1 frames");
            println!("tej send --runtime {runtime} --wait-replies {replies}: ok");
        }
    }
    quit(&mut qemu, &mut control, &mut rng);
}

#[test]
fn firmware_net_footprint_fits_the_budget() {
    let Some(elf) = firmware::elf(Firmware::Net) else {
        return;
    };
    let sections = Sections::read(&elf);
    // The connections' futures live on the stack: the firmware says how large.
    let mut qemu = Qemu::start(&elf);
    let line = qemu.expect_line("connection tasks");
    let tasks: u64 = line
        .split_whitespace()
        .filter_map(|word| word.parse::<u64>().ok())
        .product();
    let ram = sections.static_ram() + tasks;
    sections.print(&format!("tej-firmware-net footprint ({})", elf.display()));
    println!("  tasks          {tasks:6} bytes ({line})");
    println!("  RAM            {ram:6} bytes (.data + .bss + the connections' futures)");
    sections.assert_text_within(TEXT_BUDGET);
    assert!(
        ram <= RAM_BUDGET,
        "RAM is {ram} bytes, over the budget of {RAM_BUDGET}"
    );
}
