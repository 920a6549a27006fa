//! The `async_store` example on every async runtime: a large upload stored
//! at a fixed rate through the async face, with the consumer's pace pushed
//! back to the sender's socket and the server's memory bounded.
//!
//! Per runtime: the example at `--rate 32M`; a raw TCP sender writing one
//! frame with one file of `TEJ_ASYNC_STORE_MIB` MiB, counting what its
//! kernel accepts; the `stored` line and reply checked against the sender's
//! own SHA-256; the server's peak RSS from `/proc`. The default, 256 MiB
//! (8 s at the rate), is four times the RSS ceiling and keeps
//! `cargo test --workspace` short; CI runs 1 GiB (`.ci/run`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tej_core::{encode, Assembler, Frame, Limits};
use tej_test_support::hostile::read_frame;

const RATE: u64 = 32 << 20;
const RSS_CEILING_MIB: u64 = 64;

fn upload_len() -> u64 {
    let mib: u64 = std::env::var("TEJ_ASYNC_STORE_MIB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(256);
    mib << 20
}

/// The example's binary, built if this test was run alone. Built by the
/// README's test command itself (`--no-run`): any narrower selection
/// resolves other features and would build tej-net and above again, every
/// run; after `cargo test --workspace` this builds nothing.
fn example() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // What cargo sets for this test's process: build scripts that watch
    // these (ring's) would run again and rebuild everything above them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cargo.env_remove(name.as_ref());
        }
    }
    let status = cargo
        .args(["test", "-q", "--workspace", "--no-run"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the async_store example failed");
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join("examples").join("async_store")
}

/// The server's peak resident set, in KiB.
fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The most a receiving and a sending TCP socket may buffer here: the
/// largest sizes the kernel's autotuning grows them to.
fn socket_buffers_max() -> u64 {
    ["/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"]
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.split_whitespace().last()?.parse().ok())
                .unwrap_or(32 << 20)
        })
        .sum()
}

/// Deterministic bytes, fast.
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

struct Run {
    runtime: &'static str,
    pushed_at_2s: u64,
    to_stored: Duration,
    peak_rss_kib: u64,
}

fn upload(binary: PathBuf, runtime: &'static str) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(binary)
        .args(["--runtime", runtime, "--bind", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .args(["--rate", "32M"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start async_store");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("stdout");
    let listening: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    assert!(
        first.starts_with(r#"{"event":"listening","addr":""#),
        "{first}"
    );
    let addr = listening["addr"].as_str().expect("addr").to_owned();

    let len = upload_len();
    let stream = TcpStream::connect(&addr).expect("connect");
    let pushed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writer = {
        let mut stream = stream.try_clone().expect("clone");
        let pushed = Arc::clone(&pushed);
        std::thread::spawn(move || {
            let version = Frame::default().version;
            let mut head = encode::frame_header(tej_core::Status::DEFAULT, version, 1).to_vec();
            let mut file_header = [0u8; 64];
            let n = encode::write_file_header(&mut file_header, "big.bin", len).expect("header");
            head.extend_from_slice(&file_header[..n]);
            stream.write_all(&head).expect("write headers");
            let mut hash = Sha256::new();
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let mut buf = vec![0u8; 256 * 1024];
            let mut left = len;
            while left > 0 {
                let piece = &mut buf[..left.min(256 * 1024) as usize];
                fill(piece, &mut state);
                hash.update(&*piece);
                stream.write_all(piece).expect("write body");
                pushed.fetch_add(piece.len() as u64, Ordering::Relaxed);
                left -= piece.len() as u64;
            }
            stream
                .write_all(&encode::message_header(0))
                .expect("write message header");
            hex::encode(hash.finalize())
        })
    };
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    let pushed_at_2s = pushed.load(Ordering::Relaxed);

    let sha256 = writer.join().expect("the writer");
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let reply = read_frame(
        &mut reader,
        &mut Assembler::new(Limits::default()),
        &mut Vec::new(),
    )
    .expect("the reply frame");
    let to_stored = started.elapsed();
    let stored = lines.next().expect("a stored line").expect("stdout");
    let expected = format!(
        r#"{{"event":"stored","files":[{{"name":"big.bin","size":{len},"sha256":"{sha256}"}}]}}"#
    );
    assert_eq!(stored, expected, "{runtime}");
    assert_eq!(reply.status, tej_core::Status::DEFAULT);
    assert_eq!(
        reply.message.as_deref(),
        Some(expected.as_bytes()),
        "{runtime}"
    );
    let on_disk = std::fs::metadata(dir.path().join("big.bin")).expect("the stored file");
    assert_eq!(on_disk.len(), len);

    let peak_rss_kib = peak_rss_kib(&child);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    Run {
        runtime,
        pushed_at_2s,
        to_stored,
        peak_rss_kib,
    }
}

#[test]
fn a_large_upload_is_stored_at_the_consumers_pace_in_bounded_memory() {
    let binary = example();
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["tokio", "async-std", "smol"]
            .into_iter()
            .map(|runtime| {
                let binary = binary.clone();
                scope.spawn(move || upload(binary, runtime))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("an upload"))
            .collect()
    });
    let len = upload_len();
    for run in &runs {
        println!(
            "{}: {} MiB at 32 MiB/s: {:.1} MiB pushed 2 s in, stored after {:.1} s, peak RSS {:.1} MiB",
            run.runtime,
            len >> 20,
            run.pushed_at_2s as f64 / (1 << 20) as f64,
            run.to_stored.as_secs_f64(),
            run.peak_rss_kib as f64 / 1024.0
        );
        assert!(
            run.peak_rss_kib < RSS_CEILING_MIB * 1024,
            "{}: peak RSS {} KiB",
            run.runtime,
            run.peak_rss_kib
        );
        // Two seconds at the consumer's rate, plus what the kernel's socket
        // buffers may grow to and 8 MiB for the connection's own: far from
        // the whole upload.
        let bound = 2 * RATE + socket_buffers_max() + (8 << 20);
        if len > bound + (64 << 20) {
            assert!(
                run.pushed_at_2s < bound,
                "{}: {} bytes pushed 2 s in",
                run.runtime,
                run.pushed_at_2s
            );
        }
        // It cannot be faster than the rate.
        let floor = Duration::from_secs_f64(len as f64 / RATE as f64 * 0.9);
        assert!(
            run.to_stored >= floor,
            "{}: {:?}",
            run.runtime,
            run.to_stored
        );
    }
}
