//! `tej bench`: every adapter against baselines measured in the same run.
//!
//! Workloads, each on loopback, each against the plain thing at its best:
//! - one large file from memory, the receiver discarding it (GiB/s), against
//!   plain TCP moving the same bytes: a sweep of write and read sizes
//!   ([`LARGE_SWEEP`]), the best of which is the baseline;
//! - many small frames in one direction through the callback API (frames/s),
//!   fed through a `BufferedSender` as the baseline writes through a
//!   `BufWriter`, against a minimal length-prefixed writer and reader with
//!   buffered I/O; and the same frames with one `send_blocking` each;
//! - request/response round trips on one connection (round trips/s), one
//!   18-byte frame each way, against a blocking ping-pong of the same 18
//!   bytes on plain sockets with `TCP_NODELAY`;
//! - a file on disk (in the page cache) sent to a receiver that writes it
//!   to disk (GiB/s): a client sending it with `File::open` to a server
//!   spooling it (`tej_net::spool::to_dir`), against `std::io::copy` file →
//!   socket (`sendfile`) and socket → file;
//! - a burst of connections (seconds until the server has seen them all),
//!   against a plain blocking accept loop;
//! - the large file again over TLS (rustls with ring, the test certificates
//!   of `testdata/tls` built into the binary), against the same adapter's
//!   plain large file in the same run.
//!
//! Where `iperf3` is installed it is run once too, for reference.
//!
//! Rounds are interleaved (baseline, then each adapter, per round) and the
//! median is kept, so that a noisy neighbour hurts every contender alike.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_core::{
    Connection, FileTarget, Frame, FrameBuilder, Handler, Limits, SessionConfig, Status,
};

use crate::runtime::{self, Runtime};

/// The longest any one measurement may take before the bench gives up.
const MEASUREMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Buffer sizes shared by the adapters (their default read buffer) and the
/// small-frame baseline.
const READ_BUFFER_LEN: usize = 256 * 1024;
/// The write and read sizes plain TCP is measured with; the best is the
/// large-file baseline.
pub const LARGE_SWEEP: &[usize] = &[256 * 1024, 1024 * 1024, 4 * 1024 * 1024];
/// Bytes of one round trip's frame each way: a TEJ frame with no files and
/// no message.
pub const ROUND_TRIP_FRAME_LEN: usize = 18;
/// The size of the disk workload's writes when it makes its file.
const DISK_BUFFER_LEN: usize = 1024 * 1024;
/// How plain sockets copy a file disk to disk; the best is the disk
/// baseline.
#[cfg(target_os = "linux")]
pub const DISK_SWEEP: &[DiskCopy] = &[
    DiskCopy::StdCopy,
    DiskCopy::Chunks(1024 * 1024),
    DiskCopy::Kernel,
];
/// How plain sockets copy a file disk to disk; the best is the disk
/// baseline.
#[cfg(not(target_os = "linux"))]
pub const DISK_SWEEP: &[DiskCopy] = &[DiskCopy::StdCopy, DiskCopy::Chunks(1024 * 1024)];

/// One way plain sockets copy a file disk to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskCopy {
    /// `std::io::copy` file → socket and socket → file. (std uses no
    /// `sendfile` from a file to a socket, since later changes to the file
    /// could show in what is sent, and no `splice` from a socket to a file:
    /// 8 KiB reads and writes.)
    StdCopy,
    /// Reads and `write_all`s of this many bytes on both sides.
    Chunks(usize),
    /// The kernel moves the bytes: `sendfile(2)` from the file to the
    /// socket, `splice(2)` from the socket through a pipe into the file.
    #[cfg(target_os = "linux")]
    Kernel,
}

impl DiskCopy {
    /// Its key in `baseline.disk_sweep_gib_s`.
    pub fn key(self) -> String {
        match self {
            DiskCopy::StdCopy => "io_copy".into(),
            DiskCopy::Chunks(size) => size.to_string(),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => "sendfile_splice".into(),
        }
    }

    fn name(self) -> String {
        match self {
            DiskCopy::StdCopy => "io::copy".into(),
            DiskCopy::Chunks(size) => size_name(size),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => "sendfile+splice".into(),
        }
    }
}
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
const BURST_10K: usize = 10_000;
/// Open files kept free of a burst's connections.
const FD_HEADROOM: usize = 256;
/// How long `iperf3` runs.
const IPERF3_SECONDS: u32 = 3;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Size of the large file, in bytes.
    pub large_size: u64,
    /// Number of small frames.
    pub small_count: u64,
    /// Message size of each small frame.
    pub small_message_len: usize,
    /// Number of request/response round trips.
    pub round_trips: u64,
    /// Size of the file sent from disk to disk, in bytes.
    pub disk_size: u64,
    /// Connections in the burst; 0 skips the burst.
    pub burst_connections: usize,
    /// Interleaved rounds; the median is reported.
    pub rounds: usize,
    /// The adapters to measure.
    pub runtimes: Vec<Runtime>,
    /// Where the disk workload's files go: a scratch directory is made
    /// inside it and removed at the end (`None`: the system's temporary
    /// directory).
    pub work_dir: Option<PathBuf>,
}

