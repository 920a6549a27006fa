//! `tej`: send files and messages over TEJ from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tej_examples::demo::{self, DemoOptions};
use tej_examples::runtime::Runtime;

/// Send files and messages over the TEJ protocol.
#[derive(Debug, Parser)]
#[command(name = "tej", version, about)]
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
        #[arg(long)]
        runtime: Option<Runtime>,
        /// Size of the large file, in MiB.
        #[arg(long, default_value_t = 256)]
        large_file_mib: u64,
        /// Where to put the demo's files (default: the system's temporary directory).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
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
