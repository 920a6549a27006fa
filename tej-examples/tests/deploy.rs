//! What deploy/ relies on: `tej serve` drains on SIGTERM (what Kubernetes
//! and systemd send) as it does on Ctrl-C: it stops accepting, finishes the
//! frame in progress, and exits 0; and deploy/haproxy.cfg is valid.
#![cfg(unix)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tej_examples::runtime::Runtime;
use tej_test_support::serve::ServeProcess;
use tej_tokio::{FrameBuilder, Status};

const WAIT: Duration = Duration::from_secs(20);

struct Serve {
    process: ServeProcess,
}

impl Serve {
    fn start(runtime: Runtime, save_dir: &std::path::Path) -> (Serve, SocketAddr) {
        let process = ServeProcess::spawn(
            Command::new(env!("CARGO_BIN_EXE_tej"))
                .args(["serve", "--bind", "127.0.0.1:0", "--json", "--runtime"])
                .arg(runtime.name())
                .arg("--save-dir")
                .arg(save_dir),
        );
        let addr = process.listening(WAIT).parse().unwrap();
        (Serve { process }, addr)
    }

    /// The next line, a JSON object.
    fn next(&mut self) -> Value {
        let line = self.process.next_line(WAIT).expect("a line in time");
        serde_json::from_str(&line).expect("JSON")
    }

    fn expect(&mut self, name: &str) -> Value {
        let event = self.next();
        assert_eq!(event["event"], name, "{event}");
        event
    }

    /// The next event `name` of `peer`'s connection, skipping the events
    /// of others (the probes that raced the signal).
    fn expect_of(&mut self, name: &str, peer: SocketAddr) -> Value {
        loop {
            let event = self.next();
            if event["peer"] == peer.to_string().as_str() {
                assert_eq!(event["event"], name, "{event}");
                return event;
            }
        }
    }
}

#[test]
fn serve_drains_on_sigterm_finishing_the_frame_in_progress() {
    for &runtime in Runtime::ALL {
        let dir = tempfile::tempdir().unwrap();
        let (mut serve, addr) = Serve::start(runtime, dir.path());
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 + i / 251) as u8).collect();
        let wire = FrameBuilder::new(Status::DEFAULT)
            .file("during-sigterm.bin", data.clone())
            .message("in flight")
            .build()
            .encode_to_vec()
            .unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        serve.expect("connected");
        let half = wire.len() / 2;
        stream.write_all(&wire[..half]).unwrap();
        thread::sleep(Duration::from_millis(200));

        let sent = Command::new("kill")
            .args(["-TERM", &serve.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // Draining: still running, no longer accepting.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "{runtime}: still accepting");
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            serve.process.child.try_wait().unwrap().is_none(),
            "{runtime}: exited with a frame in progress"
        );

        stream.write_all(&wire[half..]).unwrap();
        let peer = stream.local_addr().unwrap();
        let received = serve.expect_of("received", peer);
        let file = &received["files"][0];
        let sha256: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(file["sha256"], sha256.as_str(), "{runtime}");
        assert_eq!(file["size"], data.len() as u64);
        let disconnected = serve.expect_of("disconnected", peer);
        assert_eq!(disconnected["kind"], "local_close", "{runtime}");
        // The server's close waits for this side's end of stream.
        drop(stream);

        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = serve.process.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{runtime}: did not exit");
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{runtime}: exit {status}");
    }
}

#[test]
fn the_haproxy_config_is_valid() {
    let Ok(output) = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/haproxy.cfg"
        ))
        .env("TEJ_FRONTEND", "127.0.0.1:4000")
        .env("TEJ_BACKEND_1", "127.0.0.1:4001")
        .env("TEJ_BACKEND_2", "127.0.0.1:4002")
        .env("TEJ_BACKEND_3", "127.0.0.1:4003")
        .output()
    else {
        if std::env::var("TEJ_REQUIRE_FLEET").as_deref() == Ok("1") {
            panic!("TEJ_REQUIRE_FLEET=1 but haproxy is not installed");
        }
        println!("SKIP: haproxy is not installed");
        return;
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