/// One adapter's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterFigures {
    /// The adapter.
    pub runtime: Runtime,
    /// Large-file throughput, GiB/s.
    pub large_gib_s: f64,
    /// The same large file over TLS (rustls, ring), GiB/s.
    pub tls_large_gib_s: f64,
    /// Small frames per second, fed through a [`tej_core::BufferedSender`].
    pub small_fps: f64,
    /// Small frames per second with one `Sender::send_blocking` per frame.
    pub small_send_fps: f64,
    /// Round trips per second, one 18-byte frame each way.
    pub rtt_per_s: f64,
    /// A file sent from disk and spooled to disk, GiB/s.
    pub disk_gib_s: f64,
    /// Seconds until the server has seen every connection of a burst, the
    /// median of [`BURSTS_PER_ROUND`] bursts per round (`None`: no burst
    /// measured).
    pub burst_s: Option<f64>,
    /// The kernel's listen-queue overflows counted during this adapter's
    /// bursts (all rounds; `None` where `/proc/net/netstat` is unreadable).
    pub burst_listen_overflows: Option<u64>,
}

/// The baselines' figures for the workloads the reference implementation
/// also runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineFigures {
    /// Plain TCP moving the large file's bytes, GiB/s.
    pub large_gib_s: f64,
    /// Minimal length-prefixed frames per second.
    pub small_fps: f64,
}

/// The plain-socket baselines of the other workloads.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainFigures {
    /// Plain TCP per write/read size of [`LARGE_SWEEP`]: (size, GiB/s).
    pub large_sweep: Vec<(usize, f64)>,
    /// Blocking ping-pong of one 18-byte frame each way, round trips/s.
    pub rtt_per_s: f64,
    /// The best of [`disk_sweep`](Self::disk_sweep), GiB/s.
    pub disk_gib_s: f64,
    /// Disk to disk per way of copying of [`DISK_SWEEP`], GiB/s.
    pub disk_sweep: Vec<(DiskCopy, f64)>,
    /// A plain blocking accept loop, seconds for a burst, the median of
    /// every burst (`None`: no burst).
    pub burst_s: Option<f64>,
    /// The kernel's listen-queue overflows counted during its bursts.
    pub burst_listen_overflows: Option<u64>,
    /// `iperf3` with 1 MiB writes, GiB/s (`None`: not installed or failed).
    pub iperf3_gib_s: Option<f64>,
    /// Why `iperf3` has no figure, when it has none.
    pub iperf3_skipped: Option<String>,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The baselines of the large-file and small-frame workloads.
    pub baseline: BaselineFigures,
    /// The other baselines.
    pub plain: PlainFigures,
    /// Connections in each burst (0: no burst).
    pub burst_connections: usize,
    /// Each adapter, in the order measured.
    pub adapters: Vec<AdapterFigures>,
}

fn ratio_cell(figure: f64, baseline: f64) -> String {
    format!("{:.2}", figure / baseline)
}

