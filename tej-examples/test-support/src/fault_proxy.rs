//! A fault-injecting proxy between a client and a server, in-process and
//! deterministic: every choice it makes (piece sizes, and in
//! [`Fault::Mixed`] which fault a connection gets and where) comes from
//! its seed and the connection's number.
//!
//! It listens on TCP or a Unix socket and forwards each connection to a
//! target, byte for byte (TLS passes through it as bytes), with two
//! threads per connection: up (client to server) and down (server to
//! client). A fault is placed at an offset of the upstream byte stream:
//! the client's bytes, counted from its first.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The generator of faults and split points (re-exported for the suites
/// and the `soak_load` example that draw from it too).
pub use crate::rng::Rng;

/// The most a read takes, and the largest piece [`Fault::Slice`] writes.
pub const MAX_PIECE: usize = 64 * 1024;
/// How often a blocked pump looks at its connection's state.
const TICK: Duration = Duration::from_millis(20);
/// A write blocked this long (a peer that stopped reading) ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a blackholed connection is held before the proxy drops it.
pub const BLACKHOLE_HOLD: Duration = Duration::from_secs(60);

/// Where the proxy listens or connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// What the proxy does to each connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forwards every byte as it comes.
    Pass,
    /// Forwards both ways in pieces of 1 byte to [`MAX_PIECE`]
    /// (log-uniform: as many 1-16-byte pieces as 4-64 KiB ones).
    Slice,
    /// Holds every chunk from the server this long before passing it on.
    DelayReplies(Duration),
    /// At upstream byte `at`, stops both ways for `pause`, then goes on.
    Stall { at: u64, pause: Duration },
    /// At upstream byte `at`, resets both connections (an RST over TCP,
    /// a close over a Unix socket).
    Reset { at: u64 },
    /// At upstream byte `at`, ends the stream to the server there (a
    /// clean end of stream, mid-frame) and closes the client's.
    Truncate { at: u64 },
    /// Flips bit `bit` (0 = lowest) of upstream byte `at`, then goes on.
    FlipBit { at: u64, bit: u8 },
    /// At upstream byte `at`, passes nothing more either way and reads
    /// nothing more, holding both connections open (a silent path) for
    /// [`BLACKHOLE_HOLD`].
    Blackhole { at: u64 },
    /// Each connection gets one of the faults above, its offset and
    /// pause drawn from the seed, offsets below `span`.
    Mixed { span: u64 },
}

impl Fault {
    /// The fault of connection number `index` (from 0) under `seed`.
    fn for_connection(&self, seed: u64, index: usize) -> Fault {
        let Fault::Mixed { span } = *self else {
            return self.clone();
        };
        let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let at = rng.below(span.max(1));
        match rng.below(8) {
            0 => Fault::Pass,
            1 => Fault::Slice,
            2 => Fault::DelayReplies(Duration::from_millis(rng.below(200))),
            3 => Fault::Stall {
                at,
                pause: Duration::from_millis(rng.below(5_000)),
            },
            4 => Fault::Reset { at },
            5 => Fault::Truncate { at },
            6 => Fault::FlipBit {
                at,
                bit: rng.below(8) as u8,
            },
            _ => Fault::Blackhole { at },
        }
    }

    fn at(&self) -> Option<u64> {
        match *self {
            Fault::Stall { at, .. }
            | Fault::Reset { at }
            | Fault::Truncate { at }
            | Fault::FlipBit { at, .. }
            | Fault::Blackhole { at } => Some(at),
            _ => None,
        }
    }
}

/// A piece length in `1..=MAX_PIECE`, log-uniform.
fn piece(rng: &mut Rng) -> usize {
    let bits = rng.u32(..=16); // 2^0 ..= 2^16
    let top = (1usize << bits).min(MAX_PIECE);
    1 + rng.usize(..top)
}

