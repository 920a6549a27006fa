//! End-to-end tests of the `tej` binary: `tej serve --json` against
//! `tej send` on every runtime, hostile file names written with raw bytes,
//! the Python reference client sending to `tej serve`, failures, Ctrl-C.
//!
//! Every test talks over loopback only and is bounded in time: each wait
//! has a deadline and `tej send` runs with `--timeout`.

use tej_test_support::peer::pattern;
use tej_test_support::python;
use tej_test_support::serve::{describe, ServeProcess};

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tej_examples::runtime::Runtime;

use python::sha256_hex;

/// The most any one expected line or process may take.
const TIMEOUT: Duration = Duration::from_secs(60);

fn tej() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tej"));
    command.stdin(Stdio::null());
    command
}

/// A scratch directory, removed when dropped.
struct Scratch {
    /// Its canonical path, as the tools report it.
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tej-cli-{name}-"))
            .tempdir()
            .unwrap();
        Scratch {
            path: dir.path().canonicalize().unwrap(),
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// A Unix socket's path in the directory, and `unix:PATH` to bind it.
    fn socket(&self, name: &str) -> (PathBuf, String) {
        let socket = self.path.join(name);
        let bind = format!("unix:{}", socket.display());
        (socket, bind)
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }
}

/// A running `tej serve --json`, its stdout read line by line on a thread.
struct Serve {
    process: ServeProcess,
    addr: String,
    seen: Vec<Value>,
}

/// A loopback address on a port the system picks.
const ANY_PORT: &str = "127.0.0.1:0";

impl Serve {
    fn start<I, S>(runtime: Runtime, args: I) -> Serve
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Serve::start_at(runtime, ANY_PORT, args)
    }

    /// `tej serve --save-dir SAVE_DIR --reply REPLY`.
    fn saving(runtime: Runtime, save_dir: &Path, reply: &str) -> Serve {
        let args = [
            OsString::from("--save-dir"),
            save_dir.into(),
            "--reply".into(),
            reply.into(),
        ];
        Serve::start(runtime, args)
    }

    /// `tej serve --bind BIND` over TLS with the test certificate
    /// (`server.pem`), then `args`.
    fn start_tls<I, S>(runtime: Runtime, bind: &str, args: I) -> Serve
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let tls = [
            OsString::from("--tls-cert"),
            tls_file("server.pem"),
            "--tls-key".into(),
            tls_file("server.key"),
        ];
        Serve::start_at(
            runtime,
            bind,
            tls.into_iter().chain(args.into_iter().map(Into::into)),
        )
    }

    /// `tej serve --bind BIND`: TCP or `unix:PATH`.
    fn start_at<I, S>(runtime: Runtime, bind: &str, args: I) -> Serve
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let process = ServeProcess::spawn(
            tej()
                .args(["serve", "--bind", bind, "--json", "--runtime"])
                .arg(runtime.name())
                .args(args.into_iter().map(Into::into)),
        );
        let addr = process.listening(TIMEOUT);
        if bind.starts_with("unix:") {
            assert_eq!(addr, bind);
        } else {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_ne!(addr.port(), 0);
        }
        Serve {
            process,
            addr,
            seen: Vec::new(),
        }
    }

    fn addr(&self) -> String {
        self.addr.clone()
    }

    fn port(&self) -> u16 {
        let addr: SocketAddr = self.addr.parse().expect("a TCP server");
        addr.port()
    }

    /// The next stdout line, which must be one JSON object.
    fn next(&mut self) -> Value {
        let line = match self.process.next_line(TIMEOUT) {
            Some(line) => line,
            None => self.fail("no line from tej serve in time"),
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| self.fail(&format!("not JSON ({error}): {line:?}")));
        if !value.is_object() || value["event"].as_str().is_none() {
            self.fail(&format!("not an event object: {line}"));
        }
        self.seen.push(value.clone());
        value
    }

    /// The next line, which must be the event `name`.
    fn expect(&mut self, name: &str) -> Value {
        let event = self.next();
        if event["event"] != name {
            self.fail(&format!("expected {name:?}, got {event}"));
        }
        event
    }

    /// Stops the server with Ctrl-C (SIGINT) and returns its exit status
    /// and the lines it printed meanwhile.
    fn interrupt(&mut self) -> (ExitStatus, Vec<Value>) {
        self.signal("-INT")
    }

    /// Stops the server with `signal` (`-INT`, `-TERM`), as [`interrupt`](Self::interrupt).
    fn signal(&mut self, signal: &str) -> (ExitStatus, Vec<Value>) {
        let sent = Command::new("kill")
            .args([signal, &self.process.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.fail("tej serve did not stop after SIGINT");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let mut rest = Vec::new();
        while let Some(line) = self.process.next_line(Duration::from_secs(5)) {
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|error| self.fail(&format!("not JSON ({error}): {line:?}")));
            rest.push(value);
        }
        (status, rest)
    }

    fn fail(&mut self, message: &str) -> ! {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        thread::sleep(Duration::from_millis(100));
        let seen: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        panic!(
            "{message}\n--- tej serve stdout so far ---\n{}\n--- stderr ---\n{}",
            seen.join("\n"),
            self.process.stderr().join("\n")
        );
    }
}

