//! Handlers and helpers shared by the transport tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tej_tokio::{Connection, DisconnectReason, Frame, FrameBuilder, Handler, Status};

/// What a handler saw, in order.
#[derive(Default, Clone)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    pub fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn has(&self, prefix: &str) -> bool {
        self.snapshot()
            .iter()
            .any(|event| event.starts_with(prefix))
    }
}

/// What a server saw: its events, the frames it received, and how many
/// handlers its factory made.
#[derive(Default, Clone)]
pub struct Seen {
    pub events: Events,
    pub frames: Arc<Mutex<Vec<Frame>>>,
    pub made: Arc<AtomicUsize>,
}

impl Seen {
    /// A factory of [`Mirror`]s that counts what it makes.
    pub fn factory(&self) -> impl FnMut() -> Mirror + Send + 'static {
        let seen = self.clone();
        move || {
            seen.made.fetch_add(1, Ordering::SeqCst);
            Mirror(seen.clone())
        }
    }
    pub fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }
}

/// Sends every frame back as it came, files and all.
pub struct Mirror(pub Seen);

impl Handler for Mirror {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        self.0
            .events
            .push(format!("connected peer={:?}", conn.peer_addr()));
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.frames.lock().unwrap().push(frame.clone());
        self.0.events.push("received".into());
        conn.send(frame).unwrap();
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.events.push(format!("disconnected: {reason}"));
    }
}

/// Collects every frame it receives and how the connection ended.
#[derive(Default, Clone)]
pub struct Collect {
    pub frames: Arc<Mutex<Vec<Frame>>>,
    pub events: Events,
}

impl Collect {
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }
}

impl Handler for Collect {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.events.push("connected".into());
    }
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.frames.lock().unwrap().push(frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.events.push(format!("disconnected: {reason}"));
    }
}

/// Frames with files of every size class, each byte depending on its
/// place, so that a byte moved or lost shows.
pub fn sample_frames() -> Vec<Frame> {
    let pattern = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    };
    vec![
        Frame::message("just a message"),
        FrameBuilder::new(Status::DEFAULT)
            .file("empty.bin", Vec::new())
            .file("small.txt", &b"hello world\n"[..])
            .message("two files")
            .build(),
        FrameBuilder::new(Status::DEFAULT)
            .file("big.bin", pattern(3 << 20, 7))
            .file("odd.bin", pattern(65_537, 200))
            .message("large")
            .build(),
        FrameBuilder::new(Status::DEFAULT)
            .file("last.bin", pattern(1000, 1))
            .build(),
    ]
}

/// Waits (at most 10 s) until `done`.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `future`, or a failed test after 10 s.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Sends `frames` through `client`'s sender, waits for them all to come
/// back, and checks that both sides saw exactly them, byte for byte.
pub async fn round_trip(sender: &tej_tokio::Sender, client: &Collect, server: &Seen) {
    let frames = sample_frames();
    for frame in &frames {
        sender.send(frame.clone()).await.unwrap();
    }
    wait_until("the echoes", || client.frames().len() >= frames.len()).await;
    assert_eq!(server.frames(), frames, "the server received other frames");
    assert_eq!(client.frames(), frames, "the client received other frames");
}
