//! `tej send` notices a dead peer by itself: against a server that
//! accepts and then never answers, nor reads, it gives up after
//! `--stall-timeout` with a one-line reason, on every runtime.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use tej_examples::runtime::Runtime;

/// A server that accepts every connection and then does nothing with it.
fn silent_server() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && held.len() < 16 {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (addr, held)
}

fn tej_send(
    addr: std::net::SocketAddr,
    runtime: Runtime,
    extra: &[&str],
) -> (bool, String, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_tej"))
        .arg("send")
        .arg(addr.to_string())
        .args(["--runtime", runtime.name(), "--timeout", "30"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr, started.elapsed())
}

/// Runs `check` on every runtime at once: each waits out a timeout.
fn on_every_runtime(check: impl Fn(Runtime) + Sync) {
    std::thread::scope(|scope| {
        for &runtime in Runtime::ALL {
            let check = &check;
            scope.spawn(move || check(runtime));
        }
    });
}

#[test]
fn a_silent_server_is_given_up_after_the_stall_timeout() {
    on_every_runtime(|runtime| {
        let (addr, _held) = silent_server();
        let (ok, stderr, took) = tej_send(
            addr,
            runtime,
            &[
                "--message",
                "anyone there?",
                "--wait-replies",
                "1",
                "--stall-timeout",
                "1",
            ],
        );
        assert!(!ok, "{runtime:?}: a silent server cannot answer");
        assert_eq!(stderr.lines().count(), 1, "{runtime:?}: one line: {stderr}");
        assert!(stderr.contains("stall timeout"), "{runtime:?}: {stderr}");
        assert!(took < Duration::from_secs(20), "{runtime:?}: took {took:?}");
    });
}

#[test]
fn an_upload_the_server_never_reads_is_given_up_too() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    // Far more than the socket buffers hold: writes stop moving.
    std::fs::write(&big, vec![9u8; 64 << 20]).unwrap();
    on_every_runtime(|runtime| {
        let (addr, _held) = silent_server();
        let (ok, stderr, took) = tej_send(
            addr,
            runtime,
            &[big.to_str().unwrap(), "--stall-timeout", "1"],
        );
        assert!(!ok, "{runtime:?}: the upload cannot finish");
        assert!(stderr.contains("stall timeout"), "{runtime:?}: {stderr}");
        assert!(took < Duration::from_secs(20), "{runtime:?}: took {took:?}");
    });
}

#[test]
fn the_default_is_said_in_the_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_tej"))
        .args(["send", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--stall-timeout <SECS>"), "{help}");
    assert!(help.contains("[default: 45]"), "{help}");
}