/// Runs `tej send ARGS... --timeout 60`.
fn send<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    tej()
        .arg("send")
        .args(args.into_iter().map(Into::into))
        .args(["--timeout", "60"])
        .output()
        .expect("tej send runs")
}

/// Runs `tej send ADDR --runtime RUNTIME ARGS... --timeout 60`.
fn send_on(runtime: Runtime, addr: impl Into<OsString>, args: &[OsString]) -> Output {
    let head = [addr.into(), "--runtime".into(), runtime.name().into()];
    send(head.into_iter().chain(args.iter().cloned()))
}

/// `tej send ADDR --runtime RUNTIME ARGS... --wait-replies 1 --json`, which
/// must succeed with `reply` as the reply's message: its JSON lines.
fn send_for_reply(
    runtime: Runtime,
    addr: impl Into<OsString>,
    args: &[OsString],
    reply: &str,
) -> Vec<Value> {
    let wait = ["--wait-replies".into(), "1".into(), "--json".into()];
    let output = send_on(runtime, addr, &[args, &wait].concat());
    assert!(output.status.success(), "{runtime}: {}", describe(&output));
    let lines = json_lines(&output);
    assert_eq!(events(&lines, "received")[0]["message"], reply);
    lines
}

/// Every stdout line of a `--json` run, each of which must be a JSON object.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 stdout")
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|error| {
                panic!("not JSON ({error}): {line:?}\n{}", describe(output))
            });
            assert!(value["event"].is_string(), "not an event: {line}");
            value
        })
        .collect()
}

fn events<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["event"] == name).collect()
}

/// One frame in raw TEJ bytes, written here by hand (no tej-core involved).
fn raw_frame(status: u8, files: &[(&str, &[u8])], message: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | status, 1];
    out.extend((files.len() as u64).to_be_bytes());
    for (name, data) in files {
        out.extend((name.len() as u16).to_be_bytes());
        out.extend(name.as_bytes());
        out.extend((data.len() as u64).to_be_bytes());
        out.extend(*data);
    }
    out.extend((message.len() as u64).to_be_bytes());
    out.extend(message);
    out
}

/// Checks that `saved_as` is a file directly inside `dir` holding `data`.
fn assert_saved_inside(file: &Value, dir: &Path, data: &[u8]) -> PathBuf {
    let saved = PathBuf::from(
        file["saved_as"]
            .as_str()
            .unwrap_or_else(|| panic!("no saved_as in {file}")),
    );
    assert!(saved.is_absolute(), "saved_as is absolute: {file}");
    let real = saved.canonicalize().expect("the saved file exists");
    assert_eq!(real.parent(), Some(dir), "{file} is saved outside {dir:?}");
    assert_eq!(std::fs::read(&real).unwrap(), data, "content of {file}");
    real
}

fn assert_file(file: &Value, name: &str, data: &[u8]) {
    assert_eq!(file["name"], name, "{file}");
    assert_eq!(file["size"], data.len() as u64, "{file}");
    assert_eq!(file["sha256"], sha256_hex(data), "{file}");
}

