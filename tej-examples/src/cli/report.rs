//! What `tej serve` and `tej send` print: one [`Event`] per line, as JSON
//! (`--json`) or as readable text, and the per-file hashing behind it.
//!
//! Received files never sit in memory: [`FileSink`] sends each one either
//! into a spool directory, hashed as it is spooled
//! ([`tej_net::spool::to_dir_with`]), or through a SHA-256 hasher that keeps
//! nothing but the digest ([`FileTarget::Writer`]).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tej_core::{DisconnectReason, FileTarget, Frame};

use crate::demo::hex_sha256;

/// Longest message shown in the readable output; JSON carries it whole.
const TEXT_MESSAGE_PREVIEW: usize = 400;

/// One received file, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The name exactly as the peer sent it (not a path to trust).
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of its content.
    pub sha256: String,
    /// Where it was saved, or `None` when it was hashed and discarded.
    pub saved_as: Option<String>,
}

/// One received frame, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameReport {
    /// The peer's address.
    pub peer: Option<String>,
    /// The custom status, 0..=127.
    pub status: u8,
    /// The protocol version byte, as sent.
    pub version: u8,
    /// The files, in wire order.
    pub files: Vec<FileReport>,
    /// The message length in bytes (0: no message).
    pub message_len: u64,
    /// The message as UTF-8 (invalid sequences replaced), `None` when the
    /// frame has no message.
    pub message: Option<String>,
    /// Lower-case hex SHA-256 of the message, `None` when there is none.
    pub message_sha256: Option<String>,
}

/// What a connection's TLS handshake agreed on, in a `connected` event:
/// `{"version":"TLSv1.3","cipher":"TLS13_AES_256_GCM_SHA384","sni":"localhost","client_subject":"CN=tej client"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsReport {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, as IANA names it.
    pub cipher: String,
    /// The server name the client asked for, if it sent one (`null` if not).
    pub sni: Option<String>,
    /// The subject of the client's certificate as RFC 4514 writes it
    /// (`CN=tej client`), when the client presented one (`null` if not).
    pub client_subject: Option<String>,
}

impl TlsReport {
    /// The report of a server's side of a handshake.
    pub fn of(tls: &tej_core::TlsInfo) -> TlsReport {
        TlsReport {
            version: tls.version.clone(),
            cipher: tls.cipher.clone(),
            sni: tls.sni.clone(),
            client_subject: tls
                .peer_certificates
                .first()
                .map(|der| super::subject::subject(der).unwrap_or_else(|| "?".to_owned())),
        }
    }
}

/// One line of `tej serve` or `tej send` output.
///
/// As JSON, `event` comes first and names the variant in snake case:
/// `{"event":"listening","addr":"127.0.0.1:4000"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The server is accepting connections at `addr`.
    Listening {
        /// The bound address, `IP:PORT`.
        addr: String,
    },
    /// `tej serve --metrics`: Prometheus metrics are served on
    /// `http://ADDR/metrics`.
    Metrics {
        /// The bound address, `IP:PORT`.
        addr: String,
    },
    /// A connection opened.
    Connected {
        /// The peer's address: with `--proxy-protocol`, the client the
        /// balancer's PROXY header named.
        peer: Option<String>,
        /// With `--proxy-protocol`, the balancer's own address (the
        /// connection's other end); absent for a direct connection.
        #[serde(skip_serializing_if = "Option::is_none")]
        proxy: Option<String>,
        /// Over TLS, what the handshake agreed on; absent without TLS.
        #[serde(skip_serializing_if = "Option::is_none")]
        tls: Option<TlsReport>,
    },
    /// A frame (any status but 2) arrived.
    Received(FrameReport),
    /// A ping (status 2) arrived.
    Ping(FrameReport),
    /// A connection ended.
    Disconnected {
        /// The peer's address.
        peer: Option<String>,
        /// The cause in words, such as `peer closed the connection`,
        /// `idle timeout`, `frame timeout: ...` or `protocol error: ...`.
        reason: String,
        /// The cause as a stable keyword: `peer_closed`, `protocol`,
        /// `idle_timeout`, `frame_timeout`, `local_close`, `io`, `storage`
        /// or `dropped`.
        kind: String,
    },
    /// `tej send` queued a frame.
    Sent {
        /// Which frame, from 1.
        frame: u64,
        /// Its custom status.
        status: u8,
        /// How many files it carries.
        files: usize,
        /// Its size on the wire in bytes.
        bytes: u64,
    },
    /// `tej send`: how much of a file has been written to the connection.
    /// Printed for each file whenever another sixteenth of it, or 100 ms,
    /// has gone out since the last line, and once at its end.
    Progress {
        /// The file's name as sent.
        file: String,
        /// Its bytes written so far (over every `--repeat` of the frame).
        bytes: u64,
        /// Its bytes in all.
        total: u64,
    },
    /// `tej send` is done: what went out and how fast.
    Summary {
        /// Frames sent (pings included).
        frames: u64,
        /// Bytes on the wire.
        bytes: u64,
        /// From the first frame queued to the connection flushed and closed.
        seconds: f64,
        /// `bytes / seconds`.
        bytes_per_second: f64,
        /// Replies (non-ping frames) received.
        replies: u64,
    },
}

