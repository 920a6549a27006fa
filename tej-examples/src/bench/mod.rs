//! `tej bench`: every adapter against baselines measured in the same run.
//!
//! Workloads, each on loopback, each against the plain thing at its best:
//! - one large file from memory, the receiver discarding it (GiB/s), against
//!   plain TCP moving the same bytes: a sweep of write and read sizes
//!   ([`LARGE_SWEEP`]), the best of which is the baseline;
//! - many small frames in one direction through the callback API (frames/s),
//!   fed through a `BufferedSender` as the baseline writes through a
//!   `BufWriter`, against a minimal length-prefixed writer and reader with
//!   buffered I/O; and the same frames with one `send_blocking` each. Beside
//!   it, the same loop with its writer split across two threads, as a
//!   `Sender`'s frames are made on one thread and written on another: the
//!   ceilings of that shape in plain Rust ([`CROSS_THREAD_SWEEP`]);
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
//!   of `testdata/tls` built into the binary), against plain rustls copies
//!   of the same bytes with the same configurations (tokio-rustls and
//!   futures-rustls, the best of which is the baseline): the cipher's speed
//!   on this machine.
//!
//! A peer runs beside them on the large-file, small-frame and round-trip
//! workloads: tokio-util's `Framed<TcpStream, LengthDelimitedCodec>`, what
//! a Rust user picks instead of TEJ (`framed`).
//!
//! Where `iperf3` is installed it is run once too, for reference.
//!
//! Rounds are interleaved (baseline, then each adapter, per round) and the
//! median is kept, so that a noisy neighbour hurts every contender alike.
//!
//! One file per workload, each with its adapter run and its plain baseline
//! side by side (`large`, `small` with `small_threads`, `round_trip`, `disk`, `burst`,
//! with `tls` the large file's TLS configurations and plain rustls copies),
//! one per outside peer or reference (`framed`, `iperf3`, `python`),
//! `rounds` running them all and `report` showing the result. Imports go one way: `harness` at the
//! bottom, the workloads above it, then `report`, `rounds`, `python`.

mod burst;
mod disk;
mod framed;
mod harness;
mod iperf3;
mod large;
mod python;
mod report;
mod round_trip;
mod rounds;
mod small;
mod small_threads;
mod tls;

pub use burst::BURSTS_PER_ROUND;
pub use disk::{DiskCopy, DISK_SWEEP};
pub use large::LARGE_SWEEP;
pub use python::{find_reference_python, python_figures};
pub use report::{AdapterFigures, BaselineFigures, BenchReport, PeerFigures, PlainFigures};
pub use round_trip::ROUND_TRIP_FRAME_LEN;
pub use rounds::{run, BenchOptions, SMOL_THREADS};
pub use small_threads::{CrossThread, CROSS_THREAD_SWEEP};
pub use tls::TLS_SWEEP;
