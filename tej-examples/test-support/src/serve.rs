//! A `tej serve --json` process, for the suites that run the tool (`cli`,
//! `deploy`, `fleet`, `tls_certificates`): its stdout and stderr read line
//! by line on threads of their own, its `listening` line checked, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// A running `tej serve --json`.
pub struct ServeProcess {
    pub child: Child,
    stdout: Mutex<Receiver<String>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Spawns `command` (`tej serve --json …`) with stdin closed and
    /// stdout and stderr piped.
    pub fn spawn(command: &mut Command) -> ServeProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tej serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (sink, pipe) = (Arc::clone(&stderr), child.stderr.take());
        thread::spawn(move || {
            for line in BufReader::new(pipe.expect("piped stderr")).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        ServeProcess {
            child,
            stdout: Mutex::new(lines),
            stderr,
        }
    }

    /// The next stdout line within `timeout`; `None` if none came (or the
    /// process ended).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.lock().unwrap().recv_timeout(timeout).ok()
    }

    /// The first stdout line, which must be exactly `{"event": "listening",
    /// "addr": …}`: the address it names.
    pub fn listening(&self, timeout: Duration) -> String {
        let line = self.next_line(timeout).unwrap_or_else(|| {
            panic!(
                "no listening line from tej serve; stderr: {:?}",
                self.stderr()
            )
        });
        let listening: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}"));
        let object = listening.as_object().expect("an object");
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["addr", "event"],
            "the first line is exactly {{event, addr}}: {listening}"
        );
        assert_eq!(listening["event"], "listening");
        listening["addr"].as_str().unwrap().to_string()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished process's exit status, stdout and stderr, for a failure's
/// message.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