impl Event {
    /// The event for a received frame: [`Event::Ping`] for status 2,
    /// [`Event::Received`] otherwise.
    pub fn frame(report: FrameReport) -> Event {
        if report.status == tej_core::Status::PING.get() {
            Event::Ping(report)
        } else {
            Event::Received(report)
        }
    }

    /// The event for a connection that ended.
    pub fn disconnected(peer: Option<SocketAddr>, reason: &DisconnectReason) -> Event {
        Event::Disconnected {
            peer: peer.map(|peer| peer.to_string()),
            reason: reason.to_string(),
            kind: reason_kind(reason).to_string(),
        }
    }

    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The event as readable text: one line, or a few for a frame's files.
    pub fn to_text(&self) -> String {
        let peer_of = |peer: &Option<String>| peer.clone().unwrap_or_else(|| "?".into());
        match self {
            Event::Listening { addr } => format!("listening on {addr}; Ctrl-C to stop"),
            Event::Metrics { addr } => format!("metrics on http://{addr}/metrics"),
            Event::Connected { peer, proxy, tls } => {
                let mut line = format!("{} connected", peer_of(peer));
                if let Some(proxy) = proxy {
                    let _ = write!(line, " (through {proxy})");
                }
                if let Some(tls) = tls {
                    let _ = write!(line, " over {} {}", tls.version, tls.cipher);
                    if let Some(subject) = &tls.client_subject {
                        let _ = write!(line, ", client {subject}");
                    }
                }
                line
            }
            Event::Received(frame) => frame_text("received", frame),
            Event::Ping(frame) => frame_text("ping", frame),
            Event::Disconnected { peer, reason, .. } => {
                format!("{} disconnected: {reason}", peer_of(peer))
            }
            Event::Sent {
                frame,
                status,
                files,
                bytes,
            } => format!(
                "queued frame {frame}: status {status}, {files} file(s), {}",
                human_bytes(*bytes)
            ),
            Event::Progress { file, bytes, total } => format!(
                "{file:?}: {} of {} sent",
                human_bytes(*bytes),
                human_bytes(*total)
            ),
            Event::Summary {
                frames,
                bytes,
                seconds,
                bytes_per_second,
                replies,
            } => format!(
                "sent {frames} frame(s), {} in {seconds:.2} s ({}/s); {replies} repl{}",
                human_bytes(*bytes),
                human_bytes(*bytes_per_second as u64),
                if *replies == 1 { "y" } else { "ies" }
            ),
        }
    }
}

