//! Handlers and helpers shared by the async-std and smol tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use tej_async_std::{
    Connection, DisconnectReason, FileTarget, Frame, FrameBuilder, Handler, Status,
};

#[cfg(feature = "tls")]
pub mod tls;

/// How long any one wait in a test may take.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// How long a whole test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// What one connection's handler saw, in order.
#[derive(Default, Clone, Debug)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    pub fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn contains(&self, event: &str) -> bool {
        self.0.lock().unwrap().iter().any(|seen| seen == event)
    }
    pub fn ended(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .last()
            .is_some_and(|event| event.starts_with("disconnected"))
    }
}

/// One [`Events`] per connection a server accepted, in accept order.
#[derive(Default, Clone, Debug)]
pub struct PerConnection(Arc<Mutex<Vec<Events>>>);

impl PerConnection {
    /// Events for a new connection.
    pub fn next(&self) -> Events {
        let events = Events::default();
        self.0.lock().unwrap().push(events.clone());
        events
    }
    pub fn get(&self, index: usize) -> Option<Events> {
        self.0.lock().unwrap().get(index).cloned()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn message_text(frame: &Frame) -> String {
    String::from_utf8_lossy(frame.message.as_deref().unwrap_or_default()).into_owned()
}

/// Echoes each frame's message back with "echo: " in front; panics on "boom".
pub struct Echo(pub Events);

impl Handler for Echo {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.push("connected".into());
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let message = message_text(&frame);
        self.0
            .push(format!("received {message} files={}", frame.files.len()));
        assert_ne!(message, "boom", "asked to panic");
        conn.send(Frame::message(format!("echo: {message}")))
            .unwrap();
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.0.push("ping".into());
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

/// Collects every message it receives.
pub struct Collect(pub Events);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.push(message_text(&frame));
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

/// Panics as soon as it is connected.
pub struct PanicOnConnect(pub Events);

impl Handler for PanicOnConnect {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.push("connected".into());
        panic!("deliberate panic in connected");
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

/// Polls `done` every few milliseconds; panics after [`WAIT_LIMIT`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        Timer::after(Duration::from_millis(5)).await;
    }
}

/// The files of a frame as (name, bytes), held in memory.
pub type Files = Vec<(String, Vec<u8>)>;

fn files_of(frame: &Frame) -> Files {
    frame
        .files
        .iter()
        .map(|file| {
            let data = file.data().expect("files are kept in memory");
            (file.name.clone(), data.to_vec())
        })
        .collect()
}

/// A frame carrying `files`.
pub fn frame_with(files: &Files, message: &str) -> Frame {
    let mut builder = FrameBuilder::new(Status::DEFAULT).message(message.to_string());
    for (name, data) in files {
        builder = builder.file(name.clone(), data.clone());
    }
    builder.build()
}

/// Records every frame's files and sends them back unchanged, with
/// "echo: " before the message; logs to its [`Events`].
pub struct FileEcho {
    pub events: Events,
    pub files: Arc<Mutex<Vec<Files>>>,
}

impl Handler for FileEcho {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.events.push("connected".into());
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let files = files_of(&frame);
        let message = message_text(&frame);
        self.events
            .push(format!("received {message} files={}", files.len()));
        conn.send(frame_with(&files, &format!("echo: {message}")))
            .unwrap();
        self.files.lock().unwrap().push(files);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.events.push(format!("disconnected: {reason}"));
    }
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Memory
    }
}

/// Deterministic bytes that differ from position to position.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

/// A path for a Unix socket that does not exist yet, in a fresh directory
/// removed (with the socket) when the returned guard is dropped.
pub fn socket_path(tag: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("tej-async-std-{tag}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("tej.sock");
    (dir, path)
}

/// Records every message and every frame's files it receives.
pub struct CollectFiles {
    pub events: Events,
    pub files: Arc<Mutex<Vec<Files>>>,
}

impl Handler for CollectFiles {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.files.lock().unwrap().push(files_of(&frame));
        self.events.push(message_text(&frame));
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.events.push(format!("disconnected: {reason}"));
    }
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Memory
    }
}