fn size_name(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes & ((1 << 20) - 1) == 0 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

impl BenchReport {
    /// A readable table with each adapter's ratio to its baseline: one line
    /// of header, one for the baselines, one per adapter.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<19} {:>16}  {:>5}   {:>9}  {:>9}   {:>14}  {:>5}   {:>15}  {:>5}   {:>13}  {:>5}   {:>10}  {:>5}   {:>7}\n",
            "workload",
            "large file GiB/s",
            "ratio",
            "TLS GiB/s",
            "TLS/plain",
            "small frames/s",
            "ratio",
            "send_blocking/s",
            "ratio",
            "round trips/s",
            "ratio",
            "disk GiB/s",
            "ratio",
            "burst s"
        ));
        let burst =
            |seconds: Option<f64>| seconds.map_or_else(|| "-".into(), |s| format!("{s:.3}"));
        out.push_str(&format!(
            "{:<19} {:>16.2}  {:>5}   {:>9}  {:>9}   {:>14.0}  {:>5}   {:>15}  {:>5}   {:>13.0}  {:>5}   {:>10.2}  {:>5}   {:>7}\n",
            "baseline",
            self.baseline.large_gib_s,
            "1.00",
            "-",
            "-",
            self.baseline.small_fps,
            "1.00",
            "-",
            "-",
            self.plain.rtt_per_s,
            "1.00",
            self.plain.disk_gib_s,
            "1.00",
            burst(self.plain.burst_s)
        ));
        for adapter in &self.adapters {
            out.push_str(&format!(
                "{:<19} {:>16.2}  {:>5}   {:>9.2}  {:>9}   {:>14.0}  {:>5}   {:>15.0}  {:>5}   {:>13.0}  {:>5}   {:>10.2}  {:>5}   {:>7}\n",
                adapter.runtime.name(),
                adapter.large_gib_s,
                ratio_cell(adapter.large_gib_s, self.baseline.large_gib_s),
                adapter.tls_large_gib_s,
                ratio_cell(adapter.tls_large_gib_s, adapter.large_gib_s),
                adapter.small_fps,
                ratio_cell(adapter.small_fps, self.baseline.small_fps),
                adapter.small_send_fps,
                ratio_cell(adapter.small_send_fps, self.baseline.small_fps),
                adapter.rtt_per_s,
                ratio_cell(adapter.rtt_per_s, self.plain.rtt_per_s),
                adapter.disk_gib_s,
                ratio_cell(adapter.disk_gib_s, self.plain.disk_gib_s),
                burst(adapter.burst_s)
            ));
        }
        out
    }

    /// The reference implementation's row for [`table`](Self::table).
    pub fn python_row(&self, python: &BaselineFigures) -> String {
        format!(
            "{:<19} {:>16.2}  {:>5}   {:>14.0}  {:>5}\n",
            "python (tej-protoc)",
            python.large_gib_s,
            ratio_cell(python.large_gib_s, self.baseline.large_gib_s),
            python.small_fps,
            ratio_cell(python.small_fps, self.baseline.small_fps),
        )
    }

    /// What the baselines are made of, printed after the table: the plain
    /// TCP sweep, `iperf3` (or why it was skipped), the burst's size and the
    /// listen-queue overflows during each adapter's bursts.
    pub fn details(&self) -> String {
        let sweep: Vec<String> = self
            .plain
            .large_sweep
            .iter()
            .map(|(size, gib_s)| format!("{} {gib_s:.2}", size_name(*size)))
            .collect();
        let mut out = format!(
            "plain TCP, GiB/s by write/read size (the best is the baseline): {}\n",
            sweep.join(", ")
        );
        let disk: Vec<String> = self
            .plain
            .disk_sweep
            .iter()
            .map(|(how, gib_s)| format!("{} {gib_s:.2}", how.name()))
            .collect();
        out.push_str(&format!(
            "plain disk to disk, GiB/s (the best is the baseline): {}\n",
            disk.join(", ")
        ));
        match (self.plain.iperf3_gib_s, &self.plain.iperf3_skipped) {
            (Some(gib_s), _) => out.push_str(&format!(
                "iperf3 -l 1M -t {IPERF3_SECONDS}: {gib_s:.2} GiB/s ({:.2} of the baseline)\n",
                gib_s / self.baseline.large_gib_s
            )),
            (None, Some(why)) => out.push_str(&format!("iperf3: skipped ({why})\n")),
            (None, None) => out.push_str("iperf3: skipped\n"),
        }
        if self.burst_connections > 0 {
            let count = |overflows: Option<u64>| {
                overflows.map_or_else(|| "?".into(), |count| count.to_string())
            };
            let overflows: Vec<String> = std::iter::once(format!(
                "baseline {}",
                count(self.plain.burst_listen_overflows)
            ))
            .chain(self.adapters.iter().map(|adapter| {
                format!(
                    "{} {}",
                    adapter.runtime.name(),
                    count(adapter.burst_listen_overflows)
                )
            }))
            .collect();
            out.push_str(&format!(
                "burst: {} connections; listen-queue overflows (all rounds): {}\n",
                self.burst_connections,
                overflows.join(", ")
            ));
        } else {
            out.push_str("burst: skipped\n");
        }
        out
    }

    /// The report as one JSON object.
    pub fn json(&self, python: Option<&BaselineFigures>) -> serde_json::Value {
        let adapters: serde_json::Map<String, serde_json::Value> = self
            .adapters
            .iter()
            .map(|adapter| {
                let mut figures = serde_json::json!({
                    "large_gib_s": adapter.large_gib_s,
                    "large_ratio": adapter.large_gib_s / self.baseline.large_gib_s,
                    "tls_large_gib_s": adapter.tls_large_gib_s,
                    "tls_ratio": adapter.tls_large_gib_s / adapter.large_gib_s,
                    "small_fps": adapter.small_fps,
                    "small_ratio": adapter.small_fps / self.baseline.small_fps,
                    "small_send_fps": adapter.small_send_fps,
                    "small_send_ratio": adapter.small_send_fps / self.baseline.small_fps,
                    "rtt_per_s": adapter.rtt_per_s,
                    "rtt_ratio": adapter.rtt_per_s / self.plain.rtt_per_s,
                    "disk_gib_s": adapter.disk_gib_s,
                    "disk_ratio": adapter.disk_gib_s / self.plain.disk_gib_s,
                    "burst_s": adapter.burst_s,
                    "burst_listen_overflows": adapter.burst_listen_overflows,
                });
                if self.burst_connections == BURST_10K {
                    figures["burst_10k_s"] = adapter.burst_s.into();
                }
                (adapter.runtime.name().to_string(), figures)
            })
            .collect();
        let sweep: serde_json::Map<String, serde_json::Value> = self
            .plain
            .large_sweep
            .iter()
            .map(|(size, gib_s)| (size.to_string(), (*gib_s).into()))
            .collect();
        let disk_sweep: serde_json::Map<String, serde_json::Value> = self
            .plain
            .disk_sweep
            .iter()
            .map(|(how, gib_s)| (how.key(), (*gib_s).into()))
            .collect();
        let mut baseline = serde_json::json!({
            "large_gib_s": self.baseline.large_gib_s,
            "large_sweep_gib_s": sweep,
            "small_fps": self.baseline.small_fps,
            "rtt_per_s": self.plain.rtt_per_s,
            "disk_gib_s": self.plain.disk_gib_s,
            "disk_sweep_gib_s": disk_sweep,
            "burst_s": self.plain.burst_s,
            "burst_listen_overflows": self.plain.burst_listen_overflows,
            "iperf3_gib_s": self.plain.iperf3_gib_s,
        });
        if self.burst_connections == BURST_10K {
            baseline["burst_10k_s"] = self.plain.burst_s.into();
        }
        serde_json::json!({
            "baseline": baseline,
            "burst_connections": self.burst_connections,
            "adapters": adapters,
            "python": python.map(|python| serde_json::json!({
                "large_gib_s": python.large_gib_s,
                "small_fps": python.small_fps,
            })),
        })
    }
}