#[test]
fn serve_json_and_send_on_every_runtime() {
    for (index, &runtime) in Runtime::ALL.iter().enumerate() {
        // The second client runs on another runtime than the server.
        let other = Runtime::ALL[(index + 1) % Runtime::ALL.len()];
        let scratch = Scratch::new(&format!("pair-{runtime}"));
        let save_dir = scratch.path().join("saved");
        let small = b"hello world\n".to_vec();
        let large = pattern(3 << 20, 7);
        let small_path = scratch.file("hello.txt", &small);
        let large_path = scratch.file("data.bin", &large);
        let binary_message = [0xff, 0xfe, b'h', b'i'];
        let message_path = scratch.file("message.bin", &binary_message);

        let mut serve = Serve::saving(runtime, &save_dir, "thanks");
        let output = send_on(
            runtime,
            serve.addr(),
            &[
                small_path.clone().into(),
                large_path.clone().into(),
                "--message".into(),
                "Sending from client".into(),
                "--status".into(),
                "7".into(),
                "--repeat".into(),
                "2".into(),
                "--ping".into(),
                "--wait-replies".into(),
                "2".into(),
                "--json".into(),
            ],
        );
        assert!(output.status.success(), "{}", describe(&output));
        let lines = json_lines(&output);
        assert_eq!(lines[0]["event"], "connected", "{lines:?}");
        assert_eq!(lines[0]["peer"], serve.addr());
        assert_eq!(events(&lines, "sent").len(), 3);
        let replies = events(&lines, "received");
        assert_eq!(replies.len(), 2, "{lines:?}");
        for reply in replies {
            assert_eq!(reply["message"], "thanks");
            assert_eq!(reply["peer"], serve.addr());
            assert_eq!(reply["files"], Value::Array(Vec::new()));
        }
        let ended = events(&lines, "disconnected");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0]["kind"], "local_close");
        let summary = lines.last().unwrap();
        assert_eq!(summary["event"], "summary", "{lines:?}");
        assert_eq!(summary["frames"], 3);
        assert_eq!(summary["replies"], 2);
        let frame_len = 18 + (10 + 9 + small.len() as u64) + (10 + 8 + large.len() as u64) + 19;
        assert_eq!(summary["bytes"], 2 * frame_len + 18);

        let connected = serve.expect("connected");
        let peer = connected["peer"].as_str().unwrap().to_string();
        let mut saved = BTreeSet::new();
        let save_dir = save_dir.canonicalize().unwrap();
        for _ in 0..2 {
            let frame = serve.expect("received");
            assert_eq!(frame["peer"], peer.as_str());
            assert_eq!(frame["status"], 7);
            assert_eq!(frame["version"], 1);
            assert_eq!(frame["message"], "Sending from client");
            assert_eq!(frame["message_len"], 19);
            assert_eq!(frame["message_sha256"], sha256_hex(b"Sending from client"));
            let files = frame["files"].as_array().unwrap();
            assert_eq!(files.len(), 2);
            assert_file(&files[0], "hello.txt", &small);
            assert_file(&files[1], "data.bin", &large);
            saved.insert(assert_saved_inside(&files[0], &save_dir, &small));
            saved.insert(assert_saved_inside(&files[1], &save_dir, &large));
        }
        assert_eq!(saved.len(), 4, "every saved file has its own name");
        let ping = serve.expect("ping");
        assert_eq!(ping["status"], 2);
        assert_eq!(ping["message"], Value::Null);
        assert_eq!(ping["message_len"], 0);
        assert_eq!(ping["message_sha256"], Value::Null);
        let ended = serve.expect("disconnected");
        assert_eq!(ended["peer"], peer.as_str());
        assert_eq!(ended["reason"], "peer closed the connection");

        // A binary message from a file, from a client on another runtime.
        let output = send_on(
            other,
            serve.addr(),
            &[
                "--message-file".into(),
                message_path.into(),
                "--wait-replies".into(),
                "1".into(),
            ],
        );
        assert!(output.status.success(), "{}", describe(&output));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("thanks"), "the reply is printed: {text}");
        assert!(text.contains("sent 1 frame(s)"), "a summary: {text}");
        assert!(
            output.stderr.is_empty(),
            "no progress bars when stdout is not a terminal: {}",
            describe(&output)
        );
        serve.expect("connected");
        let frame = serve.expect("received");
        assert_eq!(frame["message_len"], 4);
        assert_eq!(frame["message"], "\u{fffd}\u{fffd}hi");
        assert_eq!(frame["message_sha256"], sha256_hex(&binary_message));
        assert_eq!(frame["files"], Value::Array(Vec::new()));
        serve.expect("disconnected");
    }
}

