//! Test support for interop tests against the Python reference implementation
//! (`tej-protoc==0.2.4`).
//!
//! Use it from an integration test as `use tej_test_support::python;`, then:
//!
//! ```no_run
//! # use tej_test_support::python;
//! # fn demo() {
//! let Some(py) = python::reference_python() else { return }; // SKIP printed
//! let (mut server, port) = python::ReferencePeer::server(&py, ["--exit-on-disconnect"]);
//! // ... connect to 127.0.0.1:port with the code under test ...
//! let ev = server.wait_for("received", python::DEFAULT_TIMEOUT);
//! assert_eq!(ev["message_hex"], "48656c6c6f");
//! # }
//! ```
//!
//! [`reference_python`] provisions (once, cached, safe across concurrently
//! running test binaries) a virtualenv in `<workspace>/target/interop-venv`
//! with the reference installed. When that is impossible it prints
//! `SKIP: <reason>` and returns `None`, unless `TEJ_REQUIRE_INTEROP=1`, in which
//! case it panics. `TEJ_REFERENCE_PYTHON=/path/to/python` uses a given
//! interpreter (that can already import `tej_protoc` 0.2.4) instead;
//! `TEJ_PYTHON` names the base interpreter used to create the venv (default
//! `python3`, then `python`). `TEJ_INTEROP_VERBOSE=1` forwards the peers'
//! stderr live.
//!
//! [`ReferencePeer`] runs `tests/interop/reference_peer.py` (whose header
//! documents the JSON event lines and the command-line actions) and reads its
//! events on a background thread. The child is killed when the value is dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The exact version of the reference implementation the tests run against.
pub const REFERENCE_VERSION: &str = "0.2.4";

/// A generous timeout for one expected event (a slow CI machine, large frames).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable that turns a skip into a test failure.
pub const REQUIRE_ENV: &str = "TEJ_REQUIRE_INTEROP";

/// The workspace root (two levels above this crate's manifest directory,
/// `tej-examples/test-support`).
pub fn workspace_root() -> PathBuf {
    crate::workspace_root()
}

/// Where the reference virtualenv lives: `<workspace>/target/interop-venv`
/// (independent of `CARGO_TARGET_DIR`).
pub fn venv_dir() -> PathBuf {
    workspace_root().join("target").join("interop-venv")
}

/// Path of `reference_peer.py`.
pub fn peer_script() -> PathBuf {
    workspace_root()
        .join("tej-examples")
        .join("tests")
        .join("interop")
        .join("reference_peer.py")
}

/// Whether `TEJ_REQUIRE_INTEROP` asks for interop tests to be mandatory.
pub fn interop_required() -> bool {
    matches!(
        std::env::var(REQUIRE_ENV).as_deref().map(str::trim),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// Returns a Python interpreter that can `import tej_protoc` (version
/// [`REFERENCE_VERSION`]), creating the virtualenv on first use.
///
/// Returns `None` after printing `SKIP: <reason>` to stderr when that is not
/// possible; panics instead when `TEJ_REQUIRE_INTEROP=1`.
pub fn reference_python() -> Option<PathBuf> {
    static CACHE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CACHE.get_or_init(provision) {
        Ok(python) => Some(python.clone()),
        Err(reason) => {
            if interop_required() {
                panic!("{REQUIRE_ENV}=1 but the reference implementation is unavailable: {reason}");
            }
            // Written to the process's stderr directly (not `eprintln!`, which
            // the test harness captures) so the skip shows in a normal run.
            let test = thread::current().name().unwrap_or("?").to_owned();
            let _ = writeln!(std::io::stderr(), "SKIP: {reason} (in {test})");
            None
        }
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Runs a command to completion, returning its stdout or a description of
/// what went wrong (with the tail of its output).
fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "{what} failed ({}):\n    {}",
            output.status,
            tail.join("\n    ")
        ))
    }
}

fn check_reference(python: &Path) -> Result<(), String> {
    let code = format!(
        "import importlib.metadata as m, tej_protoc.server, tej_protoc.client\n\
         v = m.version('tej-protoc')\n\
         assert v == '{REFERENCE_VERSION}', 'tej-protoc ' + v + ' installed'\n"
    );
    run(
        Command::new(python).arg("-c").arg(code),
        &format!(
            "importing tej_protoc {REFERENCE_VERSION} with {}",
            python.display()
        ),
    )
    .map(drop)
}

