//! Handlers and helpers shared by the async-std and smol tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use tej_async_std::{Connection, DisconnectReason, Frame, Handler};

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
