//! `tej bench` end to end, on workloads small enough for a debug build: the
//! JSON object and the table have every figure, each adapter's ratios are
//! its figures over the baseline's, and stdout holds nothing else.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The most one bench run may take.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `tej bench` with small workloads and `extra`; returns its stdout.
fn bench(extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tej"))
        .args([
            "bench",
            "--size",
            "4M",
            "--count",
            "20000",
            "--round-trips",
            "50",
            "--rounds",
            "1",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tej runs");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tej bench {extra:?} did not finish in {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "tej bench {extra:?}: {status}\n{stdout}");
    stdout
}

fn positive(value: &Value, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(
        number.is_finite() && number > 0.0,
        "{what} = {number}, expected a positive figure"
    );
    number
}

fn assert_ratio(ratio: &Value, figure: f64, baseline: f64, what: &str) {
    let ratio = positive(ratio, what);
    assert!(
        (ratio - figure / baseline).abs() <= 1e-9 * ratio,
        "{what} = {ratio}, but the figure over the baseline is {}",
        figure / baseline
    );
}

#[test]
fn json_has_every_figure_and_nothing_else_on_stdout() {
    let stdout = bench(&["--json"]);
    let report: Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    let baseline_large = positive(&report["baseline"]["large_gib_s"], "baseline.large_gib_s");
    let baseline_small = positive(&report["baseline"]["small_fps"], "baseline.small_fps");
    let adapters = report["adapters"]
        .as_object()
        .expect("adapters is an object");
    let names: Vec<&str> = adapters.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["tokio", "async-std", "mio"] {
        let adapter = &adapters[name];
        let keys: Vec<&str> = adapter
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            5,
            "{name}: {keys:?}, expected the five figures of the issue"
        );
        let large = positive(&adapter["large_gib_s"], "large_gib_s");
        let small = positive(&adapter["small_fps"], "small_fps");
        positive(&adapter["rtt_per_s"], "rtt_per_s");
        assert_ratio(
            &adapter["large_ratio"],
            large,
            baseline_large,
            "large_ratio",
        );
        assert_ratio(
            &adapter["small_ratio"],
            small,
            baseline_small,
            "small_ratio",
        );
    }
    assert!(report["python"].is_null(), "no --python, no python figures");
}

#[test]
fn the_table_has_a_row_per_measured_adapter() {
    let stdout = bench(&["--runtime", "mio"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "header, baseline, mio:\n{stdout}");
    for column in [
        "large file GiB/s",
        "small frames/s",
        "send_blocking/s",
        "round trips/s",
    ] {
        assert!(lines[0].contains(column), "no {column:?} in {:?}", lines[0]);
    }
    assert!(lines[1].starts_with("baseline"));
    let mio: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(mio[0], "mio");
    let figures: Vec<f64> = mio[1..]
        .iter()
        .map(|figure| figure.parse().expect("a number"))
        .collect();
    assert_eq!(figures.len(), 7, "{mio:?}");
    assert!(figures.iter().all(|figure| *figure > 0.0), "{mio:?}");
}