/// Removes leftovers of builds that crashed more than an hour ago.
fn clean_stale_builds(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("interop-venv.tmp-") || name.starts_with("interop-venv.stale-")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old || name.starts_with("interop-venv.stale-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn find_base_python() -> Result<PathBuf, String> {
    let candidates: Vec<String> = match std::env::var("TEJ_PYTHON") {
        Ok(p) if !p.trim().is_empty() => vec![p],
        _ => vec!["python3".into(), "python".into()],
    };
    let mut errors = Vec::new();
    for candidate in &candidates {
        match run(
            Command::new(candidate).args(["-c", "import sys, venv; print(sys.version_info[0])"]),
            &format!("probing {candidate}"),
        ) {
            Ok(major) if major.trim() == "3" => return Ok(PathBuf::from(candidate)),
            Ok(major) => errors.push(format!("{candidate} is Python {}", major.trim())),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no usable Python 3 interpreter found: {}",
        errors.join("; ")
    ))
}

/// Creates the venv, or finds it already made (by an earlier run or by a
/// concurrently running test binary). Each builder works in its own temporary
/// directory and publishes it with an atomic rename; the loser of a race
/// throws its copy away. A venv works after the rename because its
/// interpreter finds its prefix from the `pyvenv.cfg` next to it.
fn provision() -> Result<PathBuf, String> {
    if let Ok(explicit) = std::env::var("TEJ_REFERENCE_PYTHON") {
        if !explicit.trim().is_empty() {
            let python = PathBuf::from(explicit);
            check_reference(&python)?;
            return Ok(python);
        }
    }

    let venv = venv_dir();
    let python = venv_python(&venv);
    if python.exists() && check_reference(&python).is_ok() {
        return Ok(python);
    }

    let target = venv.parent().expect("venv dir has a parent").to_path_buf();
    std::fs::create_dir_all(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    clean_stale_builds(&target);

    let base = find_base_python()?;
    // Removed when dropped, unless published (renamed) by then.
    let tmp = tempfile::Builder::new()
        .prefix("interop-venv.tmp-")
        .tempdir_in(&target)
        .map_err(|e| format!("cannot create a directory in {}: {e}", target.display()))?;
    build_venv(&base, tmp.path()).and_then(|()| publish(tmp.path(), &venv))?;
    check_reference(&python)?;
    Ok(python)
}

fn build_venv(base: &Path, dir: &Path) -> Result<(), String> {
    run(
        Command::new(base).arg("-m").arg("venv").arg(dir),
        &format!("`{} -m venv {}`", base.display(), dir.display()),
    )?;
    let python = venv_python(dir);
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--timeout", "60", "--retries", "3"])
            .arg(format!("tej-protoc=={REFERENCE_VERSION}"))
            .env("PIP_NO_INPUT", "1"),
        &format!("`pip install tej-protoc=={REFERENCE_VERSION}`"),
    )?;
    check_reference(&python)
}

fn publish(tmp: &Path, venv: &Path) -> Result<(), String> {
    for _ in 0..3 {
        if std::fs::rename(tmp, venv).is_ok() {
            return Ok(());
        }
        // Someone else published first; use theirs if it works.
        if check_reference(&venv_python(venv)).is_ok() {
            return Ok(());
        }
        // A broken venv is in the way: move it aside (atomically), then retry.
        // Into a fresh directory next to it, removed (with it) when dropped.
        let parent = venv.parent().expect("venv dir has a parent");
        if let Ok(stale) = tempfile::Builder::new()
            .prefix("interop-venv.stale-")
            .tempdir_in(parent)
        {
            let _ = std::fs::rename(venv, stale.path().join("venv"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "could not publish the virtualenv to {}",
        venv.display()
    ))
}

/// Deterministic file contents shared with `reference_peer.py`:
/// byte `i` is `(i * 31 + seed) & 0xff`.
pub fn generated_file(size: u64, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(31).wrapping_add(u64::from(seed)) & 0xff) as u8)
        .collect()
}

/// Lower-case hex SHA-256 of `data`, as the script reports it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(Sha256::digest(data).as_slice())
}

