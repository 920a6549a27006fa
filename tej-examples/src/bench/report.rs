//! What a run measured and how it is shown: the figures of every adapter
//! and baseline, the table `tej bench` prints, the details under it and the
//! JSON object of `--json` (whose keys scripts read).

use super::burst::BURST_10K;
use super::disk::DiskCopy;
use super::harness::size_name;
use super::iperf3::IPERF3_SECONDS;
use super::small_threads::CrossThread;
use crate::runtime::Runtime;

/// One adapter's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterFigures {
    /// The adapter.
    pub runtime: Runtime,
    /// Large-file throughput, GiB/s.
    pub large_gib_s: f64,
    /// The same large file over TLS (rustls, ring), GiB/s; its ratio is to
    /// [`PlainFigures::tls_gib_s`], the plain rustls copy.
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
    /// median of [`BURSTS_PER_ROUND`](super::BURSTS_PER_ROUND) bursts per round (`None`: no burst
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
    /// Plain TCP per write/read size of [`LARGE_SWEEP`](super::LARGE_SWEEP): (size, GiB/s).
    pub large_sweep: Vec<(usize, f64)>,
    /// The small-frame loop with its writer split across two threads, per
    /// way of [`CROSS_THREAD_SWEEP`](super::CROSS_THREAD_SWEEP): (way, frames/s).
    pub cross_thread_sweep: Vec<(CrossThread, f64)>,
    /// Blocking ping-pong of one 18-byte frame each way, round trips/s.
    pub rtt_per_s: f64,
    /// The best of [`tls_sweep`](Self::tls_sweep), GiB/s: the TLS baseline.
    pub tls_gib_s: f64,
    /// The large file's bytes copied over plain rustls with the adapters'
    /// TLS configurations, per copy of [`TLS_SWEEP`](super::TLS_SWEEP):
    /// (name, GiB/s).
    pub tls_sweep: Vec<(&'static str, f64)>,
    /// The best of [`disk_sweep`](Self::disk_sweep), GiB/s.
    pub disk_gib_s: f64,
    /// Disk to disk per way of copying of [`DISK_SWEEP`](super::DISK_SWEEP), GiB/s.
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

impl PlainFigures {
    /// The best of the batched ways across threads, frames/s: the ceiling
    /// of a `BufferedSender` in plain Rust.
    pub fn cross_thread_batches_fps(&self) -> f64 {
        self.best_across_threads(false)
    }

    /// The best of the per-frame ways across threads, frames/s: the
    /// ceiling of `send_blocking` in plain Rust.
    pub fn cross_thread_per_frame_fps(&self) -> f64 {
        self.best_across_threads(true)
    }

    fn best_across_threads(&self, per_frame: bool) -> f64 {
        self.cross_thread_sweep
            .iter()
            .filter(|(how, _)| how.per_frame() == per_frame)
            .map(|(_, fps)| *fps)
            .fold(0.0, f64::max)
    }
}

/// A peer's figures: tokio-util's `Framed<TcpStream, LengthDelimitedCodec>`
/// on the workloads it can run, each set against the same baselines as the
/// adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerFigures {
    /// The large file as one frame, GiB/s.
    pub large_gib_s: f64,
    /// Small frames per second, each `feed` and one `flush`.
    pub small_fps: f64,
    /// Round trips per second, an 18-byte payload each way.
    pub rtt_per_s: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The baselines of the large-file and small-frame workloads.
    pub baseline: BaselineFigures,
    /// The other baselines.
    pub plain: PlainFigures,
    /// tokio-util's `Framed<TcpStream, LengthDelimitedCodec>`.
    pub framed: PeerFigures,
    /// Connections in each burst (0: no burst).
    pub burst_connections: usize,
    /// Each adapter, in the order measured.
    pub adapters: Vec<AdapterFigures>,
}

/// A baseline's sweep as a JSON object: each way's figure under its key.
fn sweep_json<T>(
    sweep: &[(T, f64)],
    key: impl Fn(&T) -> String,
) -> serde_json::Map<String, serde_json::Value> {
    sweep
        .iter()
        .map(|(way, figure)| (key(way), (*figure).into()))
        .collect()
}

fn ratio_cell(figure: f64, baseline: f64) -> String {
    format!("{:.2}", figure / baseline)
}

