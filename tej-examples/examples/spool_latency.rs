//! What two concurrent 1 GiB uploads, spooled to disk, do to a small-frame
//! client's round-trip latency on the same tej-tokio server.
//!
//! `cargo run --release -p tej-examples --example spool_latency [RUNS] [MiB]`
//!
//! The server runs on a multi-thread Tokio runtime of 2 worker threads (as
//! `tej serve` builds it), spooling files with `tej_net::spool::to_dir`; the
//! small client and the uploaders each run on a current-thread runtime on
//! a thread of their own. Each run measures the small client alone for 3
//! seconds, then during the uploads; the summary is the median of each
//! figure over the runs (3 by default). `SPOOL_LATENCY_TARGET` picks where
//! the server puts the files: `spool-dir` (the default,
//! `tej_net::spool::to_dir`), `writer-thread` (`FileTarget::Writer` with
//! the example's `WriterThread`) or `discard` (no disk, for comparison).
//!
//! Measured on 2 CPUs (medians of 5 runs, p50 / p99 / max): alone
//! 0.06 / 0.3 / 4 ms; during the uploads, `spool-dir`, with tej-tokio
//! running file I/O steps in `block_in_place`, 0.09 / 8.4 / 33 ms (before
//! that: 0.31 / 31.8 / 1690 ms). See the README.

use clap::ValueEnum;
use tej_examples::spool_latency::{run, upload_data, Latency, Options, Target};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(3, |arg| arg.parse().expect("RUNS"));
    let mib: u64 = args.next().map_or(1024, |arg| arg.parse().expect("MiB"));
    let options = Options {
        upload_len: mib << 20,
        target: match std::env::var("SPOOL_LATENCY_TARGET") {
            Ok(name) => Target::from_str(&name, true).expect("spool-dir, writer-thread or discard"),
            Err(_) => Target::SpoolDir,
        },
        ..Options::default()
    };
    println!(
        "{} uploads of {mib} MiB, server runtime: multi-thread, {} workers, target: {:?}; {} CPUs",
        options.uploads,
        options.server_threads,
        options.target,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let data = upload_data(options.upload_len);
    let mut reports = Vec::new();
    for index in 1..=runs {
        let report = run(&options, &data)?;
        println!("run {index}:");
        println!("  without uploads: {}", report.idle);
        println!("  during uploads:  {}", report.loaded);
        println!(
            "  uploads: {:.2} s, {:.0} MiB/s together",
            report.upload_time.as_secs_f64(),
            report.upload_rate() / f64::from(1 << 20)
        );
        reports.push(report);
    }
    let idle: Vec<Latency> = reports.iter().map(|report| report.idle).collect();
    let loaded: Vec<Latency> = reports.iter().map(|report| report.loaded).collect();
    println!("median of {runs} runs:");
    println!("  without uploads: {}", Latency::median(&idle));
    println!("  during uploads:  {}", Latency::median(&loaded));
    Ok(())
}
