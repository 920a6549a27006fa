//! `tej bench`: its arguments and how the binary runs it. The measurements
//! are [`crate::bench`]; this file turns the command line into
//! [`BenchOptions`], adds the reference implementation when `--python`
//! asks for it, and prints the table or (`--json`) one JSON object.

use std::path::PathBuf;
use std::process::ExitCode;

use super::parse_size;
use crate::bench::{self, BenchOptions};
use crate::runtime::Runtime;

/// `tej bench`: every adapter against baselines run in the same process.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Size of the large file (e.g. 1G, 256M).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub size: u64,
    /// Number of small frames.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Message size of each small frame, in bytes.
    #[arg(long, default_value_t = 64)]
    pub msg_size: usize,
    /// Number of request/response round trips.
    #[arg(long, default_value_t = 20_000)]
    pub round_trips: u64,
    /// Size of the file sent from disk to disk (default: --size).
    #[arg(long, value_parser = parse_size)]
    pub disk_size: Option<u64>,
    /// Connections in the connection burst (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub burst: usize,
    /// Interleaved rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Measure this runtime only (default: all).
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// Where the disk-to-disk workload writes its files (default: the
    /// system's temporary directory). Its figures are the file system's as
    /// much as ours: a tmpfs such as /dev/shm shows the copying alone.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also measure the reference implementation (tej-protoc 0.2.4) when
    /// its Python package is installed.
    #[arg(long)]
    pub python: bool,
    /// The Python interpreter that has tej-protoc (default: the interop
    /// tests' virtualenv, then python3).
    #[arg(long, requires = "python")]
    pub python_bin: Option<PathBuf>,
    /// Print one JSON object and nothing else on stdout.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The bench's options: each workload's size, at least one round trip
    /// and one round, the disk file as large as the large file unless
    /// given, every runtime unless one is chosen.
    pub fn options(&self) -> BenchOptions {
        BenchOptions {
            large_size: self.size,
            small_count: self.count,
            small_message_len: self.msg_size,
            round_trips: self.round_trips.max(1),
            disk_size: self.disk_size.unwrap_or(self.size),
            burst_connections: self.burst,
            rounds: self.rounds.max(1),
            runtimes: self
                .runtime
                .map_or_else(|| Runtime::ALL.to_vec(), |runtime| vec![runtime]),
            work_dir: self.work_dir.clone(),
        }
    }
}

/// `tej bench` as the binary runs it: progress on stderr, the report on
/// stdout.
pub fn exec(args: &BenchArgs) -> ExitCode {
    let options = args.options();
    let report = match bench::run(&options, &mut |step| eprintln!("tej bench: {step}")) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("tej bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let python = if args.python {
        match bench::find_reference_python(args.python_bin.as_deref()) {
            Some(python) => {
                eprintln!(
                    "tej bench: the reference implementation ({})",
                    python.display()
                );
                match bench::python_figures(&python, &options) {
                    Ok(figures) => Some(figures),
                    Err(error) => {
                        eprintln!("tej bench: the reference implementation failed: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            None => {
                eprintln!("tej bench: --python: no Python with tej-protoc found; install it with `pip install tej-protoc==0.2.4`");
                None
            }
        }
    } else {
        None
    };
    if args.json {
        println!("{}", report.json(python.as_ref()));
    } else {
        print!("{}", report.table());
        if let Some(python) = &python {
            print!("{}", report.python_row(python));
        }
        print!("{}", report.details());
    }
    ExitCode::SUCCESS
}