impl BenchReport {
    /// A readable table with each adapter's ratio to its baseline: one line
    /// of header, one for the baselines, one per adapter, one for the
    /// `Framed` peer.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<19} {:>16}  {:>5}   {:>9}  {:>9}   {:>14}  {:>5}   {:>15}  {:>5}   {:>13}  {:>5}   {:>10}  {:>5}   {:>7}\n",
            "workload",
            "large file GiB/s",
            "ratio",
            "TLS GiB/s",
            "TLS ratio",
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
            format!("{:.2}", self.plain.tls_gib_s),
            "1.00",
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
                ratio_cell(adapter.tls_large_gib_s, self.plain.tls_gib_s),
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
        let framed = &self.framed;
        out.push_str(&format!(
            "{:<19} {:>16.2}  {:>5}   {:>9}  {:>9}   {:>14.0}  {:>5}   {:>15}  {:>5}   {:>13.0}  {:>5}   {:>10}  {:>5}   {:>7}\n",
            "framed (tokio-util)",
            framed.large_gib_s,
            ratio_cell(framed.large_gib_s, self.baseline.large_gib_s),
            "-",
            "-",
            framed.small_fps,
            ratio_cell(framed.small_fps, self.baseline.small_fps),
            "-",
            "-",
            framed.rtt_per_s,
            ratio_cell(framed.rtt_per_s, self.plain.rtt_per_s),
            "-",
            "-",
            "-"
        ));
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
    /// TCP sweep, the small-frame loop across threads, the plain rustls copies, the disk copies, `iperf3` (or why it was skipped), the burst's size and the
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
        let threads: Vec<String> = self
            .plain
            .cross_thread_sweep
            .iter()
            .map(|(how, fps)| {
                format!(
                    "{} {fps:.0} ({})",
                    how.name(),
                    ratio_cell(*fps, self.baseline.small_fps)
                )
            })
            .collect();
        out.push_str(&format!(
            "small frames made on one thread and written on another, frames/s (ratio to the baseline): {}\n",
            threads.join(", ")
        ));
        let tls: Vec<String> = self
            .plain
            .tls_sweep
            .iter()
            .map(|(name, gib_s)| format!("{name} {gib_s:.2}"))
            .collect();
        out.push_str(&format!(
            "plain rustls, GiB/s (the best is the TLS baseline): {}\n",
            tls.join(", ")
        ));
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
                    "tls_ratio": adapter.tls_large_gib_s / self.plain.tls_gib_s,
                    "tls_plain_ratio": adapter.tls_large_gib_s / adapter.large_gib_s,
                    "small_fps": adapter.small_fps,
                    "small_ratio": adapter.small_fps / self.baseline.small_fps,
                    "small_send_fps": adapter.small_send_fps,
                    "small_send_ratio": adapter.small_send_fps / self.baseline.small_fps,
                    "small_cross_thread_ratio": adapter.small_fps / self.plain.cross_thread_batches_fps(),
                    "small_send_cross_thread_ratio": adapter.small_send_fps / self.plain.cross_thread_per_frame_fps(),
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
        let sweep = sweep_json(&self.plain.large_sweep, |size| size.to_string());
        let disk_sweep = sweep_json(&self.plain.disk_sweep, |how| how.key());
        let cross_thread_sweep = sweep_json(&self.plain.cross_thread_sweep, |how| how.key());
        let tls_sweep = sweep_json(&self.plain.tls_sweep, |name| (*name).to_string());
        let mut baseline = serde_json::json!({
            "large_gib_s": self.baseline.large_gib_s,
            "large_sweep_gib_s": sweep,
            "small_fps": self.baseline.small_fps,
            "cross_thread_sweep_fps": cross_thread_sweep,
            "cross_thread_batches_fps": self.plain.cross_thread_batches_fps(),
            "cross_thread_per_frame_fps": self.plain.cross_thread_per_frame_fps(),
            "rtt_per_s": self.plain.rtt_per_s,
            "tls_gib_s": self.plain.tls_gib_s,
            "tls_sweep_gib_s": tls_sweep,
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
            "framed": {
                "large_gib_s": self.framed.large_gib_s,
                "large_ratio": self.framed.large_gib_s / self.baseline.large_gib_s,
                "small_fps": self.framed.small_fps,
                "small_ratio": self.framed.small_fps / self.baseline.small_fps,
                "rtt_per_s": self.framed.rtt_per_s,
                "rtt_ratio": self.framed.rtt_per_s / self.plain.rtt_per_s,
            },
            "python": python.map(|python| serde_json::json!({
                "large_gib_s": python.large_gib_s,
                "small_fps": python.small_fps,
            })),
        })
    }
}