/// Runs every workload `options.rounds` times, interleaved, and reports medians.
///
/// # Errors
///
/// A workload that failed or did not finish in time.
pub fn run(options: &BenchOptions, progress: &mut dyn FnMut(&str)) -> io::Result<BenchReport> {
    smol_threads_per_side();
    let payload = Bytes::from(
        (0..options.large_size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    // The baseline writes the same borrowed slice every time; the same for
    // frames is a 'static message (leaked once) that each new frame borrows.
    let message: &'static [u8] = vec![0x5a; options.small_message_len].leak();
    let work = match &options.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("tej-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("tej-bench-").tempdir()?,
    };
    let tls = BenchTls::new(work.path())?;
    let source = work.path().join("source.bin");
    write_cached_file(&source, options.disk_size)?;
    let burst_connections = burst_within_fd_limit(options.burst_connections);
    if burst_connections < options.burst_connections {
        progress(&format!(
            "the burst uses {burst_connections} connections, not {}: the limit on open files is too low (raise it with `ulimit -n`)",
            options.burst_connections
        ));
    }
    let mut baseline_sweep: Vec<Vec<f64>> = vec![Vec::new(); LARGE_SWEEP.len()];
    let mut baseline_small = Vec::new();
    let mut baseline_rtt = Vec::new();
    let mut baseline_disk: Vec<Vec<f64>> = vec![Vec::new(); DISK_SWEEP.len()];
    let mut baseline_burst = Vec::new();
    let bursts_per_round = if burst_connections > 0 {
        BURSTS_PER_ROUND
    } else {
        0
    };
    let mut baseline_overflows = Some(0);
    let mut per_adapter: Vec<Samples> = vec![Samples::default(); options.runtimes.len()];
    for round in 1..=options.rounds {
        progress(&format!("round {round}/{}: baseline", options.rounds));
        for (size, samples) in LARGE_SWEEP.iter().zip(&mut baseline_sweep) {
            samples.push(gib_per_s(
                options.large_size,
                plain_tcp_large(&payload, *size)?,
            ));
        }
        baseline_small.push(per_s(
            options.small_count,
            length_prefixed_small(options.small_count, message)?,
        ));
        baseline_rtt.push(per_s(
            options.round_trips,
            plain_ping_pong(options.round_trips)?,
        ));
        for (how, samples) in DISK_SWEEP.iter().zip(&mut baseline_disk) {
            samples.push(gib_per_s(options.disk_size, {
                settle_page_cache();
                plain_disk_copy(&source, work.path(), *how)?
            }));
        }
        for _ in 0..bursts_per_round {
            let took =
                counting_overflows(&mut baseline_overflows, || plain_burst(burst_connections))?;
            baseline_burst.push(took.as_secs_f64());
        }
        for (runtime, samples) in options.runtimes.iter().zip(&mut per_adapter) {
            progress(&format!("round {round}/{}: {runtime}", options.rounds));
            samples.large.push(gib_per_s(
                options.large_size,
                tej_large(*runtime, &payload, None)?,
            ));
            samples.tls_large.push(gib_per_s(
                options.large_size,
                tej_large(*runtime, &payload, Some(&tls))?,
            ));
            samples.small.push(per_s(
                options.small_count,
                tej_small(*runtime, options.small_count, message, SmallSend::Buffered)?,
            ));
            samples.small_send.push(per_s(
                options.small_count,
                tej_small(*runtime, options.small_count, message, SmallSend::PerFrame)?,
            ));
            samples.rtt.push(per_s(
                options.round_trips,
                tej_round_trips(*runtime, options.round_trips)?,
            ));
            samples.disk.push(gib_per_s(options.disk_size, {
                settle_page_cache();
                tej_disk(*runtime, &source, &work.path().join(runtime.name()))?
            }));
            for _ in 0..bursts_per_round {
                let took = counting_overflows(&mut samples.overflows, || {
                    tej_burst(*runtime, burst_connections)
                })?;
                samples.burst.push(took.as_secs_f64());
            }
        }
    }
    progress("iperf3");
    let (iperf3_gib_s, iperf3_skipped) = match iperf3() {
        Ok(gib_s) => (Some(gib_s), None),
        Err(why) => (None, Some(why)),
    };
    let large_sweep: Vec<(usize, f64)> = LARGE_SWEEP
        .iter()
        .copied()
        .zip(baseline_sweep.into_iter().map(median))
        .collect();
    let best_large = large_sweep
        .iter()
        .map(|(_, gib_s)| *gib_s)
        .fold(0.0, f64::max);
    let disk_sweep: Vec<(DiskCopy, f64)> = DISK_SWEEP
        .iter()
        .copied()
        .zip(baseline_disk.into_iter().map(median))
        .collect();
    let best_disk = disk_sweep
        .iter()
        .map(|(_, gib_s)| *gib_s)
        .fold(0.0, f64::max);
    let measured_burst = burst_connections > 0;
    Ok(BenchReport {
        baseline: BaselineFigures {
            large_gib_s: best_large,
            small_fps: median(baseline_small),
        },
        plain: PlainFigures {
            large_sweep,
            rtt_per_s: median(baseline_rtt),
            disk_gib_s: best_disk,
            disk_sweep,
            burst_s: measured_burst.then(|| median(baseline_burst)),
            burst_listen_overflows: baseline_overflows.filter(|_| measured_burst),
            iperf3_gib_s,
            iperf3_skipped,
        },
        burst_connections,
        adapters: options
            .runtimes
            .iter()
            .zip(per_adapter)
            .map(|(runtime, samples)| AdapterFigures {
                runtime: *runtime,
                large_gib_s: median(samples.large),
                tls_large_gib_s: median(samples.tls_large),
                small_fps: median(samples.small),
                small_send_fps: median(samples.small_send),
                rtt_per_s: median(samples.rtt),
                disk_gib_s: median(samples.disk),
                burst_s: measured_burst.then(|| median(samples.burst)),
                burst_listen_overflows: samples.overflows.filter(|_| measured_burst),
            })
            .collect(),
    })
}

/// Threads of smol's global executor when `SMOL_THREADS` is not set: one
/// per side of a connection, as the baselines (a thread per socket) and
/// mio (an event loop per side) have.
pub const SMOL_THREADS: usize = 2;

/// Gives smol's global executor [`SMOL_THREADS`] threads unless the
/// environment chose a number. smol's default is one thread, which runs
/// both ends of every bench connection: the large file's send and receive
/// copies and the spool's file writes take turns on one core (measured
/// side by side: disk to disk 0.56 → 1.67 of the plain copy, large file
/// 0.62–0.83 → 0.83–0.89 with two). Called before anything starts smol.
fn smol_threads_per_side() {
    if std::env::var_os("SMOL_THREADS").is_none() {
        std::env::set_var("SMOL_THREADS", SMOL_THREADS.to_string());
    }
}

/// One adapter's measurements, one per round.
#[derive(Debug, Clone)]
struct Samples {
    large: Vec<f64>,
    tls_large: Vec<f64>,
    small: Vec<f64>,
    small_send: Vec<f64>,
    rtt: Vec<f64>,
    disk: Vec<f64>,
    burst: Vec<f64>,
    overflows: Option<u64>,
}

impl Default for Samples {
    fn default() -> Self {
        Samples {
            large: Vec::new(),
            tls_large: Vec::new(),
            small: Vec::new(),
            small_send: Vec::new(),
            rtt: Vec::new(),
            disk: Vec::new(),
            burst: Vec::new(),
            overflows: Some(0),
        }
    }
}

/// How the small-frame workload hands frames to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmallSend {
    /// Fed through a `BufferedSender`, flushed at the end.
    Buffered,
    /// One `Sender::send_blocking` per frame, each written as soon as possible.
    PerFrame,
}

fn gib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
}

