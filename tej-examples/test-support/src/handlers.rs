//! Small handlers that log their callbacks as text to an [`Events`].

use std::sync::{Arc, Mutex};

use tej_core::{Connection, DisconnectReason, Frame, Handler};

use crate::peer::text;

/// A log of callbacks, shared between a handler and the test.
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
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, event: &str) -> bool {
        self.0.lock().unwrap().iter().any(|seen| seen == event)
    }
    /// Whether the last event is a disconnect.
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

/// Echoes each frame's message back with "echo: " in front, logging
/// callbacks; panics on "boom".
pub struct Echo(pub Events);

impl Handler for Echo {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.push("connected".into());
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let message = text(&frame);
        self.0
            .push(format!("received {message} files={}", frame.files.len()));
        if message == "boom" {
            crate::quiet_panic("asked to panic");
        }
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

/// Collects every message it receives, pings as "ping".
pub struct Collect(pub Events);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.push(text(&frame));
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.0.push("ping".into());
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        self.0.push(format!("disconnected: {reason}"));
    }
}

/// Sends every frame it receives back unchanged.
pub struct Mirror;

impl Handler for Mirror {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        conn.send(frame).unwrap();
    }
}
