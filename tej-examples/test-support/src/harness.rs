//! The harness of the matrix suites (`conformance.rs`, `faults.rs`, built
//! with `harness = false`): libtest's command line and output, through
//! libtest-mimic, with more threads than cores by default.
//!
//! Their cases mostly wait (idle timeouts, stalled peers, handshakes cut,
//! lingering closes): libtest's one thread per core left a 2-core machine
//! idle most of the time they ran. `--test-threads` and `RUST_TEST_THREADS`
//! still decide when given. Nothing is captured: a case's own report lines
//! are printed only with `--nocapture` ([`show_output`]).

use std::process::ExitCode;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Trial};

use crate::matrix::Case;

/// Threads per core when neither `--test-threads` nor `RUST_TEST_THREADS`
/// says how many.
const THREADS_PER_CORE: usize = 4;

static SHOW_OUTPUT: OnceLock<bool> = OnceLock::new();

/// Whether the suite runs with `--nocapture` (or outside [`run`]).
pub fn show_output() -> bool {
    SHOW_OUTPUT.get().copied().unwrap_or(true)
}

/// Runs every case of every group as a test named `group::setup::scenario`
/// (`setup::scenario` in the group `""`) and says how it went in the exit
/// code.
pub fn run(groups: Vec<(&'static str, Vec<Case>)>) -> ExitCode {
    let mut args = Arguments::from_args();
    let _ = SHOW_OUTPUT.set(args.nocapture);
    args.test_threads = args.test_threads.or_else(threads_from_env).or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Some(cores * THREADS_PER_CORE)
    });
    let trials = groups
        .into_iter()
        .flat_map(|(group, cases)| {
            cases.into_iter().map(move |case| {
                let name = match group {
                    "" => case.name.to_owned(),
                    group => format!("{group}::{}", case.name),
                };
                Trial::test(name, move || {
                    (case.run)(case.setup);
                    Ok(())
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn threads_from_env() -> Option<usize> {
    std::env::var("RUST_TEST_THREADS").ok()?.parse().ok()
}