fn per_s(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn unbounded_config() -> SessionConfig {
    SessionConfig::default().limits(
        Limits::DEFAULT
            .max_file_size(u64::MAX)
            .max_frame_size(u64::MAX),
    )
}

fn wait<T>(done: &Receiver<T>, what: &str) -> io::Result<T> {
    done.recv_timeout(MEASUREMENT_TIMEOUT)
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} did not finish")))
}

fn joined<T>(thread: std::thread::JoinHandle<io::Result<T>>, what: &str) -> io::Result<T> {
    thread
        .join()
        .map_err(|_| io::Error::other(format!("{what} panicked")))?
}

/// Writes `len` bytes to `path`, then reads them once, so that the file
/// sits in the page cache when it is sent.
fn write_cached_file(path: &Path, len: u64) -> io::Result<()> {
    let chunk: Vec<u8> = (0..DISK_BUFFER_LEN).map(|i| (i % 251) as u8).collect();
    let mut file = BufWriter::new(std::fs::File::create(path)?);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(io::IntoInnerError::into_error)?;
    let mut buffer = vec![0u8; DISK_BUFFER_LEN];
    let mut file = std::fs::File::open(path)?;
    while file.read(&mut buffer)? > 0 {}
    Ok(())
}

/// The most connections a burst can use under this process's soft limit
/// on open files (both ends live in this process, though each client end
/// is closed at once): `connections`, or fewer where the limit is lower
/// (`ulimit -n` raises it). Where the limit is unreadable, `connections`.
fn burst_within_fd_limit(connections: usize) -> usize {
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
fn counting_overflows(
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

/// Counts frames and file bytes; signals when `expected` frames have arrived.
struct Counter {
    expected: u64,
    frames: u64,
    done: SyncSender<()>,
}

impl Handler for Counter {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        self.frames += 1;
        if self.frames == self.expected {
            let _ = self.done.send(());
        }
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Discard
    }
}

/// The round trips' frame: no files, no message.
fn round_trip_frame() -> Frame {
    Frame::new(Status::DEFAULT)
}

/// Answers every frame with a [`round_trip_frame`].
struct Responder;

impl Handler for Responder {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let _ = conn.send(round_trip_frame());
    }
}

/// Sends a request on connect and on every reply. The first round trip
/// warms up; the clock starts at its reply and stops `left` replies later.
struct Requester {
    left: u64,
    started: Option<Instant>,
    done: SyncSender<Duration>,
}

impl Handler for Requester {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn.send(round_trip_frame());
    }

    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let Some(started) = self.started else {
            self.started = Some(Instant::now());
            let _ = conn.send(round_trip_frame());
            return;
        };
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.send(started.elapsed());
        } else {
            let _ = conn.send(round_trip_frame());
        }
    }
}

/// Spools every file to `dir`; sends each received frame's first file path.
struct Spooler {
    dir: PathBuf,
    done: SyncSender<Option<PathBuf>>,
}

impl Handler for Spooler {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let path = frame
            .files
            .first()
            .and_then(|file| file.path().map(Path::to_path_buf));
        let _ = self.done.send(path);
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        tej_net::spool::to_dir(self.dir.clone())
    }
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

struct Quiet;
impl Handler for Quiet {}

/// One large file from memory to a discarding receiver, over TLS with
/// `tls`; timed until the server's handler has the frame.
fn tej_large(runtime: Runtime, payload: &Bytes, tls: Option<&BenchTls>) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let options = runtime::ServerOptions {
        tls: tls.map(|tls| Arc::clone(&tls.server)),
        ..runtime::ServerOptions::default()
    };
    let server = runtime::start_server_with(
        runtime,
        loopback(),
        unbounded_config(),
        options,
        move || Counter {
            expected: 1,
            frames: 0,
            done: done_tx.clone(),
        },
    )?;
    let client = runtime::connect_with(
        runtime,
        server.endpoint(),
        tls.map(|tls| &tls.client),
        Quiet,
        unbounded_config(),
    )?;
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("large.bin", payload.clone())
        .build();
    let started = Instant::now();
    client
        .sender()
        .send_blocking(frame)
        .map_err(|error| io::Error::other(error.to_string()))?;
    wait(&done, "the large file")?;
    let took = started.elapsed();
    client.close()?;
    server.stop();
    Ok(took)
}

