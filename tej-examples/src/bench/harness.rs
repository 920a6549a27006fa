//! What every workload shares: the clock arithmetic (rates, medians), a
//! loopback address, an unbounded session configuration, waiting for a
//! measurement with a timeout (after sending its frame, timed), and the
//! two handlers most workloads use
//! (a frame counter and one that does nothing). The lowest layer of the
//! bench: it imports no other bench module.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use tej_core::{Connection, FileTarget, Frame, FrameView, Handler, Limits, Sender, SessionConfig};

/// The longest any one measurement may take before the bench gives up.
const MEASUREMENT_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) fn size_name(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes & ((1 << 20) - 1) == 0 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

pub(super) fn gib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
}

pub(super) fn per_s(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

pub(super) fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

pub(super) fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

pub(super) fn unbounded_config() -> SessionConfig {
    SessionConfig::default().limits(
        Limits::DEFAULT
            .max_file_size(u64::MAX)
            .max_frame_size(u64::MAX),
    )
}

pub(super) fn wait<T>(done: &Receiver<T>, what: &str) -> io::Result<T> {
    done.recv_timeout(MEASUREMENT_TIMEOUT)
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} did not finish")))
}

/// Sends `frame` and waits for what the server's handler says on `done`
/// (`what` names it if it does not come): that, and the time since the send.
pub(super) fn timed_send<T>(
    sender: &Sender,
    frame: Frame,
    done: &Receiver<T>,
    what: &str,
) -> io::Result<(T, Duration)> {
    let started = Instant::now();
    sender
        .send_blocking(frame)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let seen = wait(done, what)?;
    Ok((seen, started.elapsed()))
}

pub(super) fn joined<T>(
    thread: std::thread::JoinHandle<io::Result<T>>,
    what: &str,
) -> io::Result<T> {
    thread
        .join()
        .map_err(|_| io::Error::other(format!("{what} panicked")))?
}

/// Counts frames; signals when `expected` frames have arrived. A frame
/// lent to it has its message copied into a reused buffer, as the
/// small-frame baseline's reader copies each message (what a receiver
/// needs to own it); an owned frame is already its own.
pub(super) struct Counter {
    expected: u64,
    frames: u64,
    done: SyncSender<()>,
    kept: Vec<u8>,
}

impl Counter {
    pub(super) fn new(expected: u64, done: SyncSender<()>) -> Counter {
        Counter {
            expected,
            frames: 0,
            done,
            kept: Vec::new(),
        }
    }

    fn count(&mut self) {
        self.frames += 1;
        if self.frames == self.expected {
            let _ = self.done.send(());
        }
    }
}

impl Handler for Counter {
    fn received_view<'a>(
        &mut self,
        _conn: &mut Connection<'_>,
        frame: FrameView<'a>,
    ) -> Option<FrameView<'a>> {
        self.kept.clear();
        self.kept
            .extend_from_slice(frame.message().unwrap_or_default());
        std::hint::black_box(&self.kept);
        self.count();
        None
    }

    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.count();
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Discard
    }
}

pub(super) struct Quiet;
impl Handler for Quiet {}