/// A stable keyword for a disconnect's cause.
pub fn reason_kind(reason: &DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::PeerClosed => "peer_closed",
        DisconnectReason::Protocol(_) => "protocol",
        DisconnectReason::IdleTimeout => "idle_timeout",
        DisconnectReason::StallTimeout => "stall_timeout",
        DisconnectReason::FrameTimeout => "frame_timeout",
        DisconnectReason::LocalClose => "local_close",
        DisconnectReason::Io(_) => "io",
        DisconnectReason::Storage(_) => "storage",
        DisconnectReason::Dropped => "dropped",
        _ => "other",
    }
}

fn frame_text(what: &str, frame: &FrameReport) -> String {
    let mut text = format!(
        "{} {what}: status {}, version {}, {} file(s), ",
        frame.peer.as_deref().unwrap_or("?"),
        frame.status,
        frame.version,
        frame.files.len()
    );
    match &frame.message {
        None => text.push_str("no message"),
        Some(message) => {
            let shown: String = message.chars().take(TEXT_MESSAGE_PREVIEW).collect();
            let _ = write!(
                text,
                "message ({} bytes): {}",
                frame.message_len,
                shown.escape_debug()
            );
            if shown.len() < message.len() {
                text.push_str("...");
            }
        }
    }
    for file in &frame.files {
        let _ = write!(
            text,
            "\n    {:?} {} sha256 {}",
            file.name,
            human_bytes(file.size),
            file.sha256
        );
        match &file.saved_as {
            Some(path) => {
                let _ = write!(text, " saved as {path}");
            }
            None => text.push_str(" (discarded)"),
        }
    }
    text
}

/// `1234567` as `1.18 MiB` ([`indicatif::HumanBytes`]).
pub fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// Where events go: stdout, as JSON lines or text, one whole line at a time.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// JSON lines instead of text.
    pub json: bool,
}

impl Printer {
    /// Prints one event and flushes. Lines from several threads never mix.
    pub fn print(&self, event: &Event) {
        let line = if self.json {
            event.to_json()
        } else {
            event.to_text()
        };
        let mut out = io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            tracing::debug!("stdout is gone; an event was not printed");
        }
    }
}

/// A SHA-256 hasher that is also a [`Write`]: a received file's bytes
/// pass through it and only the digest and length remain.
#[derive(Clone, Default)]
struct HashingSink {
    state: Arc<Mutex<(Sha256, u64)>>,
}

impl HashingSink {
    fn finish(&self) -> (String, u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (hasher, len) = std::mem::take(&mut *state);
        (hex::encode(hasher.finalize()), len)
    }
}

impl Write for HashingSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0.update(data);
        state.1 += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Chooses where a connection's received files go, and reports them.
///
/// With a save directory, files are spooled there by the core under a
/// sanitised, unique name and hashed on the way
/// ([`tej_net::spool::to_dir_with`]), never read back; without one, they
/// stream through a hasher and are dropped. Either way no file is ever
/// held in memory.
#[derive(Default)]
pub struct FileSink {
    save_dir: Option<PathBuf>,
    /// The hashers of the current frame's files, by index.
    hashers: Vec<HashingSink>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("save_dir", &self.save_dir)
            .field("files_in_frame", &self.hashers.len())
            .finish()
    }
}

impl FileSink {
    /// Files go to `save_dir`, or through a hasher when it is `None`.
    pub fn new(save_dir: Option<PathBuf>) -> FileSink {
        FileSink {
            save_dir,
            hashers: Vec::new(),
        }
    }

    /// The target for file `index` of the frame being received: call from
    /// [`Handler::file_target`](tej_core::Handler::file_target).
    pub fn target(&mut self, index: usize) -> FileTarget {
        if index == 0 {
            self.hashers.clear();
        }
        let sink = HashingSink::default();
        self.hashers.push(sink.clone());
        match &self.save_dir {
            Some(dir) => tej_net::spool::to_dir_with(dir.clone(), Box::new(sink)),
            None => FileTarget::Writer(Box::new(sink)),
        }
    }

