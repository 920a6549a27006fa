//! `tej demo`: its arguments and how the binary runs it. The demo itself
//! (servers, clients, files, hashes) is [`crate::demo`]; this file only
//! turns the command line into [`DemoOptions`] and the outcome into an exit
//! code.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{self, DemoOptions};
use crate::runtime::Runtime;

/// `tej demo`: a server and a client on loopback, every byte checked.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Run on this runtime only (default: each in turn).
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// Size of the large file, in MiB.
    #[arg(long, default_value_t = 256)]
    pub large_file_mib: u64,
    /// Where to put the demo's files (default: the system's temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

impl DemoArgs {
    /// The demo's options: the runtimes (all unless one is chosen), the
    /// large file's size and the work directory.
    pub fn options(&self) -> DemoOptions {
        DemoOptions {
            runtimes: self
                .runtime
                .map_or_else(|| Runtime::ALL.to_vec(), |runtime| vec![runtime]),
            large_file_mib: self.large_file_mib,
            work_dir: self.work_dir.clone().unwrap_or_else(std::env::temp_dir),
        }
    }
}

/// `tej demo` as the binary runs it: the report on stdout, the failure on
/// stderr.
pub fn exec(args: &DemoArgs) -> ExitCode {
    match demo::run(&args.options(), &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tej demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}