/// The test certificates of `testdata/tls`, built into the binary so that
/// `tej bench` runs from anywhere: a CA and a server certificate for
/// `localhost`/`127.0.0.1` signed by it. For measuring only.
const TLS_CA_PEM: &[u8] = include_bytes!("../../testdata/tls/ca.pem");
const TLS_SERVER_PEM: &[u8] = include_bytes!("../../testdata/tls/server.pem");
const TLS_SERVER_KEY: &[u8] = include_bytes!("../../testdata/tls/server.key");

/// The TLS configurations of the TLS large-file workload: rustls with ring,
/// as `tej serve --tls-*` and `tej send --tls` build them
/// ([`crate::tls`]), from the built-in certificates (written to the
/// bench's scratch directory for those functions to read).
struct BenchTls {
    server: Arc<rustls::ServerConfig>,
    client: crate::tls::ClientTls,
}

impl BenchTls {
    fn new(dir: &Path) -> io::Result<BenchTls> {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let ca = tls_dir.join("ca.pem");
        let cert = tls_dir.join("server.pem");
        let key = tls_dir.join("server.key");
        std::fs::write(&ca, TLS_CA_PEM)?;
        std::fs::write(&cert, TLS_SERVER_PEM)?;
        std::fs::write(&key, TLS_SERVER_KEY)?;
        let failed = |error: anyhow::Error| io::Error::other(format!("{error:#}"));
        Ok(BenchTls {
            server: crate::tls::server_config(&cert, &key, None).map_err(failed)?,
            client: crate::tls::ClientTls {
                config: crate::tls::client_config(Some(&ca), None).map_err(failed)?,
                server_name: crate::tls::server_name("localhost").map_err(failed)?,
            },
        })
    }
}

fn tej_small(
    runtime: Runtime,
    count: u64,
    message: &'static [u8],
    how: SmallSend,
) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let server = runtime::start_server(runtime, loopback(), SessionConfig::default(), move || {
        Counter {
            expected: count,
            frames: 0,
            done: done_tx.clone(),
        }
    })?;
    let client = runtime::connect(runtime, server.addr(), Quiet, SessionConfig::default())?;
    let sender = client.sender();
    let started = Instant::now();
    let refused = |error: tej_core::SendError| io::Error::other(error.to_string());
    match how {
        SmallSend::Buffered => {
            // Batched on this thread, as `BufWriter` batches the baseline's bytes.
            let mut buffered = sender.buffered();
            for _ in 0..count {
                buffered
                    .feed_blocking(Frame::message(Bytes::from_static(message)))
                    .map_err(refused)?;
            }
            buffered.flush_blocking();
        }
        SmallSend::PerFrame => {
            for _ in 0..count {
                sender
                    .send_blocking(Frame::message(Bytes::from_static(message)))
                    .map_err(refused)?;
            }
        }
    }
    wait(&done, "the small frames")?;
    let took = started.elapsed();
    client.close()?;
    server.stop();
    Ok(took)
}

/// `count` round trips after one to warm up, timed by the client's handler.
fn tej_round_trips(runtime: Runtime, count: u64) -> io::Result<Duration> {
    let server =
        runtime::start_server(runtime, loopback(), SessionConfig::default(), || Responder)?;
    let (done_tx, done) = mpsc::sync_channel(1);
    let client = runtime::connect(
        runtime,
        server.addr(),
        Requester {
            left: count,
            started: None,
            done: done_tx,
        },
        SessionConfig::default(),
    )?;
    let took = wait(&done, "the round trips")?;
    client.close()?;
    server.stop();
    Ok(took)
}

/// The file at `source` sent from disk (`tej_net::file::open`) to a server spooling
/// it into `spool` (`tej_net::spool::to_dir`); timed until the server's
/// handler has the spooled file.
fn tej_disk(runtime: Runtime, source: &Path, spool: &Path) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let dir = spool.to_path_buf();
    let server = runtime::start_server(runtime, loopback(), unbounded_config(), move || Spooler {
        dir: dir.clone(),
        done: done_tx.clone(),
    })?;
    let client = runtime::connect(runtime, server.addr(), Quiet, unbounded_config())?;
    let frame = FrameBuilder::new(Status::DEFAULT)
        .add_file(tej_net::file::open(source)?)
        .build();
    let started = Instant::now();
    client
        .sender()
        .send_blocking(frame)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let spooled = wait(&done, "the file to disk")?;
    let took = started.elapsed();
    client.close()?;
    server.stop();
    let spooled = spooled.ok_or_else(|| io::Error::other("the file was not spooled"))?;
    let len = std::fs::metadata(&spooled)?.len();
    std::fs::remove_file(&spooled)?;
    if len != std::fs::metadata(source)?.len() {
        return Err(io::Error::other("the spooled file has the wrong length"));
    }
    Ok(took)
}

