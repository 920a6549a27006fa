//! The run itself: every workload, baseline first and then each adapter,
//! in interleaved rounds, reduced to medians in a [`BenchReport`].

use std::io;
use std::path::PathBuf;

use bytes::Bytes;

use super::burst::{
    burst_within_fd_limit, counting_overflows, plain_burst, tej_burst, BURSTS_PER_ROUND,
};
use super::disk::{plain_disk_copy, settle_page_cache, tej_disk, write_cached_file, DISK_SWEEP};
use super::framed::{framed_large, framed_round_trips, framed_small};
use super::harness::{gib_per_s, median, per_s};
use super::iperf3::iperf3;
use super::large::{plain_tcp_large, tej_large, LARGE_SWEEP};
use super::report::{AdapterFigures, BaselineFigures, BenchReport, PeerFigures, PlainFigures};
use super::round_trip::{plain_ping_pong, tej_round_trips};
use super::small::{length_prefixed_small, tej_small, SmallSend};
use super::small_threads::{cross_thread_small, CROSS_THREAD_SWEEP};
use super::tls::{futures_rustls_large, tokio_rustls_large, BenchTls, TLS_SWEEP};
use crate::runtime::Runtime;

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
    let mut baseline_threads: Vec<Vec<f64>> = vec![Vec::new(); CROSS_THREAD_SWEEP.len()];
    let mut baseline_tls: Vec<Vec<f64>> = vec![Vec::new(); TLS_SWEEP.len()];
    let mut framed = PeerSamples::default();
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
        baseline_tls[0].push(gib_per_s(
            options.large_size,
            tokio_rustls_large(&payload, &tls)?,
        ));
        baseline_tls[1].push(gib_per_s(
            options.large_size,
            futures_rustls_large(&payload, &tls)?,
        ));
        baseline_small.push(per_s(
            options.small_count,
            length_prefixed_small(options.small_count, message)?,
        ));
        for (how, samples) in CROSS_THREAD_SWEEP.iter().zip(&mut baseline_threads) {
            samples.push(per_s(
                options.small_count,
                cross_thread_small(options.small_count, message, *how)?,
            ));
        }
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
        progress(&format!(
            "round {round}/{}: Framed<LengthDelimitedCodec>",
            options.rounds
        ));
        framed
            .large
            .push(gib_per_s(options.large_size, framed_large(&payload)?));
        framed.small.push(per_s(
            options.small_count,
            framed_small(options.small_count, message)?,
        ));
        framed.rtt.push(per_s(
            options.round_trips,
            framed_round_trips(options.round_trips)?,
        ));
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
    let (large_sweep, best_large) = sweep_medians(LARGE_SWEEP, baseline_sweep);
    let (disk_sweep, best_disk) = sweep_medians(DISK_SWEEP, baseline_disk);
    let (tls_sweep, best_tls) = sweep_medians(TLS_SWEEP, baseline_tls);
    let (cross_thread_sweep, _) = sweep_medians(CROSS_THREAD_SWEEP, baseline_threads);
    let measured_burst = burst_connections > 0;
    Ok(BenchReport {
        baseline: BaselineFigures {
            large_gib_s: best_large,
            small_fps: median(baseline_small),
        },
        plain: PlainFigures {
            large_sweep,
            cross_thread_sweep,
            rtt_per_s: median(baseline_rtt),
            tls_gib_s: best_tls,
            tls_sweep,
            disk_gib_s: best_disk,
            disk_sweep,
            burst_s: measured_burst.then(|| median(baseline_burst)),
            burst_listen_overflows: baseline_overflows.filter(|_| measured_burst),
            iperf3_gib_s,
            iperf3_skipped,
        },
        framed: PeerFigures {
            large_gib_s: median(framed.large),
            small_fps: median(framed.small),
            rtt_per_s: median(framed.rtt),
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

/// A baseline's sweep reduced: each way's median beside it (`ways` and
/// `samples` in the same order), and the best of them (GiB/s).
fn sweep_medians<T: Copy>(ways: &[T], samples: Vec<Vec<f64>>) -> (Vec<(T, f64)>, f64) {
    let sweep: Vec<(T, f64)> = ways
        .iter()
        .copied()
        .zip(samples.into_iter().map(median))
        .collect();
    let best = sweep.iter().map(|(_, gib_s)| *gib_s).fold(0.0, f64::max);
    (sweep, best)
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

/// A peer's measurements, one per round.
#[derive(Debug, Clone, Default)]
struct PeerSamples {
    large: Vec<f64>,
    small: Vec<f64>,
    rtt: Vec<f64>,
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
