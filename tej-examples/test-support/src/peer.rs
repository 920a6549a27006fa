//! Plain blocking peers (TCP, Unix, TLS by rustls's own stream), frames
//! read whole off them, deterministic payloads, and bounded waits.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tej_core::{Assembler, Frame, FrameBuilder, Limits, Status};

/// How long any one wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `done`, failing the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// [`wait_until`] for async tests, on any executor (async-io's timer).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        async_io::Timer::after(Duration::from_millis(5)).await;
    }
}

/// `future`, or a failed test after [`PATIENCE`], on any executor.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    futures_lite::future::or(future, async {
        async_io::Timer::after(PATIENCE).await;
        panic!("timed out waiting for {what}");
    })
    .await
}

/// The message of a frame as text ("" for none).
pub fn text(frame: &Frame) -> String {
    String::from_utf8_lossy(frame.message.as_deref().unwrap_or_default()).into_owned()
}

/// Frames with files of every size class (none, empty, small, several
/// MiB, odd), each byte depending on its place.
pub fn sample_frames() -> Vec<Frame> {
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
            .file("é.txt", pattern(1_000_003, 9))
            .message("large")
            .build(),
        FrameBuilder::new(Status::DEFAULT)
            .file("last.bin", pattern(1000, 1))
            .build(),
    ]
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

/// CPU time this process has used, in clock ticks (user + system), from
/// `/proc/self/stat` (Linux): what a test that must not spin compares.
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a comm field") + 1..]
        .split_whitespace()
        .collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    field(11) + field(12)
}

/// The process's peak resident set size in KiB (VmHWM), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A raw byte stream to a server: TCP, a Unix socket, or TLS over TCP.
pub enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Raw {
    /// A TCP connection to `addr`.
    pub fn tcp(addr: SocketAddr) -> Raw {
        Raw::Tcp(TcpStream::connect(addr).unwrap())
    }

    /// A Unix socket connection to `path`.
    pub fn unix(path: &Path) -> Raw {
        Raw::Unix(UnixStream::connect(path).unwrap())
    }

    /// A TLS connection over `tcp` (trusting ca.pem, for `localhost`),
    /// its handshake finished (a server makes no handler before).
    pub fn tls_over(tcp: TcpStream, config: std::sync::Arc<rustls::ClientConfig>) -> Raw {
        Raw::try_tls_over(tcp, config).expect("TLS handshake")
    }

    /// [`tls_over`](Self::tls_over), or the handshake's error.
    pub fn try_tls_over(
        mut tcp: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> io::Result<Raw> {
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut conn = rustls::ClientConnection::new(config, crate::tls::localhost()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Raw::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// [`tls_over`](Self::tls_over) a new TCP connection to `addr`.
    pub fn tls(addr: SocketAddr) -> Raw {
        Raw::tls_over(TcpStream::connect(addr).unwrap(), crate::tls::client())
    }

    /// A second handle on a plain stream (not TLS), to write from
    /// another thread.
    pub fn try_clone(&self) -> Raw {
        match self {
            Raw::Tcp(stream) => Raw::Tcp(stream.try_clone().unwrap()),
            Raw::Unix(stream) => Raw::Unix(stream.try_clone().unwrap()),
            Raw::Tls(_) => panic!("a TLS stream has one owner"),
        }
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        match self {
            Raw::Tcp(stream) => stream.set_read_timeout(Some(timeout)).unwrap(),
            Raw::Unix(stream) => stream.set_read_timeout(Some(timeout)).unwrap(),
            Raw::Tls(stream) => stream.sock.set_read_timeout(Some(timeout)).unwrap(),
        }
    }
}

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Raw::Tcp(stream) => stream.read(buf),
            Raw::Unix(stream) => stream.read(buf),
            Raw::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Raw::Tcp(stream) => stream.write(buf),
            Raw::Unix(stream) => stream.write(buf),
            Raw::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Raw::Tcp(stream) => stream.flush(),
            Raw::Unix(stream) => stream.flush(),
            Raw::Tls(stream) => stream.flush(),
        }
    }
}

/// A plain blocking peer, for checking an adapter from outside: whole
/// frames in, whole frames out.
pub struct Peer<S = TcpStream> {
    pub stream: S,
    assembler: Assembler,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl Peer<TcpStream> {
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
        Peer::over(stream, len)
    }
}

impl<S: Read + Write> Peer<S> {
    /// A peer over any stream (its timeouts set by the caller), reading
    /// through a buffer of `len` bytes.
    pub fn over(stream: S, len: usize) -> Peer<S> {
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
        self.stream.flush().unwrap();
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
