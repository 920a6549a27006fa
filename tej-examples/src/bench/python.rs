//! The reference implementation (tej-protoc 0.2.4, Python) on the
//! large-file and small-frame workloads, for `tej bench --python`: its
//! interpreter found, its script run as server and client.

use std::io::{self, BufRead};
use std::time::Duration;

use super::harness::{gib_per_s, median, per_s};
use super::report::BaselineFigures;
use super::rounds::BenchOptions;

/// The reference implementation's bench script, written out when needed.
const PYTHON_BENCH: &str = include_str!("../../bench/python_bench.py");

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
    let script = tempfile::Builder::new()
        .prefix("tej-python-bench-")
        .suffix(".py")
        .tempfile()?;
    std::fs::write(script.path(), PYTHON_BENCH)?;
    let mut large = Vec::new();
    let mut small = Vec::new();
    for _ in 0..options.rounds {
        let took = python_run(
            python,
            script.path(),
            1,
            &["--large", &options.large_size.to_string()],
        )?;
        large.push(gib_per_s(options.large_size, took));
        let took = python_run(
            python,
            script.path(),
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
