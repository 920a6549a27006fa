//! A handler that records every callback, for tests of any adapter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tej_core::{Connection, ConnectionInfo, DisconnectReason, Frame, Handler, Sender};

/// One received file: name, size and content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// One received frame, with its files hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSummary {
    pub status: u8,
    pub version: u8,
    pub files: Vec<FileSummary>,
    pub message: Option<Vec<u8>>,
}

impl FrameSummary {
    pub fn of(frame: &Frame) -> FrameSummary {
        FrameSummary {
            status: frame.status.get(),
            version: frame.version,
            files: frame
                .files
                .iter()
                .map(|file| FileSummary {
                    name: file.name.clone(),
                    size: file.len(),
                    sha256: match (file.data(), file.path()) {
                        (Some(data), _) => hex_sha256(data),
                        (None, Some(path)) => {
                            hex_sha256(&std::fs::read(path).expect("spooled file"))
                        }
                        (None, None) => String::new(),
                    },
                })
                .collect(),
            message: frame.message.as_ref().map(|message| message.to_vec()),
        }
    }

    pub fn message_text(&self) -> String {
        String::from_utf8_lossy(self.message.as_deref().unwrap_or_default()).into_owned()
    }
}

/// The sha256 (hex) of a frame's content: each file's name, length and
/// bytes (in memory or spooled to disk), then the message. Status and
/// version are not part of it. What `Recorder::echo_digest` answers.
pub fn content_digest(frame: &Frame) -> String {
    let mut hasher = Sha256::new();
    hasher.update((frame.files.len() as u64).to_be_bytes());
    for file in &frame.files {
        hasher.update((file.name.len() as u64).to_be_bytes());
        hasher.update(file.name.as_bytes());
        hasher.update(file.len().to_be_bytes());
        match (file.data(), file.path()) {
            (Some(data), _) => hasher.update(data),
            (None, Some(path)) => hasher.update(std::fs::read(path).expect("spooled file")),
            (None, None) => {}
        }
    }
    match &frame.message {
        Some(message) => {
            hasher.update([1]);
            hasher.update(message);
        }
        None => hasher.update([0]),
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A callback, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connected,
    Received(FrameSummary),
    Ping(FrameSummary),
    Disconnected(String),
}

/// The shared record of one or more connections' callbacks.
#[derive(Clone, Default)]
pub struct Record {
    inner: Arc<(Mutex<Vec<Seen>>, Condvar)>,
    senders: Arc<Mutex<Vec<Sender>>>,
    addrs: Arc<Mutex<Vec<Addrs>>>,
    infos: Arc<Mutex<Vec<ConnectionInfo>>>,
    factory_infos: Arc<Mutex<Vec<ConnectionInfo>>>,
    files_started: Arc<AtomicUsize>,
    made: Arc<AtomicUsize>,
}

/// A connection's peer and proxy addresses, as `connected` saw them.
pub type Addrs = (Option<SocketAddr>, Option<SocketAddr>);

impl Record {
    pub fn push(&self, seen: Seen) {
        self.inner.0.lock().unwrap().push(seen);
        self.inner.1.notify_all();
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the record, or panics after `timeout`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.inner.0.lock().unwrap();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; seen: {:?}",
                summarize(&seen)
            );
            seen = self.inner.1.wait_timeout(seen, left).unwrap().0;
        }
        seen.clone()
    }

    pub fn received(&self) -> Vec<FrameSummary> {
        self.snapshot()
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Received(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }

    pub fn disconnects(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Disconnected(reason) => Some(reason),
                _ => None,
            })
            .collect()
    }

    /// How many file headers have arrived (`file_target` calls), frames
    /// finished or not.
    pub fn files_started(&self) -> usize {
        self.files_started.load(Ordering::SeqCst)
    }

    /// How many handlers [`Recorder::factory`] made.
    pub fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    /// `(peer_addr, proxy_addr)` of each connection seen, in order.
    pub fn addrs(&self) -> Vec<Addrs> {
        self.addrs.lock().unwrap().clone()
    }

    /// What `connected` saw of each connection
    /// ([`Connection::info`](tej_core::Connection::info)), in order.
    pub fn infos(&self) -> Vec<ConnectionInfo> {
        self.infos.lock().unwrap().clone()
    }

    /// What [`Recorder::info_factory`] was given, per connection, in order.
    pub fn factory_infos(&self) -> Vec<ConnectionInfo> {
        self.factory_infos.lock().unwrap().clone()
    }

    /// Senders of the connections seen so far, in connection order.
    pub fn senders(&self) -> Vec<Sender> {
        self.senders.lock().unwrap().clone()
    }
}

