//! `tej bench`: every adapter against baselines measured in the same run.
//!
//! Workloads, each on loopback:
//! - one large file from memory, the receiver discarding it (GiB/s), against
//!   plain TCP moving the same bytes with the same buffer sizes;
//! - many small frames in one direction through the callback API (frames/s),
//!   fed through a `BufferedSender` as the baseline writes through a
//!   `BufWriter`, against a minimal length-prefixed writer and reader with
//!   buffered I/O; and the same frames with one `send_blocking` each;
//! - request/response round trips on one connection (round trips/s).
//!
//! Rounds are interleaved (baseline, then each adapter, per round) and the
//! median is kept, so that a noisy neighbour hurts every contender alike.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_core::{
    Connection, FileTarget, Frame, FrameBuilder, Handler, Limits, SessionConfig, Status,
};

use crate::runtime::{self, Runtime};

/// The longest any one measurement may take before the bench gives up.
const MEASUREMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Buffer sizes shared by the adapters (their default read buffer) and the baselines.
const READ_BUFFER_LEN: usize = 256 * 1024;

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
    /// Interleaved rounds; the median is reported.
    pub rounds: usize,
    /// The adapters to measure.
    pub runtimes: Vec<Runtime>,
}

/// One adapter's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterFigures {
    /// The adapter.
    pub runtime: Runtime,
    /// Large-file throughput, GiB/s.
    pub large_gib_s: f64,
    /// Small frames per second, fed through a [`tej_core::BufferedSender`].
    pub small_fps: f64,
    /// Small frames per second with one `Sender::send_blocking` per frame.
    pub small_send_fps: f64,
    /// Round trips per second.
    pub rtt_per_s: f64,
}

/// The baselines' figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineFigures {
    /// Plain TCP moving the large file's bytes, GiB/s.
    pub large_gib_s: f64,
    /// Minimal length-prefixed frames per second.
    pub small_fps: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The baselines.
    pub baseline: BaselineFigures,
    /// Each adapter, in the order measured.
    pub adapters: Vec<AdapterFigures>,
}