/// Lower-case hex of `data` (the script's `message_hex`).
pub fn hex(data: &[u8]) -> String {
    use std::fmt::Write;
    data.iter()
        .fold(String::with_capacity(data.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The `{"name","size","sha256"}` object the script reports for a file.
pub fn file_json(name: &str, data: &[u8]) -> Value {
    serde_json::json!({ "name": name, "size": data.len(), "sha256": sha256_hex(data) })
}

/// A running `reference_peer.py` (the real reference implementation), with
/// its JSON event lines read on a background thread. Killed when dropped.
pub struct ReferencePeer {
    role: &'static str,
    child: Child,
    events: Receiver<Value>,
    history: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
    reported: bool,
}

impl ReferencePeer {
    /// Starts `reference_peer.py server --host 127.0.0.1 ARGS...` and waits for
    /// its `listening` line. Returns the peer and the port it listens on.
    pub fn server<I, S>(python: &Path, args: I) -> (ReferencePeer, u16)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut peer = Self::spawn(python, "server", &["--host", "127.0.0.1"], args);
        let Some(first) = peer.next_event(DEFAULT_TIMEOUT) else {
            peer.fail("no `listening` line from the reference server");
        };
        let port = first
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        match (first["event"].as_str(), port) {
            (Some("listening"), Some(port)) => (peer, port),
            _ => peer.fail(&format!("expected a `listening` line first, got {first}")),
        }
    }

    /// Starts `reference_peer.py client --host 127.0.0.1 --port PORT ARGS...`.
    pub fn client<I, S>(python: &Path, port: u16, args: I) -> ReferencePeer
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let port = port.to_string();
        Self::spawn(
            python,
            "client",
            &["--host", "127.0.0.1", "--port", port.as_str()],
            args,
        )
    }

    fn spawn<I, S>(python: &Path, role: &'static str, fixed: &[&str], args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg(peer_script())
            .arg(role)
            .args(fixed)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the reference {role} ({cmd:?}): {e}"));

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::channel();
        thread::Builder::new()
            .name(format!("reference-{role}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    let event = serde_json::from_str(&line).unwrap_or_else(
                        |_| serde_json::json!({ "event": "invalid-json", "line": line }),
                    );
                    if tx.send(event).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn stdout reader");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let verbose = std::env::var_os("TEJ_INTEROP_VERBOSE").is_some_and(|v| v == "1");
        thread::Builder::new()
            .name(format!("reference-{role}-stderr"))
            .spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if verbose {
                        eprint!("{text}");
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&text);
                    }
                }
            })
            .expect("spawn stderr reader");

        ReferencePeer {
            role,
            child,
            events,
            history: Vec::new(),
            stderr,
            exit: None,
            reported: false,
        }
    }

    /// The next event line, or `None` if none came within `timeout` or the
    /// child closed its stdout (exited).
    pub fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                self.history.push(event.clone());
                Some(event)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next event, which must come within `timeout` and be named `event`;
    /// panics (with the peer's stderr) otherwise.
    pub fn expect_event(&mut self, event: &str, timeout: Duration) -> Value {
        match self.next_event(timeout) {
            Some(ev) if ev["event"] == event => ev,
            Some(ev) => self.fail(&format!("expected a `{event}` event next, got {ev}")),
            None => self.fail(&format!("no `{event}` event within {timeout:?}")),
        }
    }

    /// Skips events until one named `event` arrives and returns it; panics
    /// (with diagnostics) if none arrives within `timeout` in total.
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> Value {
        self.events_until(event, timeout)
            .pop()
            .expect("events_until returns the matching event last")
    }

    /// Returns every event up to and including the first one named `event`;
    /// panics (with diagnostics) if none arrives within `timeout` in total.
    pub fn events_until(&mut self, event: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(ev) => {
                    let done = ev["event"] == event;
                    seen.push(ev);
                    if done {
                        return seen;
                    }
                }
                None => self.fail(&format!(
                    "no `{event}` event within {timeout:?} (the peer exited or timed out)"
                )),
            }
        }
    }

    /// Every event until the `count`-th `event` (inclusive); panics after `timeout`.
    pub fn events_until_count(
        &mut self,
        event: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut matched = 0;
        while matched < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(ev) => {
                    matched += usize::from(ev["event"] == event);
                    seen.push(ev);
                }
                None => self.fail(&format!(
                    "only {matched} of {count} `{event}` events within {timeout:?}"
                )),
            }
        }
        seen
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit {
                return Some(status);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(status);
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return None,
                Err(e) => self.fail(&format!("waiting for the child failed: {e}")),
            }
        }
    }

    /// Waits for the child to exit with code 0 (after its `done` line);
    /// panics otherwise.
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(status) if status.success() => {}
            Some(status) => self.fail(&format!("the reference {} exited with {status}", self.role)),
            None => self.fail(&format!("still running after {timeout:?}")),
        }
    }

    /// The process id of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every event read so far.
    pub fn history(&self) -> &[Value] {
        &self.history
    }

    /// What the child wrote to stderr so far (its logging and tracebacks).
    pub fn stderr_output(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Kills the child now (also done on drop).
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status);
            }
        }
    }

    /// Panics with `msg`, the events seen so far and the child's stderr.
    pub fn fail(&mut self, msg: &str) -> ! {
        // Give the stderr reader a moment to catch a traceback being written.
        thread::sleep(Duration::from_millis(200));
        if let Ok(Some(status)) = self.child.try_wait() {
            self.exit = Some(status);
        }
        self.reported = true;
        panic!("{}\n{msg}", self.diagnostics())
    }

    fn diagnostics(&self) -> String {
        let events: Vec<String> = self.history.iter().map(Value::to_string).collect();
        format!(
            "reference {} (pid {}, exit {:?})\n--- events seen ---\n{}\n--- stderr ---\n{}",
            self.role,
            self.child.id(),
            self.exit,
            events.join("\n"),
            self.stderr_output()
        )
    }
}

impl Drop for ReferencePeer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() && !self.reported {
            eprintln!("{}", self.diagnostics());
        }
    }
}
