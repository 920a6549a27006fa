//! The harness of the suites built with `harness = false` (the matrix
//! suites `conformance.rs` and `faults.rs`; `hostile.rs`, `async_api.rs`):
//! libtest's command line and output, through libtest-mimic, with more
//! threads than cores by default.
//!
//! Their cases mostly wait (idle timeouts, stalled peers, handshakes cut,
//! lingering closes): libtest's one thread per core left a 2-core machine
//! idle most of the time they ran. `--test-threads` and `RUST_TEST_THREADS`
//! still decide when given. Nothing is captured: a case's own report lines
//! are printed only with `--nocapture` ([`report!`](crate::report!)).

use std::process::ExitCode;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Trial};

use crate::matrix::Case;

/// Threads per core for the matrix suites when neither `--test-threads`
/// nor `RUST_TEST_THREADS` says how many.
pub const MATRIX_THREADS_PER_CORE: usize = 4;

/// A test: its name and what it runs.
pub type Test = (String, Box<dyn FnOnce() + Send>);

static SHOW_OUTPUT: OnceLock<bool> = OnceLock::new();

/// Whether the suite runs with `--nocapture` (or outside this harness).
pub fn show_output() -> bool {
    SHOW_OUTPUT.get().copied().unwrap_or(true)
}

/// `eprintln!` when the suite runs with `--nocapture`: this harness
/// captures nothing, so a case's report lines are printed only then.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {
        if $crate::harness::show_output() {
            eprintln!($($arg)*);
        }
    };
}

/// The functions named, as [`Test`]s named `prefix::function`.
#[macro_export]
macro_rules! tests {
    ($prefix:expr; $($test:ident),* $(,)?) => {
        vec![$((
            format!("{}::{}", $prefix, stringify!($test)),
            Box::new($test) as Box<dyn FnOnce() + Send>,
        )),*]
    };
}

/// Runs every case of every group as a test named `group::setup::scenario`
/// (`setup::scenario` in the group `""`) and says how it went in the exit
/// code.
pub fn run(groups: Vec<(&'static str, Vec<Case>)>) -> ExitCode {
    let tests = groups
        .into_iter()
        .flat_map(|(group, cases)| {
            cases.into_iter().map(move |case| {
                let name = match group {
                    "" => case.name.to_owned(),
                    group => format!("{group}::{}", case.name),
                };
                let run: Box<dyn FnOnce() + Send> = Box::new(move || (case.run)(case.setup));
                (name, run)
            })
        })
        .collect();
    run_tests(tests, MATRIX_THREADS_PER_CORE)
}

/// Runs `tests`, `threads_per_core` at a time per core unless the command
/// line or `RUST_TEST_THREADS` says otherwise, and says how it went in the
/// exit code.
pub fn run_tests(tests: Vec<Test>, threads_per_core: usize) -> ExitCode {
    let mut args = Arguments::from_args();
    let _ = SHOW_OUTPUT.set(args.nocapture);
    args.test_threads = args.test_threads.or_else(threads_from_env).or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Some(cores * threads_per_core)
    });
    let trials = tests
        .into_iter()
        .map(|(name, run)| {
            Trial::test(name, move || {
                run();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn threads_from_env() -> Option<usize> {
    std::env::var("RUST_TEST_THREADS").ok()?.parse().ok()
}