/// `connections` connects to a server on `runtime`, each closed at once,
/// timed until every session has started.
fn tej_burst(runtime: Runtime, connections: usize) -> io::Result<Duration> {
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
fn plain_burst(connections: usize) -> io::Result<Duration> {
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

/// Plain TCP: the payload written in `chunk`-byte `write_all`s; the
/// receiver reads it in `chunk`-byte pieces and drops them.
fn plain_tcp_large(payload: &Bytes, chunk: usize) -> io::Result<Duration> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let expected = payload.len() as u64;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; chunk];
        let mut total = 0u64;
        while total < expected {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            total += read as u64;
        }
        Ok(total)
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    for piece in payload.chunks(chunk) {
        stream.write_all(piece)?;
    }
    let received = joined(receiver, "the receiver")?;
    let took = started.elapsed();
    if received != expected {
        return Err(io::Error::other("plain TCP lost bytes"));
    }
    Ok(took)
}

/// A blocking ping-pong on plain sockets with `TCP_NODELAY`: one
/// [`ROUND_TRIP_FRAME_LEN`]-byte TEJ frame each way, `count` times after
/// one to warm up.
fn plain_ping_pong(count: u64) -> io::Result<Duration> {
    let frame = round_trip_frame()
        .encode_to_vec()
        .map_err(|error| io::Error::other(error.to_string()))?;
    if frame.len() != ROUND_TRIP_FRAME_LEN {
        return Err(io::Error::other(format!(
            "the round trip frame is {} bytes, not {ROUND_TRIP_FRAME_LEN}",
            frame.len()
        )));
    }
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let reply = frame.clone();
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut request = [0u8; ROUND_TRIP_FRAME_LEN];
        for _ in 0..=count {
            stream.read_exact(&mut request)?;
            stream.write_all(&reply)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut answer = [0u8; ROUND_TRIP_FRAME_LEN];
    stream.write_all(&frame)?;
    stream.read_exact(&mut answer)?;
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&frame)?;
        stream.read_exact(&mut answer)?;
    }
    let took = started.elapsed();
    joined(server, "the ping-pong server")?;
    Ok(took)
}

/// Writes every dirty page back before a disk-to-disk copy (not timed), so
/// that no copy pays for the writeback of the ones before it: without it,
/// whichever copies came after a few GiB of writes ran into the kernel's
/// dirty-page throttling, and the order decided the ratios.
fn settle_page_cache() {
    #[cfg(target_os = "linux")]
    rustix::fs::sync();
}

/// Disk to disk on plain sockets, copied `how`. Timed from the connected
/// socket until the file is written.
fn plain_disk_copy(source: &Path, dir: &Path, how: DiskCopy) -> io::Result<Duration> {
    fn copy_in_chunks(from: &mut impl Read, to: &mut impl Write, chunk: usize) -> io::Result<u64> {
        let mut buffer = vec![0u8; chunk];
        let mut total = 0u64;
        loop {
            let read = from.read(&mut buffer)?;
            if read == 0 {
                return Ok(total);
            }
            to.write_all(&buffer[..read])?;
            total += read as u64;
        }
    }

    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let target = dir.join("plain-copy.bin");
    let written = target.clone();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut file = std::fs::File::create(&written)?;
        match how {
            DiskCopy::StdCopy => io::copy(&mut stream, &mut file),
            DiskCopy::Chunks(chunk) => copy_in_chunks(&mut stream, &mut file, chunk),
            #[cfg(target_os = "linux")]
            DiskCopy::Kernel => kernel::splice_to_file(&stream, &file),
        }
    });
    let mut file = std::fs::File::open(source)?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    let sent = match how {
        DiskCopy::StdCopy => io::copy(&mut file, &mut stream)?,
        DiskCopy::Chunks(chunk) => copy_in_chunks(&mut file, &mut stream, chunk)?,
        #[cfg(target_os = "linux")]
        DiskCopy::Kernel => kernel::sendfile_to_socket(&file, &stream)?,
    };
    drop(stream);
    let copied = joined(receiver, "the disk receiver")?;
    let took = started.elapsed();
    std::fs::remove_file(&target)?;
    if copied != sent || sent != std::fs::metadata(source)?.len() {
        return Err(io::Error::other("the plain disk copy lost bytes"));
    }
    Ok(took)
}

/// The kernel's own copies for the disk baseline, through rustix.
#[cfg(target_os = "linux")]
mod kernel {
    use std::fs::File;
    use std::io;
    use std::net::TcpStream;

    use rustix::pipe::{fcntl_setpipe_size, pipe, splice, SpliceFlags};

    /// Most bytes one call moves.
    const PIECE: usize = 1 << 20;

    /// The whole file to the socket with `sendfile(2)`.
    pub(super) fn sendfile_to_socket(file: &File, socket: &TcpStream) -> io::Result<u64> {
        let mut offset = 0u64;
        loop {
            let sent = rustix::fs::sendfile(socket, file, Some(&mut offset), PIECE)?;
            if sent == 0 {
                return Ok(offset);
            }
        }
    }

    /// Everything the socket delivers until its end, into the file, with
    /// `splice(2)` through a pipe (a 1 MiB pipe where the kernel allows).
    pub(super) fn splice_to_file(socket: &TcpStream, file: &File) -> io::Result<u64> {
        let (pipe_out, pipe_in) = pipe()?;
        let pipe_len = fcntl_setpipe_size(&pipe_in, PIECE).unwrap_or(64 * 1024);
        let mut total = 0u64;
        loop {
            let moved = splice(socket, None, &pipe_in, None, pipe_len, SpliceFlags::MOVE)?;
            if moved == 0 {
                return Ok(total);
            }
            let mut left = moved;
            while left > 0 {
                match splice(&pipe_out, None, file, None, left, SpliceFlags::MOVE)? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    spliced => left -= spliced,
                }
            }
            total += moved as u64;
        }
    }
}

