//! Helpers shared by tej-mio's integration tests: event logs, handlers,
//! a server on its own thread, a plain blocking peer, bounded waits.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tej_core::{Assembler, Limits};
use tej_mio::{
    Client, Connection, DisconnectReason, Frame, Handler, Server, SessionConfig, ShutdownHandle,
};

/// How long any one wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A log of callbacks, shared between a handler and the test.
#[derive(Default, Clone)]
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
        self.0.lock().unwrap().iter().any(|e| e == event)
    }
}

/// The message of a frame as text ("" for none).
pub fn text(frame: &Frame) -> String {
    String::from_utf8_lossy(frame.message.as_deref().unwrap_or_default()).into_owned()
}

/// Echoes each frame's message back with "echo: " in front, logging callbacks.
pub struct Echo(pub Events);

impl Handler for Echo {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        self.0.push("connected".into());
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let message = text(&frame);
        self.0
            .push(format!("received {message} files={}", frame.files.len()));
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

/// Collects every message it receives, and pings as "ping".
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

/// Waits until `done`, failing the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A server running on its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Starts a server on a free loopback port.
    pub fn start<F, H>(config: SessionConfig, factory: F) -> Running
    where
        F: FnMut() -> H + Send + 'static,
        H: Handler,
    {
        let server = Server::bind("127.0.0.1:0").unwrap().with_config(config);
        let addr = server.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let shutdown = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run(factory));
        Running {
            addr,
            shutdown,
            thread,
        }
    }

    /// Whether `run` has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for `run` to return (after a shutdown), within [`PATIENCE`].
    pub fn wait(self) {
        wait_until("the server to stop", || self.thread.is_finished());
        self.thread.join().unwrap().unwrap();
    }

    /// Shuts the server down and waits for `run` to return.
    pub fn stop(self) {
        self.shutdown.shutdown();
        assert!(self.shutdown.is_shutdown());
        self.wait();
    }
}

/// Joins a client within [`PATIENCE`].
pub fn join(client: Client) -> io::Result<tej_mio::DisconnectReason> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(client.join());
    });
    result
        .recv_timeout(PATIENCE)
        .expect("the client's loop did not end in time")
}

/// A plain blocking peer over `std::net`, for checking the adapter from
/// outside: whole frames in, whole frames out.
pub struct Peer {
    pub stream: TcpStream,
    assembler: Assembler,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Peer {
        Peer::new(TcpStream::connect(addr).unwrap())
    }

    pub fn new(stream: TcpStream) -> Peer {
        Peer::with_buffer(stream, 64 * 1024)
    }

    /// A peer reading through a buffer of `len` bytes.
    pub fn with_buffer(stream: TcpStream, len: usize) -> Peer {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        Peer {
            stream,
            assembler: Assembler::new(Limits::UNLIMITED),
            buffer: vec![0; len],
            start: 0,
            end: 0,
        }
    }

    /// Writes a whole in-memory frame.
    pub fn send(&mut self, frame: &Frame) {
        let wire = frame.encode_to_vec().unwrap();
        self.stream.write_all(&wire).unwrap();
    }

    /// The next frame, or `None` at a clean end of stream.
    pub fn recv(&mut self) -> io::Result<Option<Frame>> {
        self.recv_paced(usize::MAX, Duration::ZERO)
    }

    /// As [`recv`](Self::recv), reading at most `chunk` bytes at a time and
    /// sleeping `pause` after each read: a slow reader.
    pub fn recv_paced(&mut self, chunk: usize, pause: Duration) -> io::Result<Option<Frame>> {
        loop {
            if self.start < self.end {
                let assembled = self
                    .assembler
                    .decode(&self.buffer[self.start..self.end])
                    .map_err(io::Error::other)?;
                self.start += assembled.consumed;
                if let Some(frame) = assembled.frame {
                    return Ok(Some(frame));
                }
            }
            let want = chunk.min(self.buffer.len());
            let read = self.stream.read(&mut self.buffer[..want])?;
            if read == 0 {
                self.assembler.finish().map_err(io::Error::other)?;
                return Ok(None);
            }
            self.start = 0;
            self.end = read;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), to check large payloads.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The process's peak resident set size in KiB (VmHWM), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