/// One side of a proxied connection.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(addr: &Addr) -> io::Result<Stream> {
        Ok(match addr {
            Addr::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        })
    }

    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(stream) => Stream::Tcp(stream.try_clone()?),
            Stream::Unix(stream) => Stream::Unix(stream.try_clone()?),
        })
    }

    fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_write_timeout(Some(timeout)),
            Stream::Unix(stream) => stream.set_write_timeout(Some(timeout)),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
            Stream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Tcp(stream) => stream.shutdown(how),
            Stream::Unix(stream) => stream.shutdown(how),
        };
    }

    /// Makes the last close of this socket a reset (TCP: linger 0).
    fn reset_on_close(&self) {
        if let Stream::Tcp(stream) = self {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a connection is, as both its pumps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flowing,
    /// Nothing moves until then.
    Paused(Instant),
    /// Nothing moves; the connection is dropped then.
    Blackholed(Instant),
    /// Both pumps end; the sockets close (reset if so marked).
    Closed,
}

/// What the two pumps of one connection share.
struct Link {
    fault: Fault,
    state: Mutex<State>,
    stop: Arc<AtomicBool>,
    /// Reset: the sockets are closed without a shutdown (which would send
    /// an end of stream before the reset).
    reset: AtomicBool,
    /// Clones of both sockets, to shut down or reset from either pump.
    client: Stream,
    server: Stream,
}

impl Link {
    fn state(&self) -> State {
        if self.stop.load(Ordering::SeqCst) {
            return State::Closed;
        }
        let mut state = self.state.lock().unwrap();
        match *state {
            State::Paused(until) if Instant::now() >= until => *state = State::Flowing,
            State::Blackholed(until) if Instant::now() >= until => *state = State::Closed,
            _ => {}
        }
        *state
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap() = state;
    }

    /// Waits while the connection is paused or blackholed; false once it
    /// is closed.
    fn wait_flowing(&self) -> bool {
        loop {
            match self.state() {
                State::Flowing => return true,
                State::Closed => return false,
                State::Paused(_) | State::Blackholed(_) => thread::sleep(TICK),
            }
        }
    }

    fn close(&self) {
        self.set(State::Closed);
        if self.reset.load(Ordering::SeqCst) {
            return;
        }
        self.client.shutdown(Shutdown::Both);
        self.server.shutdown(Shutdown::Both);
    }
}

/// The proxy: listening until dropped.
pub struct FaultProxy {
    addr: Addr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl FaultProxy {
    /// Listens on `listen` (a TCP port 0 picks one; a Unix path of `None`
    /// makes one in a temporary directory) and forwards to `target` with
    /// `fault`.
    pub fn start(listen: Option<Addr>, target: Addr, fault: Fault, seed: u64) -> io::Result<Self> {
        let (listener, addr, dir) = match (listen, &target) {
            (Some(Addr::Tcp(addr)), _) => {
                let listener = TcpListener::bind(addr)?;
                let addr = Addr::Tcp(listener.local_addr()?);
                (Listener::Tcp(listener), addr, None)
            }
            (Some(Addr::Unix(path)), _) => {
                let _ = std::fs::remove_file(&path);
                (
                    Listener::Unix(UnixListener::bind(&path)?),
                    Addr::Unix(path),
                    None,
                )
            }
            (None, Addr::Tcp(_)) => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = Addr::Tcp(listener.local_addr()?);
                (Listener::Tcp(listener), addr, None)
            }
            (None, Addr::Unix(_)) => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("proxy.sock");
                (
                    Listener::Unix(UnixListener::bind(&path)?),
                    Addr::Unix(path),
                    Some(dir),
                )
            }
        };
        match &listener {
            Listener::Tcp(listener) => listener.set_nonblocking(true)?,
            Listener::Unix(listener) => listener.set_nonblocking(true)?,
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept_loop(listener, target, fault, seed, stop, accepted))?
        };
        Ok(FaultProxy {
            addr,
            stop,
            accepted,
            accept: Some(accept),
            _dir: dir,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(
    listener: Listener,
    target: Addr,
    fault: Fault,
    seed: u64,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
) {
    let mut pumps = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let client = match &listener {
            Listener::Tcp(listener) => listener.accept().map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }),
            Listener::Unix(listener) => listener.accept().map(|(stream, _)| Stream::Unix(stream)),
        };
        let client = match client {
            Ok(client) => client,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                pumps.retain(|(_, pair): &(_, [JoinHandle<()>; 2])| {
                    !pair.iter().all(JoinHandle::is_finished)
                });
                continue;
            }
            Err(_) => continue,
        };
        let index = accepted.fetch_add(1, Ordering::SeqCst);
        let fault = fault.for_connection(seed, index);
        match start_link(client, &target, fault, seed ^ index as u64, stop.clone()) {
            Ok(started) => pumps.push(started),
            Err(_) => continue,
        }
    }
    // Pumps blocked in a write see the stop once their sockets shut down.
    for (link, pair) in pumps {
        if let Some(link) = link.upgrade() {
            link.close();
        }
        for pump in pair {
            let _ = pump.join();
        }
    }
}