/// `iperf3 -c` with 1 MiB writes against `iperf3 -s -1` on loopback, GiB/s;
/// the error says why there is no figure.
fn iperf3() -> Result<f64, String> {
    use std::process::{Command, Stdio};

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let installed = Command::new("iperf3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        return Err("iperf3 is not installed".into());
    }
    let port = TcpListener::bind(loopback())
        .and_then(|listener| listener.local_addr())
        .map_err(|error| error.to_string())?
        .port()
        .to_string();
    let _server = KillOnDrop(
        Command::new("iperf3")
            .args(["-s", "-1", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| error.to_string())?,
    );
    let mut last = String::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let output = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port, "-l", "1M", "-J"])
            .args(["-t", &IPERF3_SECONDS.to_string()])
            .stderr(Stdio::null())
            .output()
            .map_err(|error| error.to_string())?;
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
        if let Some(bits) = report["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bits / 8.0 / f64::from(1u32 << 30));
        }
        last = report["error"].as_str().unwrap_or("no figure").to_string();
    }
    Err(format!("iperf3 failed: {last}"))
}

/// The least a framed protocol can do: a u32 length and the bytes, through
/// `BufWriter` and `BufReader` of `READ_BUFFER_LEN`. The reader takes whole
/// frames straight from the `BufReader`'s buffer, copying each message into
/// a reused `Vec` (what a receiver needs to own it), and falls back to
/// `read_exact` only for a frame split between two reads: the fastest a
/// hand-written reader gets, whatever the compiler inlines.
fn length_prefixed_small(count: u64, message: &[u8]) -> io::Result<Duration> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (stream, _) = listener.accept()?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_LEN, stream);
        let mut body = Vec::new();
        let mut frames = 0u64;
        while frames < count {
            let buffer = reader.fill_buf()?;
            let mut used = 0;
            while frames < count {
                let Some(length) = buffer.get(used..used + 4) else {
                    break;
                };
                let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
                let Some(message) = buffer.get(used + 4..used + 4 + length as usize) else {
                    break;
                };
                body.clear();
                body.extend_from_slice(message);
                std::hint::black_box(&body);
                used += 4 + length as usize;
                frames += 1;
            }
            reader.consume(used);
            if used == 0 && frames < count {
                let mut length = [0u8; 4];
                reader.read_exact(&mut length)?;
                body.resize(u32::from_be_bytes(length) as usize, 0);
                reader.read_exact(&mut body)?;
                frames += 1;
            }
        }
        Ok(frames)
    });
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut writer = BufWriter::with_capacity(READ_BUFFER_LEN, stream);
    let started = Instant::now();
    for _ in 0..count {
        writer.write_all(&(message.len() as u32).to_be_bytes())?;
        writer.write_all(message)?;
    }
    writer.flush()?;
    let frames = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))??;
    let took = started.elapsed();
    if frames != count {
        return Err(io::Error::other("the baseline lost frames"));
    }
    Ok(took)
}

/// The reference implementation's bench script, written out when needed.
const PYTHON_BENCH: &str = include_str!("../bench/python_bench.py");

/// A Python interpreter that can `import tej_protoc`: `explicit` if given,
/// else the interop tests' virtualenv, else `python3`.
pub fn find_reference_python(explicit: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python");
    let candidates: Vec<std::path::PathBuf> = match explicit {
        Some(path) => vec![path.to_path_buf()],
        None => vec![venv, "python3".into()],
    };
    candidates.into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import tej_protoc"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// The reference implementation, server and client in two processes, on the
/// large-file and small-frame workloads (median of `rounds`).
///
/// # Errors
///
/// The script failed or did not finish in time.
pub fn python_figures(
    python: &std::path::Path,
    options: &BenchOptions,
) -> io::Result<BaselineFigures> {
    let script = tempfile::Builder::new()
        .prefix("tej-python-bench-")
        .suffix(".py")
        .tempfile()?;
    std::fs::write(script.path(), PYTHON_BENCH)?;
    let mut large = Vec::new();
    let mut small = Vec::new();
    for _ in 0..options.rounds {
        let took = python_run(
            python,
            script.path(),
            1,
            &["--large", &options.large_size.to_string()],
        )?;
        large.push(gib_per_s(options.large_size, took));
        let took = python_run(
            python,
            script.path(),
            options.small_count,
            &[
                "--small",
                &options.small_count.to_string(),
                "--msg-size",
                &options.small_message_len.to_string(),
            ],
        )?;
        small.push(per_s(options.small_count, took));
    }
    Ok(BaselineFigures {
        large_gib_s: median(large),
        small_fps: median(small),
    })
}

fn python_run(
    python: &std::path::Path,
    script: &std::path::Path,
    expect: u64,
    client_args: &[&str],
) -> io::Result<Duration> {
    use std::process::{Command, Stdio};

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn first_json(child: &mut std::process::Child, key: &str) -> io::Result<f64> {
        let stdout = child
            .stdout
            .as_mut()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|error| io::Error::other(format!("bad line {line:?}: {error}")))?;
        value[key]
            .as_f64()
            .ok_or_else(|| io::Error::other(format!("no {key} in {line:?}")))
    }

    let mut server = KillOnDrop(
        Command::new(python)
            .arg(script)
            .args(["server", "--expect", &expect.to_string()])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let port = first_json(&mut server.0, "port")? as u16;
    let mut client = KillOnDrop(
        Command::new(python)
            .arg(script)
            .args(["client", "--port", &port.to_string()])
            .args(client_args)
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let start = first_json(&mut client.0, "start")?;
    let end = first_json(&mut server.0, "end")?;
    Ok(Duration::from_secs_f64((end - start).max(1e-9)))
}