impl BenchReport {
    /// A readable table with each adapter's ratio to its baseline.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "workload            large file GiB/s  ratio   small frames/s  ratio   send_blocking/s  ratio   round trips/s\n",
        );
        out.push_str(&format!(
            "baseline            {:>16.2}  {:>5}   {:>14.0}  {:>5}   {:>15}  {:>5}   {:>13}\n",
            self.baseline.large_gib_s, "1.00", self.baseline.small_fps, "1.00", "-", "-", "-"
        ));
        for adapter in &self.adapters {
            out.push_str(&format!(
                "{:<19} {:>16.2}  {:>5.2}   {:>14.0}  {:>5.2}   {:>15.0}  {:>5.2}   {:>13.0}\n",
                adapter.runtime.name(),
                adapter.large_gib_s,
                adapter.large_gib_s / self.baseline.large_gib_s,
                adapter.small_fps,
                adapter.small_fps / self.baseline.small_fps,
                adapter.small_send_fps,
                adapter.small_send_fps / self.baseline.small_fps,
                adapter.rtt_per_s
            ));
        }
        out
    }

    /// The report as one JSON object.
    pub fn json(&self, python: Option<&BaselineFigures>) -> serde_json::Value {
        let adapters: serde_json::Map<String, serde_json::Value> = self
            .adapters
            .iter()
            .map(|adapter| {
                (
                    adapter.runtime.name().to_string(),
                    serde_json::json!({
                        "large_gib_s": adapter.large_gib_s,
                        "large_ratio": adapter.large_gib_s / self.baseline.large_gib_s,
                        "small_fps": adapter.small_fps,
                        "small_ratio": adapter.small_fps / self.baseline.small_fps,
                        "rtt_per_s": adapter.rtt_per_s,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "baseline": {"large_gib_s": self.baseline.large_gib_s, "small_fps": self.baseline.small_fps},
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
    let payload = Bytes::from(
        (0..options.large_size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    // The baseline writes the same borrowed slice every time; the same for
    // frames is a 'static message (leaked once) that each new frame borrows.
    let message: &'static [u8] = vec![0x5a; options.small_message_len].leak();
    let mut baseline_large = Vec::new();
    let mut baseline_small = Vec::new();
    let mut per_adapter: Vec<Samples> = vec![Samples::default(); options.runtimes.len()];
    for round in 1..=options.rounds {
        progress(&format!("round {round}/{}: baseline", options.rounds));
        baseline_large.push(gib_per_s(options.large_size, plain_tcp_large(&payload)?));
        baseline_small.push(per_s(
            options.small_count,
            length_prefixed_small(options.small_count, message)?,
        ));
        for (runtime, samples) in options.runtimes.iter().zip(&mut per_adapter) {
            progress(&format!("round {round}/{}: {runtime}", options.rounds));
            samples.large.push(gib_per_s(
                options.large_size,
                tej_large(*runtime, &payload)?,
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
        }
    }
    Ok(BenchReport {
        baseline: BaselineFigures {
            large_gib_s: median(baseline_large),
            small_fps: median(baseline_small),
        },
        adapters: options
            .runtimes
            .iter()
            .zip(per_adapter)
            .map(|(runtime, samples)| AdapterFigures {
                runtime: *runtime,
                large_gib_s: median(samples.large),
                small_fps: median(samples.small),
                small_send_fps: median(samples.small_send),
                rtt_per_s: median(samples.rtt),
            })
            .collect(),
    })
}

/// One adapter's measurements, one per round.
#[derive(Debug, Clone, Default)]
struct Samples {
    large: Vec<f64>,
    small: Vec<f64>,
    small_send: Vec<f64>,
    rtt: Vec<f64>,
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

fn wait(done: &Receiver<()>, what: &str) -> io::Result<()> {
    done.recv_timeout(MEASUREMENT_TIMEOUT)
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} did not finish")))
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

/// Answers every frame with an empty frame.
struct Responder;

impl Handler for Responder {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let _ = conn.send(Frame::new(Status::DEFAULT));
    }
}

/// Sends a request on connect and on every reply until `left` runs out.
struct Requester {
    left: u64,
    done: SyncSender<()>,
}

impl Handler for Requester {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn.send(Frame::message("request"));
    }

    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.send(());
        } else {
            let _ = conn.send(Frame::message("request"));
        }
    }
}

struct Quiet;
impl Handler for Quiet {}

fn tej_large(runtime: Runtime, payload: &Bytes) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let server = runtime::start_server(runtime, loopback(), unbounded_config(), move || Counter {
        expected: 1,
        frames: 0,
        done: done_tx.clone(),
    })?;
    let client = runtime::connect(runtime, server.addr(), Quiet, unbounded_config())?;
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

fn tej_round_trips(runtime: Runtime, count: u64) -> io::Result<Duration> {
    let server =
        runtime::start_server(runtime, loopback(), SessionConfig::default(), || Responder)?;
    let (done_tx, done) = mpsc::sync_channel(1);
    let started = Instant::now();
    let client = runtime::connect(
        runtime,
        server.addr(),
        Requester {
            left: count,
            done: done_tx,
        },
        SessionConfig::default(),
    )?;
    wait(&done, "the round trips")?;
    let took = started.elapsed();
    client.close()?;
    server.stop();
    Ok(took)
}

/// Plain TCP: one `write_all` of the buffer; the receiver reads it in
/// `READ_BUFFER_LEN` pieces and drops them.
fn plain_tcp_large(payload: &Bytes) -> io::Result<Duration> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let expected = payload.len() as u64;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; READ_BUFFER_LEN];
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
    stream.write_all(payload)?;
    let received = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))??;
    let took = started.elapsed();
    if received != expected {
        return Err(io::Error::other("plain TCP lost bytes"));
    }
    Ok(took)
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
    let script = std::env::temp_dir().join(format!("tej-python-bench-{}.py", std::process::id()));
    std::fs::write(&script, PYTHON_BENCH)?;
    let mut large = Vec::new();
    let mut small = Vec::new();
    for _ in 0..options.rounds {
        let took = python_run(
            python,
            &script,
            1,
            &["--large", &options.large_size.to_string()],
        )?;
        large.push(gib_per_s(options.large_size, took));
        let took = python_run(
            python,
            &script,
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
    let _ = std::fs::remove_file(&script);
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