fn summarize(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|seen| match seen {
            Seen::Connected => "connected".to_string(),
            Seen::Received(frame) => format!(
                "received {:?} files={}",
                frame.message_text(),
                frame.files.len()
            ),
            Seen::Ping(_) => "ping".to_string(),
            Seen::Disconnected(reason) => format!("disconnected: {reason}"),
        })
        .collect()
}

/// Records callbacks into a [`Record`]; optionally greets on connect and
/// replies to every frame.
#[derive(Clone, Default)]
pub struct Recorder {
    pub record: Record,
    pub greeting: Vec<Frame>,
    pub reply: Option<Frame>,
    /// On connect, a thread pushes this many frames ("push-0", ...) through a Sender.
    pub push_on_connect: usize,
    /// Spool received files into this directory instead of memory.
    pub spool_dir: Option<std::path::PathBuf>,
    /// Answer every frame with its [`content_digest`] as the message.
    pub echo_digest: bool,
    /// Answer every frame with its message after "echo: ".
    pub echo: bool,
    /// Send every frame back as it came, files and all.
    pub mirror: bool,
    /// Panic on a frame whose message is "boom" (after recording it).
    pub panic_on_boom: bool,
    /// Panic in `connected` (after recording it).
    pub panic_on_connect: bool,
    /// Close the connection in `connected`, after the greeting.
    pub close_on_connect: bool,
}

impl Recorder {
    pub fn new(record: &Record) -> Recorder {
        Recorder {
            record: record.clone(),
            ..Recorder::default()
        }
    }

    /// A server's handler factory: a clone of this recorder per connection,
    /// counted in its record's [`made`](Record::made).
    pub fn factory(self) -> impl FnMut() -> Recorder + Send + 'static {
        move || {
            self.record.made.fetch_add(1, Ordering::SeqCst);
            self.clone()
        }
    }
}

impl Recorder {
    /// A server's handler factory that takes the connection's
    /// information, recorded in [`Record::factory_infos`].
    pub fn info_factory(self) -> impl FnMut(&ConnectionInfo) -> Recorder + Send + 'static {
        move |info: &ConnectionInfo| {
            self.record.factory_infos.lock().unwrap().push(info.clone());
            self.record.made.fetch_add(1, Ordering::SeqCst);
            self.clone()
        }
    }
}

impl Handler for Recorder {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        // The sender first: a test that sees `Connected` may take it at once.
        self.record.senders.lock().unwrap().push(conn.sender());
        let addrs = (conn.peer_addr(), conn.proxy_addr());
        self.record.addrs.lock().unwrap().push(addrs);
        self.record.infos.lock().unwrap().push(conn.info().clone());
        self.record.push(Seen::Connected);
        if self.panic_on_connect {
            crate::quiet_panic("deliberate panic in connected");
        }
        for frame in &self.greeting {
            conn.send(frame.clone()).expect("greeting queued");
        }
        if self.close_on_connect {
            conn.close();
        }
        if self.push_on_connect > 0 {
            let sender = conn.sender();
            let count = self.push_on_connect;
            std::thread::spawn(move || {
                for i in 0..count {
                    if sender
                        .send_blocking(Frame::message(format!("push-{i}")))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let summary = FrameSummary::of(&frame);
        let boom = self.panic_on_boom && summary.message_text() == "boom";
        self.record.push(Seen::Received(summary));
        if boom {
            crate::quiet_panic("asked to panic");
        }
        if let Some(reply) = &self.reply {
            conn.send(reply.clone()).expect("reply queued");
        }
        if self.echo {
            let text = crate::peer::text(&frame);
            conn.send(Frame::message(format!("echo: {text}")))
                .expect("echo queued");
        }
        if self.mirror {
            conn.send(frame.clone()).expect("mirror queued");
        }
        if self.echo_digest {
            conn.send(Frame::message(content_digest(&frame)))
                .expect("digest queued");
        }
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.record.push(Seen::Ping(FrameSummary::of(&frame)));
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        self.record.push(Seen::Disconnected(reason.to_string()));
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> tej_core::FileTarget {
        self.record.files_started.fetch_add(1, Ordering::SeqCst);
        match &self.spool_dir {
            Some(dir) => tej_net::spool::to_dir(dir.clone()),
            None => tej_core::FileTarget::Memory,
        }
    }
}
