//! `tej`: send files and messages over TEJ from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tej_examples::bench::{self, BenchOptions};
use tej_examples::cli::{self, send::SendArgs, serve::ServeArgs};
use tej_examples::demo::{self, DemoOptions};
use tej_examples::runtime::Runtime;

/// Send files and messages over the TEJ protocol.
#[derive(Debug, Parser)]
#[command(name = "tej", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a server and a client on loopback, exchange a message, a ping
    /// and files (one large, streamed from disk), verify every byte by hash.
    Demo {
        /// Run on this runtime only (default: each in turn).
        #[arg(long, value_enum)]
        runtime: Option<Runtime>,
        /// Size of the large file, in MiB.
        #[arg(long, default_value_t = 256)]
        large_file_mib: u64,
        /// Where to put the demo's files (default: the system's temporary directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Accept connections and print every frame received; save files to
    /// --save-dir (streamed to disk) or hash and discard them. Runs until
    /// Ctrl-C, then finishes the frames in progress and exits.
    Serve(ServeArgs),
    /// Connect, send files (streamed from disk) and a message, print the
    /// replies and a summary; exits non-zero on any failure.
    Send(SendArgs),
    /// Measure every adapter on loopback against baselines run in the same
    /// process: one large file against plain TCP, many small frames against
    /// a minimal length-prefixed protocol, and round trips.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Size of the large file (e.g. 1G, 256M).
    #[arg(long, default_value = "1G", value_parser = cli::parse_size)]
    size: u64,
    /// Number of small frames.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Message size of each small frame, in bytes.
    #[arg(long, default_value_t = 64)]
    msg_size: usize,
    /// Number of request/response round trips.
    #[arg(long, default_value_t = 20_000)]
    round_trips: u64,
    /// Size of the file sent from disk to disk (default: --size).
    #[arg(long, value_parser = cli::parse_size)]
    disk_size: Option<u64>,
    /// Connections in the connection burst (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Interleaved rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure this runtime only (default: all).
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
    /// Where the disk-to-disk workload writes its files (default: the
    /// system's temporary directory). Its figures are the file system's as
    /// much as ours: a tmpfs such as /dev/shm shows the copying alone.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also measure the reference implementation (tej-protoc 0.2.4) when
    /// its Python package is installed.
    #[arg(long)]
    python: bool,
    /// The Python interpreter that has tej-protoc (default: the interop
    /// tests' virtualenv, then python3).
    #[arg(long, requires = "python")]
    python_bin: Option<PathBuf>,
    /// Print one JSON object and nothing else on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Send(args) => send(&args),
        Command::Bench(args) => bench(&args),
        Command::Demo {
            runtime,
            large_file_mib,
            work_dir,
        } => {
            let options = DemoOptions {
                runtimes: runtime.map_or_else(|| Runtime::ALL.to_vec(), |runtime| vec![runtime]),
                large_file_mib,
                work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
            };
            match demo::run(&options, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("tej demo failed: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn bench(args: &BenchArgs) -> ExitCode {
    let options = BenchOptions {
        large_size: args.size,
        small_count: args.count,
        small_message_len: args.msg_size,
        round_trips: args.round_trips.max(1),
        disk_size: args.disk_size.unwrap_or(args.size),
        burst_connections: args.burst,
        rounds: args.rounds.max(1),
        runtimes: args
            .runtime
            .map_or_else(|| Runtime::ALL.to_vec(), |runtime| vec![runtime]),
        work_dir: args.work_dir.clone(),
    };
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

fn serve(args: &ServeArgs) -> ExitCode {
    cli::init_logging(tracing::Level::INFO);
    let (stop, stopped) = std::sync::mpsc::channel();
    let signals = std::sync::atomic::AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || {
        if signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            eprintln!("tej serve: stopping (Ctrl-C again to stop at once)");
            let _ = stop.send(());
        } else {
            std::process::exit(130);
        }
    });
    if let Err(error) = installed {
        eprintln!("tej serve: cannot handle Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    match cli::serve::run(args, &stopped) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tej serve: {reason:#}");
            ExitCode::FAILURE
        }
    }
}

fn send(args: &SendArgs) -> ExitCode {
    cli::init_logging(tracing::Level::WARN);
    match cli::send::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tej send: {reason:#}");
            // `--timeout` may leave the sending thread blocked: do not wait for it.
            std::process::exit(1);
        }
    }
}