    /// The report of a complete frame whose files went through
    /// [`target`](Self::target).
    ///
    /// # Errors
    ///
    /// None today (every file was hashed as it arrived); kept for sinks
    /// that must read a file back.
    pub fn report(&mut self, peer: Option<SocketAddr>, frame: &Frame) -> io::Result<FrameReport> {
        let mut hashers = std::mem::take(&mut self.hashers).into_iter();
        let mut files = Vec::with_capacity(frame.files.len());
        for file in &frame.files {
            // Every file went through `target`, so each has its hasher, in order.
            let hashed = hashers.next().map(|sink| sink.finish().0);
            let sha256 = match (hashed, file.data()) {
                (Some(sha256), _) => sha256,
                (None, Some(data)) => hex_sha256(data),
                (None, None) => String::new(),
            };
            let saved_as = file.path().map(|path| path.display().to_string());
            files.push(FileReport {
                name: file.name.clone(),
                size: file.len(),
                sha256,
                saved_as,
            });
        }
        let message = frame.message.as_deref();
        Ok(FrameReport {
            peer: peer.map(|peer| peer.to_string()),
            status: frame.status.get(),
            version: frame.version,
            files,
            message_len: message.map_or(0, |message| message.len() as u64),
            message: message.map(|message| String::from_utf8_lossy(message).into_owned()),
            message_sha256: message.map(hex_sha256),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_start_with_the_event() {
        let line = Event::Listening {
            addr: "127.0.0.1:1".into(),
        }
        .to_json();
        assert_eq!(line, r#"{"event":"listening","addr":"127.0.0.1:1"}"#);
        let line = Event::disconnected(None, &DisconnectReason::IdleTimeout).to_json();
        assert_eq!(
            line,
            r#"{"event":"disconnected","peer":null,"reason":"idle timeout","kind":"idle_timeout"}"#
        );
    }

    #[test]
    fn files_without_a_save_dir_are_hashed_not_kept() {
        let mut sink = FileSink::new(None);
        let FileTarget::Writer(mut writer) = sink.target(0) else {
            panic!("a hashing writer")
        };
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world\n").unwrap();
        let mut frame = Frame::default();
        frame.files.push(tej_core::File {
            name: "../x".into(),
            body: tej_core::FileBody::Delivered { len: 12 },
        });
        let report = sink.report(None, &frame).unwrap();
        assert_eq!(report.files[0].name, "../x");
        assert_eq!(report.files[0].sha256, hex_sha256(b"hello world\n"));
        assert_eq!(report.files[0].saved_as, None);
        assert_eq!(report.message, None);
        assert_eq!(report.message_sha256, None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }

    #[test]
    fn saved_files_are_hashed_as_they_are_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::new(Some(dir.path().to_path_buf()));
        let FileTarget::Sink(mut spool) = sink.target(0) else {
            panic!("a spool directory with a hasher")
        };
        spool.start("x", 12).unwrap();
        spool.write(b"hello world\n").unwrap();
        let finished = spool.finish().unwrap();
        // The session commits a frame's files once the whole frame arrived.
        let body = spool.commit().unwrap().unwrap_or(finished);
        let mut frame = Frame::default();
        frame.files.push(tej_core::File {
            name: "x".into(),
            body,
        });
        let report = sink.report(None, &frame).unwrap();
        assert_eq!(report.files[0].sha256, hex_sha256(b"hello world\n"));
        let path = dir.path().join("x");
        assert_eq!(report.files[0].saved_as, Some(path.display().to_string()));
        assert_eq!(std::fs::read(path).unwrap(), b"hello world\n");
    }

    #[test]
    fn progress_lines_are_json_events() {
        let line = Event::Progress {
            file: "a.bin".into(),
            bytes: 5,
            total: 10,
        }
        .to_json();
        assert_eq!(
            line,
            r#"{"event":"progress","file":"a.bin","bytes":5,"total":10}"#
        );
    }
}
