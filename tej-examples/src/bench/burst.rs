//! The connection burst: many connections at once, timed until the server
//! has seen them all, on an adapter and on a plain blocking accept loop,
//! with the kernel's listen-queue overflows counted alongside.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tej_core::{Connection, Handler, SessionConfig};

use super::harness::{joined, loopback, wait};
use crate::runtime::{self, Runtime};

/// Threads connecting in a burst: one per core. More only split the
/// machine further against the server: with 4 on this 2-core VM, a server
/// thread got a fifth of the CPU under the scheduler's fair share, the
/// listen queue overflowed in most bursts, the plain accept loop's among
/// them, and the burst itself was no faster (0.28 s without an overflow,
/// against 0.21 s from 2 threads).
fn burst_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
/// Bursts per contender and round. One burst's time is all or nothing: a
/// single handshake the kernel drops when the listen queue is full costs a
/// second (the SYN retransmit), and whether one is dropped depends on what
/// the machine's other tenants do in that half second. The median of more
/// bursts says what the server does, not how lucky it was.
pub const BURSTS_PER_ROUND: usize = 3;
/// The burst size that gets the `burst_10k_s` key.
pub(super) const BURST_10K: usize = 10_000;
/// Open files kept free of a burst's connections.
const FD_HEADROOM: usize = 256;

/// The most connections a burst can use under this process's soft limit
/// on open files (both ends live in this process, though each client end
/// is closed at once): `connections`, or fewer where the limit is lower
/// (`ulimit -n` raises it). Where the limit is unreadable, `connections`.
pub(super) fn burst_within_fd_limit(connections: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits
                .lines()
                .find(|line| line.starts_with("Max open files"))?;
            let soft = line.split_whitespace().nth(3)?;
            Some(soft.parse::<usize>().unwrap_or(usize::MAX))
        });
    match soft {
        Some(soft) => connections.min(soft.saturating_sub(FD_HEADROOM)),
        None => connections,
    }
}

/// Runs `measure`, adding the listen-queue overflows counted meanwhile to
/// `sum` (which becomes `None` once a count is unreadable).
pub(super) fn counting_overflows(
    sum: &mut Option<u64>,
    measure: impl FnOnce() -> io::Result<Duration>,
) -> io::Result<Duration> {
    let before = listen_overflows();
    let took = measure()?;
    *sum = match (*sum, before, listen_overflows()) {
        (Some(sum), Some(before), Some(after)) => Some(sum + after.saturating_sub(before)),
        _ => None,
    };
    Ok(took)
}

/// `TcpExt: ListenOverflows` from `/proc/net/netstat` (whole machine).
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let index = names
            .split_whitespace()
            .position(|name| name == "ListenOverflows")?;
        return values.split_whitespace().nth(index)?.parse().ok();
    }
    None
}

/// Counts connections as their sessions start; signals at `expected`.
struct Arrival {
    seen: Arc<AtomicUsize>,
    expected: usize,
    done: SyncSender<()>,
}

impl Handler for Arrival {
    fn connected(&mut self, _conn: &mut Connection<'_>) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.expected {
            let _ = self.done.send(());
        }
    }
}

/// `connections` connects to a server on `runtime`, each closed at once,
/// timed until every session has started.
pub(super) fn tej_burst(runtime: Runtime, connections: usize) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&seen);
    let server = runtime::start_server(runtime, loopback(), SessionConfig::default(), move || {
        Arrival {
            seen: Arc::clone(&counted),
            expected: connections,
            done: done_tx.clone(),
        }
    })?;
    let took = burst(server.addr(), connections, &done);
    server.stop();
    took.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "{runtime}: {error} ({} of {connections} seen)",
                seen.load(Ordering::Acquire)
            ),
        )
    })
}

/// Connects `connections` sockets to `addr` from [`burst_threads`]
/// threads, closing each at once; timed until `done` says the server has
/// seen them all.
fn burst(addr: SocketAddr, connections: usize, done: &Receiver<()>) -> io::Result<Duration> {
    let started = Instant::now();
    let threads = burst_threads();
    let connecting: Vec<_> = (0..threads)
        .map(|thread| {
            let share = connections / threads + usize::from(thread < connections % threads);
            std::thread::spawn(move || -> io::Result<()> {
                for _ in 0..share {
                    drop(TcpStream::connect(addr)?);
                }
                Ok(())
            })
        })
        .collect();
    for thread in connecting {
        joined(thread, "a connecting thread")?;
    }
    wait(done, "the burst")?;
    Ok(started.elapsed())
}

/// The burst against a blocking accept loop on a plain `TcpListener` with
/// the adapters' backlog (`tej_net::accept::listen_tcp`; std's own
/// `TcpListener::bind` listens with a backlog of 128, which overflows).
pub(super) fn plain_burst(connections: usize) -> io::Result<Duration> {
    let listener = tej_net::accept::listen_tcp([loopback()])?;
    listener.set_nonblocking(false)?;
    let addr = listener.local_addr()?;
    let (done_tx, done) = mpsc::sync_channel(1);
    let accepting = std::thread::spawn(move || -> io::Result<()> {
        for _ in 0..connections {
            drop(listener.accept()?);
        }
        let _ = done_tx.send(());
        Ok(())
    });
    let took = burst(addr, connections, &done)?;
    joined(accepting, "the accept loop")?;
    Ok(took)
}