#[test]
fn serve_without_save_dir_hashes_and_discards() {
    let runtime = Runtime::ALL[0];
    let scratch = Scratch::new("discard");
    let data = pattern(200_000, 3);
    let path = scratch.file("kept-nowhere.bin", &data);
    let mut serve = Serve::start(runtime, ["--reply", "ok"]);
    let output = send([
        OsString::from(serve.addr()),
        path.into(),
        "--wait-replies".into(),
        "1".into(),
        "--json".into(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    serve.expect("connected");
    let frame = serve.expect("received");
    let file = &frame["files"][0];
    assert_file(file, "kept-nowhere.bin", &data);
    assert_eq!(file["saved_as"], Value::Null);
    assert_eq!(frame["message"], Value::Null);
    serve.expect("disconnected");
}

/// Names `tej send` cannot produce, written as raw TEJ bytes: every file
/// lands inside `--save-dir` under its own name, and is reported under the
/// name as sent.
#[test]
fn hostile_names_stay_inside_the_save_dir() {
    let long = "a".repeat(300);
    let names: Vec<&str> = vec![
        "../x",
        "/abs",
        "",
        "a\0b",
        "dup.txt",
        "dup.txt",
        "..",
        ".",
        "sub/../../y",
        "..\\..\\win",
        ".hidden",
        "new\nline",
        &long,
    ];
    for &runtime in Runtime::ALL {
        let scratch = Scratch::new(&format!("hostile-{runtime}"));
        let save_dir = scratch.path().join("saved");
        let mut serve = Serve::start(
            runtime,
            [OsString::from("--save-dir"), save_dir.clone().into()],
        );
        let save_dir = save_dir.canonicalize().unwrap();
        let contents: Vec<Vec<u8>> = (0..names.len())
            .map(|index| pattern(1000 + index, index as u64))
            .collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .zip(&contents)
            .map(|(name, data)| (*name, &data[..]))
            .collect();
        let mut stream = TcpStream::connect(serve.addr()).unwrap();
        stream.write_all(&raw_frame(0, &files, b"hostile")).unwrap();
        serve.expect("connected");
        let frame = serve.expect("received");
        let reported = frame["files"].as_array().unwrap();
        assert_eq!(reported.len(), names.len());
        let mut saved = BTreeSet::new();
        for ((name, data), file) in files.iter().zip(reported) {
            assert_file(file, name, data);
            saved.insert(assert_saved_inside(file, &save_dir, data));
        }
        assert_eq!(saved.len(), names.len(), "distinct files: {saved:?}");
        assert_eq!(
            std::fs::read_dir(&save_dir).unwrap().count(),
            names.len(),
            "nothing else in the save dir"
        );
        for escaped in ["x", "y", "win", "abs"] {
            assert!(!scratch.path().join(escaped).exists(), "{escaped} escaped");
        }
        drop(stream);
        assert_eq!(serve.expect("disconnected")["kind"], "peer_closed");

        // Two files of the same name through `tej send` (from two folders).
        let first = scratch.file("one/same.txt", b"first");
        let second = scratch.file("two/same.txt", b"second");
        let output = send_on(runtime, serve.addr(), &[first.into(), second.into()]);
        assert!(output.status.success(), "{}", describe(&output));
        serve.expect("connected");
        let frame = serve.expect("received");
        let reported = frame["files"].as_array().unwrap();
        assert_file(&reported[0], "same.txt", b"first");
        assert_file(&reported[1], "same.txt", b"second");
        let one = assert_saved_inside(&reported[0], &save_dir, b"first");
        let two = assert_saved_inside(&reported[1], &save_dir, b"second");
        assert_ne!(one, two);
        serve.expect("disconnected");
    }
}

#[test]
fn serve_reports_why_connections_end() {
    let runtime = Runtime::ALL[0];
    let mut serve = Serve::start(runtime, ["--idle-timeout", "0.5", "--max-file-size", "1K"]);

    // Status bit clear: a typed protocol error.
    let mut stream = TcpStream::connect(serve.addr()).unwrap();
    stream.write_all(&[0x00, 0x01]).unwrap();
    serve.expect("connected");
    let ended = serve.expect("disconnected");
    assert_eq!(ended["kind"], "protocol", "{ended}");
    assert!(
        ended["reason"]
            .as_str()
            .unwrap()
            .contains("status bit is 0"),
        "{ended}"
    );
    drop(stream);

    // Silence: the idle timeout.
    let stream = TcpStream::connect(serve.addr()).unwrap();
    serve.expect("connected");
    let ended = serve.expect("disconnected");
    assert_eq!(ended["reason"], "idle timeout");
    assert_eq!(ended["kind"], "idle_timeout");
    drop(stream);

    // A file over --max-file-size: the server hangs up and `tej send`,
    // waiting for a reply, fails with a one-line reason.
    let scratch = Scratch::new("limits");
    let path = scratch.file("big.bin", &pattern(4096, 1));
    let output = send([
        OsString::from(serve.addr()),
        path.into(),
        "--wait-replies".into(),
        "1".into(),
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", describe(&output));
    assert!(
        stderr.starts_with("tej send: got 0 of 1 replies"),
        "{stderr}"
    );
    serve.expect("connected");
    let ended = serve.expect("disconnected");
    assert_eq!(ended["kind"], "protocol");
    assert!(
        ended["reason"]
            .as_str()
            .unwrap()
            .contains("file size 4096 exceeds the limit of 1024"),
        "{ended}"
    );
}

#[test]
fn send_fails_with_a_one_line_reason() {
    let scratch = Scratch::new("failures");
    let free_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let exists = scratch.file("exists.txt", b"x");
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (
            vec![free_port.to_string().into(), exists.clone().into()],
            "tej send: cannot connect to",
        ),
        (
            vec![
                free_port.to_string().into(),
                scratch.path().join("missing.txt").into(),
            ],
            "tej send: cannot read",
        ),
        (
            vec![free_port.to_string().into(), scratch.path().into()],
            "is not a regular file",
        ),
        (vec!["no-port-here".into()], "tej send: cannot resolve"),
    ];
    for (args, expected) in cases {
        let output = send(args);
        assert!(!output.status.success(), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{}", describe(&output));
        assert!(stderr.starts_with("tej send: "), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }

    // A server that accepts and never reads nor replies: --timeout ends it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let output = tej()
        .arg("send")
        .arg(listener.local_addr().unwrap().to_string())
        .args([
            "--message",
            "anyone?",
            "--wait-replies",
            "1",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim(), "tej send: timed out after 1.0 s (--timeout)");
}

#[cfg(unix)]
#[test]
fn serve_stops_gracefully_on_ctrl_c() {
    for &runtime in Runtime::ALL {
        let mut serve = Serve::start(runtime, std::iter::empty::<OsString>());
        let mut stream = TcpStream::connect(serve.addr()).unwrap();
        serve.expect("connected");
        // The peer reads until the server's end, then closes its side: what
        // the server's close waits for.
        let reading = thread::spawn(move || {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buffer = [0; 16];
            stream.read(&mut buffer).unwrap()
        });
        let (status, rest) = serve.interrupt();
        assert!(status.success(), "exit {status}");
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert_eq!(rest[0]["event"], "disconnected");
        assert_eq!(rest[0]["kind"], "local_close");
        assert_eq!(reading.join().unwrap(), 0, "the connection is closed");
    }
}

/// SIGTERM with a peer stalled mid-frame: the frame cannot finish, so the
/// connection is cut at `--drain-timeout` and `tej serve` exits then.
#[cfg(unix)]
#[test]
fn serve_cuts_what_remains_at_the_drain_timeout() {
    for runtime in [Runtime::Tokio, Runtime::AsyncStd, Runtime::Smol] {
        let mut serve = Serve::start(runtime, ["--drain-timeout", "1"]);
        let mut stream = TcpStream::connect(serve.addr()).unwrap();
        serve.expect("connected");
        let frame = raw_frame(0, &[("half.bin", &[7u8; 4096])], b"");
        stream.write_all(&frame[..frame.len() / 2]).unwrap();
        thread::sleep(Duration::from_millis(200));
        let asked = Instant::now();
        let (status, rest) = serve.signal("-TERM");
        let took = asked.elapsed();
        assert!(status.success(), "{runtime:?}: exit {status}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(15),
            "{runtime:?}: stopped after {took:?}"
        );
        assert!(
            events(&rest, "received").is_empty(),
            "{runtime:?}: no frame reported: {rest:?}"
        );
        assert_eq!(
            events(&rest, "disconnected").len(),
            1,
            "{runtime:?}: {rest:?}"
        );
    }
}

#[test]
fn python_reference_client_sends_to_tej_serve() {
    let Some(py) = python::reference_python() else {
        return;
    };
    for &runtime in Runtime::ALL {
        let scratch = Scratch::new(&format!("python-{runtime}"));
        let save_dir = scratch.path().join("saved");
        let mut serve = Serve::saving(runtime, &save_dir, "ack");
        let spec = serde_json::json!({
            "status": 5,
            "message": "Sending from client",
            "files": [
                {"name": "file.txt", "text": "hello world\n"},
                {"name": "generated.bin", "size": 1 << 20, "seed": 7},
            ],
        });
        let mut client = python::ReferencePeer::client(
            &py,
            serve.port(),
            [
                "--send-on-connect",
                &spec.to_string(),
                "--exit-after-frames",
                "1",
            ],
        );
        let generated = python::generated_file(1 << 20, 7);
        serve.expect("connected");
        let frame = serve.expect("received");
        assert_eq!(frame["status"], 5);
        assert_eq!(frame["message"], "Sending from client");
        let files = frame["files"].as_array().unwrap();
        assert_eq!(files.len(), 2);
        let save_dir = save_dir.canonicalize().unwrap();
        assert_file(&files[0], "file.txt", b"hello world\n");
        assert_file(&files[1], "generated.bin", &generated);
        assert_saved_inside(&files[0], &save_dir, b"hello world\n");
        assert_saved_inside(&files[1], &save_dir, &generated);

        client.expect_event("connected", python::DEFAULT_TIMEOUT);
        let reply = client.wait_for("received", python::DEFAULT_TIMEOUT);
        assert_eq!(reply["message_hex"], python::hex(b"ack"));
        client.wait_for("done", python::DEFAULT_TIMEOUT);
        client.expect_success(python::DEFAULT_TIMEOUT);
        let ended = serve.expect("disconnected");
        assert_eq!(ended["kind"], "peer_closed", "{ended}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for command in ["demo", "serve", "send"] {
        let output = tej().args([command, "--help"]).output().unwrap();
        assert!(output.status.success(), "{}", describe(&output));
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Usage: tej"), "{help}");
        for runtime in Runtime::ALL {
            if command != "demo" {
                assert!(help.contains(runtime.name()), "{runtime} in {help}");
            }
        }
    }
}

fn tls_file(name: &str) -> OsString {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tls")
        .join(name)
        .into_os_string()
}

/// `tej serve --tls-*` and `tej send --tls --ca` on every runtime, the
/// second client on another runtime; `--json` progress lines per file.
#[test]
fn tls_serve_and_send_on_every_runtime() {
    for (index, &runtime) in Runtime::ALL.iter().enumerate() {
        let other = Runtime::ALL[(index + 1) % Runtime::ALL.len()];
        let scratch = Scratch::new(&format!("tls-{runtime}"));
        let data = pattern(2 << 20, 11);
        let path = scratch.file("secret.bin", &data);
        let mut serve = Serve::start_tls(runtime, ANY_PORT, ["--reply", "sealed"]);
        for client in [runtime, other] {
            let tls = [
                path.clone().into(),
                "--tls".into(),
                "--ca".into(),
                tls_file("ca.pem"),
            ];
            let lines = send_for_reply(client, serve.addr(), &tls, "sealed");
            // Progress: per file, never backwards, ending at its size, once.
            let progress = events(&lines, "progress");
            assert!(!progress.is_empty(), "{lines:?}");
            let mut last = 0;
            for line in &progress {
                assert_eq!(line["file"], "secret.bin");
                assert_eq!(line["total"], data.len() as u64);
                let bytes = line["bytes"].as_u64().unwrap();
                assert!(bytes >= last, "{progress:?}");
                last = bytes;
            }
            assert_eq!(last, data.len() as u64);
            let ends = progress
                .iter()
                .filter(|line| line["bytes"] == data.len() as u64)
                .count();
            assert_eq!(ends, 1, "the end is printed once: {progress:?}");

            let connected = serve.expect("connected");
            assert_eq!(connected["tls"]["version"], "TLSv1.3", "{connected}");
            // Sent to an IP address: no SNI.
            assert_eq!(connected["tls"]["sni"], Value::Null, "{connected}");
            assert_eq!(
                connected["tls"]["client_subject"],
                Value::Null,
                "no client certificate: {connected}"
            );
            let frame = serve.expect("received");
            assert_file(&frame["files"][0], "secret.bin", &data);
            let ended = serve.expect("disconnected");
            assert_eq!(ended["reason"], "peer closed the connection");
        }

        // An untrusted certificate fails in one line; no frame gets through.
        for ca in [tls_file("other-ca.pem"), OsString::new()] {
            let mut args = vec![
                OsString::from(serve.addr()),
                "--runtime".into(),
                runtime.name().into(),
                "--message".into(),
                "should not arrive".into(),
                "--tls".into(),
            ];
            if !ca.is_empty() {
                args.extend(["--ca".into(), ca]);
            }
            let output = send(args);
            assert!(!output.status.success(), "{}", describe(&output));
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one line: {stderr}");
            assert!(
                lines[0].starts_with("tej send: ") && lines[0].contains("not trusted"),
                "{runtime}: {stderr}"
            );
        }
        // A plain TEJ client gets no frame through a TLS port.
        let output = send_on(
            runtime,
            serve.addr(),
            &[
                "--message".into(),
                "in the clear".into(),
                "--wait-replies".into(),
                "1".into(),
            ],
        );
        assert!(!output.status.success(), "{}", describe(&output));
        let (status, rest) = serve.interrupt();
        assert!(status.success());
        assert!(
            events(&rest, "received").is_empty() && events(&rest, "connected").is_empty(),
            "nothing reached a handler: {rest:?}"
        );
    }
}

/// A client certificate required by `--tls-client-ca`: served with one,
/// refused without. In TLS 1.3 the client learns of the refusal only after
/// its side of the handshake is done (the server's alert follows its
/// Finished), so delivery is proven by waiting for a reply.
#[test]
fn tls_client_certificates_are_required_when_asked() {
    for &runtime in Runtime::ALL {
        client_certificate_on(runtime);
    }
}

/// One runtime of [`tls_client_certificates_are_required_when_asked`]:
/// the `connected` line names the TLS version, cipher suite, SNI and the
/// client certificate's subject.
fn client_certificate_on(runtime: Runtime) {
    let mut serve = Serve::start_tls(
        runtime,
        ANY_PORT,
        [
            OsString::from("--tls-client-ca"),
            tls_file("ca.pem"),
            "--reply".into(),
            "known".into(),
        ],
    );
    let base = [
        OsString::from(serve.addr()),
        "--wait-replies".into(),
        "1".into(),
        "--message".into(),
        "with identity".into(),
        "--tls".into(),
        "--ca".into(),
        tls_file("ca.pem"),
        "--server-name".into(),
        "tej.test".into(),
    ];
    let mut with = base.to_vec();
    with.extend([
        "--cert".into(),
        tls_file("client.pem"),
        "--key".into(),
        tls_file("client.key"),
    ]);
    let output = send(with);
    assert!(output.status.success(), "{}", describe(&output));
    let connected = serve.expect("connected");
    let tls = &connected["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{runtime}: {connected}");
    assert!(
        tls["cipher"].as_str().unwrap().starts_with("TLS13_"),
        "{connected}"
    );
    assert_eq!(tls["sni"], "tej.test", "{connected}");
    assert_eq!(tls["client_subject"], "CN=tej client", "{connected}");
    assert_eq!(serve.expect("received")["message"], "with identity");
    serve.expect("disconnected");

    let output = send(base);
    assert!(!output.status.success(), "{}", describe(&output));
    let (_, rest) = serve.interrupt();
    assert!(events(&rest, "received").is_empty(), "{rest:?}");
}

/// `--bind unix:PATH` and `tej send unix:PATH` on every runtime: a stale
/// socket file (a server that died) is replaced, a live server's is not,
/// and the socket file is removed when the server stops.
#[test]
fn unix_sockets_on_every_runtime() {
    for &runtime in Runtime::ALL {
        let scratch = Scratch::new(&format!("unix-{runtime}"));
        let (socket, bind) = scratch.socket("tej.sock");
        let data = pattern(300_000, 5);
        let path = scratch.file("over-unix.bin", &data);
        // What a killed server leaves behind: a socket nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let mut serve = Serve::start_at(runtime, &bind, ["--reply", "local"]);
        send_for_reply(runtime, &bind, &[path.into()], "local");
        let connected = serve.expect("connected");
        assert_eq!(
            connected["peer"],
            Value::Null,
            "no IP peer on a Unix socket"
        );
        assert_file(
            &serve.expect("received")["files"][0],
            "over-unix.bin",
            &data,
        );
        serve.expect("disconnected");
        // A second server finds this one live (by connecting once) and
        // leaves its socket alone.
        let second = tej()
            .args(["serve", "--bind", &bind, "--runtime", runtime.name()])
            .output()
            .unwrap();
        assert!(!second.status.success(), "a second server on a live socket");
        let said = String::from_utf8_lossy(&second.stderr);
        assert!(said.contains("Address already in use"), "{said}");
        let _probe = serve.expect("connected");
        let (status, _) = serve.interrupt();
        assert!(status.success());
        assert!(!socket.exists(), "the socket file is removed on exit");
    }
}

/// TLS over a Unix socket on every runtime: a Unix path names no host,
/// so `tej send --tls` asks for `--server-name` (one line) rather than
/// checking the certificate against the word "unix"; given it, the frame
/// arrives.
#[test]
fn tls_over_unix_sockets_on_every_runtime() {
    for &runtime in Runtime::ALL {
        let scratch = Scratch::new(&format!("tls-unix-{runtime}"));
        let (_, bind) = scratch.socket("tej-tls.sock");
        let mut serve = Serve::start_tls(runtime, &bind, ["--reply", "sealed"]);
        let base = [
            OsString::from(&bind),
            "--runtime".into(),
            runtime.name().into(),
            "--message".into(),
            "over TLS over a Unix socket".into(),
            "--wait-replies".into(),
            "1".into(),
            "--tls".into(),
            "--ca".into(),
            tls_file("ca.pem"),
        ];
        let unnamed = send(base.clone());
        assert!(!unnamed.status.success(), "{}", describe(&unnamed));
        let said = String::from_utf8_lossy(&unnamed.stderr);
        assert!(said.contains("needs --server-name"), "{said}");
        assert_eq!(said.trim_end().lines().count(), 1, "{said}");

        let mut named = base.to_vec();
        named.extend(["--server-name".into(), "tej.test".into()]);
        let output = send(named);
        assert!(output.status.success(), "{}", describe(&output));
        serve.expect("connected");
        assert_eq!(
            serve.expect("received")["message"],
            "over TLS over a Unix socket"
        );
        serve.expect("disconnected");
        let (status, _) = serve.interrupt();
        assert!(status.success());
    }
}

/// A TLS peer that is not ours: Python's `ssl` module speaks raw TEJ
/// (frames written by hand in the script) to `tej serve --tls-*`, verifying
/// the server's certificate against the test CA.
#[test]
fn python_ssl_client_speaks_raw_tej_to_tej_serve() {
    let Some(py) = python::reference_python() else {
        return;
    };
    const SCRIPT: &str = r#"
import hashlib, json, socket, ssl, struct, sys
port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=30)
tls = context.wrap_socket(raw, server_hostname="localhost")
data = bytes(range(256)) * 4096
name = b"from-python.bin"
message = b"hello over ssl"
frame = bytes([0x80 | 9, 1]) + struct.pack(">Q", 1)
frame += struct.pack(">H", len(name)) + name + struct.pack(">Q", len(data)) + data
frame += struct.pack(">Q", len(message)) + message
tls.sendall(frame)
def read_exact(n):
    out = b""
    while len(out) < n:
        chunk = tls.recv(n - len(out))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out
head = read_exact(10)
assert head[0] & 0x80, head
count = struct.unpack(">Q", head[2:10])[0]
assert count == 0, count
length = struct.unpack(">Q", read_exact(8))[0]
reply = read_exact(length)
tls.unwrap()  # close_notify both ways
print(json.dumps({"status": head[0] & 0x7f, "reply": reply.decode(), "sha256": hashlib.sha256(data).hexdigest(), "cipher": tls.cipher()[0] if tls.cipher() else None}))
"#;
    for &runtime in Runtime::ALL {
        let mut serve = Serve::start_tls(runtime, ANY_PORT, ["--reply", "ssl ok"]);
        let output = Command::new(&py)
            .args(["-c", SCRIPT, &serve.port().to_string()])
            .arg(tls_file("ca.pem"))
            .output()
            .expect("python runs");
        assert!(output.status.success(), "{runtime}: {}", describe(&output));
        let result: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(result["status"], 0, "{result}");
        assert_eq!(result["reply"], "ssl ok");
        serve.expect("connected");
        let frame = serve.expect("received");
        assert_eq!(frame["status"], 9);
        assert_eq!(frame["message"], "hello over ssl");
        assert_eq!(frame["files"][0]["name"], "from-python.bin");
        assert_eq!(frame["files"][0]["size"], 256 * 4096);
        assert_eq!(frame["files"][0]["sha256"], result["sha256"]);
        let ended = serve.expect("disconnected");
        assert_eq!(ended["kind"], "peer_closed", "{ended}");
    }
}

/// `GET /metrics` from `addr`: each sample line's value by its name (and
/// labels), the comment lines left out.
fn scrape(addr: &str) -> std::collections::BTreeMap<String, f64> {
    let mut stream = TcpStream::connect(addr).expect("the metrics port answers");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tej\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("NAME VALUE");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// `tej serve --metrics` after a known load, on every runtime: one
/// connection refused at the cap, one failed TLS handshake, then three
/// clients of four 100-byte frames each, every frame answered: the scraped
/// counters are exactly what that load makes.
#[test]
fn serve_metrics_count_a_known_load() {
    const CLIENTS: u64 = 3;
    const FRAMES: u64 = 4;
    const MESSAGE: u64 = 100;
    // A frame without files is 18 bytes of headers and its message.
    const FRAME_LEN: u64 = 18 + MESSAGE;
    const REPLY_LEN: u64 = 18 + 2;
    for &runtime in Runtime::ALL {
        let mut serve = Serve::start_tls(
            runtime,
            ANY_PORT,
            [
                "--max-connections",
                "1",
                "--reply",
                "ok",
                "--metrics",
                "127.0.0.1:0",
            ],
        );
        let metrics = serve.expect("metrics")["addr"].as_str().unwrap().to_owned();
        // A connection that holds the one place during its handshake...
        let mut stalled = TcpStream::connect(serve.addr()).unwrap();
        stalled.set_read_timeout(Some(TIMEOUT)).unwrap();
        // ...so that the next is refused at the cap, closed at once; the
        // first is surely accepted by then (accepts are in order).
        let mut refused = TcpStream::connect(serve.addr()).unwrap();
        refused.set_read_timeout(Some(TIMEOUT)).unwrap();
        assert_eq!(refused.read(&mut [0; 16]).unwrap_or(0), 0, "{runtime}");
        // The first then fails its handshake: not TLS.
        stalled.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let _ = stalled.read_to_end(&mut Vec::new());
        let message = "m".repeat(MESSAGE as usize);
        for _ in 0..CLIENTS {
            let output = send_on(
                runtime,
                serve.addr(),
                &[
                    "--tls".into(),
                    "--ca".into(),
                    tls_file("ca.pem"),
                    "--message".into(),
                    message.clone().into(),
                    "--repeat".into(),
                    FRAMES.to_string().into(),
                    "--wait-replies".into(),
                    FRAMES.to_string().into(),
                ],
            );
            assert!(output.status.success(), "{runtime}: {}", describe(&output));
            serve.expect("connected");
            for _ in 0..FRAMES {
                serve.expect("received");
            }
            serve.expect("disconnected");
        }
        // The last disconnect is counted right after it is printed.
        let deadline = Instant::now() + TIMEOUT;
        let scraped = loop {
            let scraped = scrape(&metrics);
            if scraped.get("tej_connections_open") == Some(&0.0) || Instant::now() > deadline {
                break scraped;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let expected: std::collections::BTreeMap<String, f64> = [
            ("tej_connections_accepted_total", 1 + CLIENTS),
            ("tej_connections_refused_total", 1),
            ("tej_connections_open", 0),
            ("tej_handshake_failures_total", 1),
            ("tej_proxy_failures_total", 0),
            ("tej_health_checks_total", 0),
            ("tej_frames_received_total", CLIENTS * FRAMES),
            ("tej_received_bytes_total", CLIENTS * FRAMES * FRAME_LEN),
            ("tej_frames_sent_total", CLIENTS * FRAMES),
            ("tej_sent_bytes_total", CLIENTS * FRAMES * REPLY_LEN),
            ("tej_disconnects_total{kind=\"peer_closed\"}", CLIENTS),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value as f64))
        .collect();
        assert_eq!(scraped, expected, "{runtime}");
        let (status, _) = serve.interrupt();
        assert!(status.success());
    }
}