fn start_link(
    client: Stream,
    target: &Addr,
    fault: Fault,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> io::Result<(std::sync::Weak<Link>, [JoinHandle<()>; 2])> {
    // Accepted sockets may inherit the listener's non-blocking mode.
    if let Stream::Tcp(stream) = &client {
        stream.set_nonblocking(false)?;
    }
    if let Stream::Unix(stream) = &client {
        stream.set_nonblocking(false)?;
    }
    let server = Stream::connect(target)?;
    for stream in [&client, &server] {
        stream.set_read_timeout(Some(TICK))?;
        stream.set_write_timeout(WRITE_TIMEOUT)?;
    }
    let link = Arc::new(Link {
        fault,
        state: Mutex::new(State::Flowing),
        stop,
        reset: AtomicBool::new(false),
        client: client.try_clone()?,
        server: server.try_clone()?,
    });
    let up = {
        let (link, from, to) = (link.clone(), client.try_clone()?, server.try_clone()?);
        thread::spawn(move || pump(&link, from, to, true, Rng::new(seed)))
    };
    let down = {
        let link = link.clone();
        thread::spawn(move || pump(&link, server, client, false, Rng::new(!seed)))
    };
    Ok((Arc::downgrade(&link), [up, down]))
}

/// Moves bytes one way until either side ends or the fault ends the
/// connection.
fn pump(link: &Link, mut from: Stream, mut to: Stream, up: bool, mut rng: Rng) {
    let mut buf = vec![0u8; MAX_PIECE];
    let mut offset = 0u64; // upstream bytes read so far
    let trigger = if up { link.fault.at() } else { None };
    loop {
        if !link.wait_flowing() {
            break;
        }
        let len = match from.read(&mut buf) {
            Ok(0) => {
                // The sender's end of stream: pass it on.
                to.shutdown(Shutdown::Write);
                break;
            }
            Ok(len) => len,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                link.close();
                break;
            }
        };
        let mut chunk = &mut buf[..len];
        // A fault in this chunk: pass what comes before it, then act.
        if let Some(at) = trigger.filter(|&at| at >= offset && at < offset + len as u64) {
            let split = (at - offset) as usize;
            let (before, after) = chunk.split_at_mut(split);
            if forward(link, &mut to, before, &mut rng).is_err() {
                link.close();
                break;
            }
            offset += split as u64;
            chunk = after;
            match link.fault {
                Fault::Stall { pause, .. } => link.set(State::Paused(Instant::now() + pause)),
                Fault::FlipBit { bit, .. } => chunk[0] ^= 1 << (bit % 8),
                Fault::Reset { .. } => {
                    link.client.reset_on_close();
                    link.server.reset_on_close();
                    link.reset.store(true, Ordering::SeqCst);
                    link.set(State::Closed);
                    break;
                }
                Fault::Truncate { .. } => {
                    link.server.shutdown(Shutdown::Write);
                    link.client.shutdown(Shutdown::Both);
                    link.set(State::Closed);
                    break;
                }
                Fault::Blackhole { .. } => {
                    link.set(State::Blackholed(Instant::now() + BLACKHOLE_HOLD));
                    // The rest of this chunk is dropped with the path.
                    continue;
                }
                _ => {}
            }
            if !link.wait_flowing() {
                break;
            }
        }
        if !up {
            if let Fault::DelayReplies(delay) = link.fault {
                thread::sleep(delay);
            }
        }
        if forward(link, &mut to, chunk, &mut rng).is_err() {
            link.close();
            break;
        }
        offset += chunk.len() as u64;
    }
    // Wake the other pump if it waits on a read that will never come.
    if link.state() == State::Closed {
        link.close();
    }
}

/// Writes `data`, in slices under [`Fault::Slice`].
fn forward(link: &Link, to: &mut Stream, data: &[u8], rng: &mut Rng) -> io::Result<()> {
    if link.fault != Fault::Slice {
        return to.write_all(data);
    }
    let mut rest = data;
    while !rest.is_empty() {
        let piece = piece(rng).min(rest.len());
        to.write_all(&rest[..piece])?;
        rest = &rest[piece..];
        if piece < 64 {
            // Small pieces go out as segments of their own.
            thread::sleep(Duration::from_micros(100));
        }
    }
    Ok(())
}
