//! How the loop reads a socket: a short read from a TCP stream shows it
//! drained (edge-triggered epoll/kqueue), so a round trip costs no read
//! that only returns `WouldBlock`; and an end of stream that arrived with
//! the last bytes is still seen.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tej_mio::mio::event::Source;
use tej_mio::mio::{Interest, Registry, Token};
use tej_mio::{Client, Connection, Frame, Handler, SessionConfig, Stream};
use tej_test_support::{
    handlers::{Collect, Mirror},
    mio::Running,
    peer::{wait_until, PATIENCE},
};

mod support;

/// A mio TCP stream that counts the reads that returned `WouldBlock`, and
/// says short reads drain it or not as told.
struct Counting {
    inner: tej_mio::mio::net::TcpStream,
    would_block_reads: Arc<AtomicU64>,
    short_io_drains: bool,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        if matches!(&result, Err(error) if error.kind() == io::ErrorKind::WouldBlock) {
            self.would_block_reads.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Source for Counting {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interest)
    }
    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interest)
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl Stream for Counting {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.inner.shutdown_write()
    }
    fn short_io_drains(&self) -> bool {
        self.short_io_drains
    }
}

/// Sends a message on connecting and on every reply until `left` is spent.
struct PingPong {
    left: u64,
    done: mpsc::SyncSender<()>,
}

impl Handler for PingPong {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        conn.send(Frame::message("ping")).unwrap();
    }
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.send(());
        } else {
            conn.send(Frame::message("ping")).unwrap();
        }
    }
}

/// Runs `trips` round trips against a mirroring server from a client over
/// a [`Counting`] stream whose short reads drain it; returns the client's
/// reads that returned `WouldBlock`.
fn would_block_reads(addr: SocketAddr, trips: u64) -> u64 {
    let counter = Arc::new(AtomicU64::new(0));
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_nonblocking(true).unwrap();
    let stream = Counting {
        inner: tej_mio::mio::net::TcpStream::from_std(stream),
        would_block_reads: Arc::clone(&counter),
        short_io_drains: true,
    };
    let (done_tx, done) = mpsc::sync_channel(1);
    let handler = PingPong {
        left: trips,
        done: done_tx,
    };
    let client = Client::from_stream(stream, handler, SessionConfig::default()).unwrap();
    done.recv_timeout(PATIENCE)
        .expect("the round trips did not finish");
    let counted = counter.load(Ordering::Relaxed);
    client.close();
    counted
}

#[test]
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
fn a_short_read_from_a_tcp_stream_waits_for_the_next_event_without_another_read() {
    const TRIPS: u64 = 400;
    let server = Running::start(SessionConfig::default(), || Mirror);
    // The count sees a read that finds nothing.
    let probe = std::net::TcpStream::connect(server.addr).unwrap();
    probe.set_nonblocking(true).unwrap();
    let counted = Arc::new(AtomicU64::new(0));
    let mut probe = Counting {
        inner: tej_mio::mio::net::TcpStream::from_std(probe),
        would_block_reads: Arc::clone(&counted),
        short_io_drains: true,
    };
    let error = probe.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(counted.load(Ordering::Relaxed), 1);
    drop(probe);
    // Without the rule, each reply is followed by a read that finds
    // nothing (about 9 in 10 on an idle machine, fewer under load, when the
    // next reply can arrive first); with it, next to none.
    let drained = would_block_reads(server.addr, TRIPS);
    assert!(
        drained < TRIPS / 40,
        "{drained} reads returned WouldBlock in {TRIPS} round trips although short reads drain"
    );
    server.stop();
}

#[test]
fn the_end_of_stream_that_came_with_the_last_bytes_is_seen() {
    // A peer that writes a frame and its end of stream at once: the read
    // that takes the frame is short, and no event will follow the one that
    // carried the end, so the loop must read on to it.
    let (server, events) = support::serve_logging(Collect);
    const PEERS: usize = 50;
    let bytes = Frame::message("last").encode_to_vec().unwrap();
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let mut peer = std::net::TcpStream::connect(server.addr).unwrap();
        peer.write_all(&bytes).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        // Kept open for reading, so the end seen is our FIN, not a reset.
        peers.push(peer);
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_until("every peer's end to be seen", || {
        events
            .snapshot()
            .iter()
            .filter(|event| event.starts_with("disconnected: peer closed"))
            .count()
            == PEERS
    });
    let snapshot = events.snapshot();
    assert_eq!(
        snapshot.iter().filter(|event| *event == "last").count(),
        PEERS,
        "{snapshot:?}"
    );
    drop(peers);
    server.stop();
}
