//! `tej bench` end to end, on workloads small enough for a debug build (a
//! burst of 1,000 connections): the JSON object and the table have every
//! figure, each adapter's ratios are its figures over the baseline's, and
//! stdout holds nothing else.

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
            "--disk-size",
            "4M",
            "--burst",
            "1000",
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

/// `baseline[key]`, figures by name, each checked positive: the names
/// and the best figure.
fn sweep<'a>(baseline: &'a Value, key: &str) -> (Vec<&'a str>, f64) {
    let sweep = baseline[key]
        .as_object()
        .unwrap_or_else(|| panic!("baseline.{key} is not an object: {baseline}"));
    let best = sweep
        .iter()
        .map(|(name, figure)| positive(figure, name))
        .fold(0.0, f64::max);
    (sweep.keys().map(String::as_str).collect(), best)
}

fn assert_ratio(ratio: &Value, figure: f64, baseline: f64, what: &str) {
    let ratio = positive(ratio, what);
    assert!(
        (ratio - figure / baseline).abs() <= 1e-9 * ratio,
        "{what} = {ratio}, but the figure over the baseline is {}",
        figure / baseline
    );
}

/// Every runtime the facade knows, by name.
fn runtime_names() -> Vec<&'static str> {
    tej_examples::runtime::Runtime::ALL
        .iter()
        .map(|runtime| runtime.name())
        .collect()
}

#[test]
fn json_has_every_figure_and_nothing_else_on_stdout() {
    let work = tempfile::tempdir().unwrap();
    let stdout = bench(&["--json", "--work-dir", work.path().to_str().unwrap()]);
    // The disk workload's scratch directory went inside it, and is gone.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    let report: Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    let baseline = &report["baseline"];
    let baseline_large = positive(&baseline["large_gib_s"], "baseline.large_gib_s");
    let baseline_small = positive(&baseline["small_fps"], "baseline.small_fps");
    let baseline_rtt = positive(&baseline["rtt_per_s"], "baseline.rtt_per_s");
    let baseline_disk = positive(&baseline["disk_gib_s"], "baseline.disk_gib_s");
    // The TLS baseline is the best plain rustls copy, each measured.
    let baseline_tls = positive(&baseline["tls_gib_s"], "baseline.tls_gib_s");
    let (tls_names, best_tls) = sweep(baseline, "tls_sweep_gib_s");
    assert_eq!(tls_names, ["futures-rustls", "tokio-rustls"]);
    assert_eq!(
        baseline_tls, best_tls,
        "the TLS baseline is its sweep's best"
    );
    let (disk_hows, best_disk) = sweep(baseline, "disk_sweep_gib_s");
    assert!(disk_hows.contains(&"io_copy"), "{disk_hows:?}");
    // The kernel's own copy (sendfile, splice) is in the sweep where it exists.
    #[cfg(target_os = "linux")]
    assert!(disk_hows.contains(&"sendfile_splice"), "{disk_hows:?}");
    assert_eq!(
        baseline_disk, best_disk,
        "the disk baseline is its sweep's best"
    );
    positive(&baseline["burst_s"], "baseline.burst_s");
    // The small-frame loop across threads: every way measured, and the best
    // batched and the best per-frame way each a ceiling.
    let (ways, _) = sweep(baseline, "cross_thread_sweep_fps");
    assert_eq!(
        ways,
        [
            "batches_1048576",
            "batches_262144",
            "batches_65536",
            "channel_per_frame",
            "lock_per_frame"
        ]
    );
    let threads = &baseline["cross_thread_sweep_fps"];
    let cross_thread_batches = positive(
        &baseline["cross_thread_batches_fps"],
        "baseline.cross_thread_batches_fps",
    );
    assert_eq!(
        cross_thread_batches,
        ["batches_65536", "batches_262144", "batches_1048576"]
            .iter()
            .map(|way| positive(&threads[way], way))
            .fold(0.0, f64::max)
    );
    let cross_thread_per_frame = positive(
        &baseline["cross_thread_per_frame_fps"],
        "baseline.cross_thread_per_frame_fps",
    );
    assert_eq!(
        cross_thread_per_frame,
        positive(&threads["lock_per_frame"], "lock_per_frame")
            .max(positive(&threads["channel_per_frame"], "channel_per_frame"))
    );
    // The large-file baseline is the best of the sweep, which has every size.
    let (sizes, best) = sweep(baseline, "large_sweep_gib_s");
    for size in ["262144", "1048576", "4194304"] {
        assert!(sizes.contains(&size), "no {size} in the sweep {sizes:?}");
    }
    assert_eq!(baseline_large, best, "the baseline is the sweep's best");
    // Absent or a figure, never anything else.
    let iperf3 = &baseline["iperf3_gib_s"];
    if !iperf3.is_null() {
        positive(iperf3, "baseline.iperf3_gib_s");
    }
    assert_eq!(report["burst_connections"], 1000);
    assert!(
        baseline.get("burst_10k_s").is_none(),
        "burst_10k_s only for bursts of 10,000: {baseline}"
    );
    let adapters = report["adapters"]
        .as_object()
        .expect("adapters is an object");
    let names: Vec<&str> = adapters.keys().map(String::as_str).collect();
    assert_eq!(names.len(), runtime_names().len(), "{names:?}");
    for name in runtime_names() {
        let adapter = &adapters[name];
        let mut keys: Vec<&str> = adapter
            .as_object()
            .unwrap_or_else(|| panic!("no figures for {name}"))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "burst_listen_overflows",
                "burst_s",
                "disk_gib_s",
                "disk_ratio",
                "large_gib_s",
                "large_ratio",
                "rtt_per_s",
                "rtt_ratio",
                "small_cross_thread_ratio",
                "small_fps",
                "small_ratio",
                "small_send_cross_thread_ratio",
                "small_send_fps",
                "small_send_ratio",
                "tls_large_gib_s",
                "tls_plain_ratio",
                "tls_ratio",
            ],
            "{name}"
        );
        let large = positive(&adapter["large_gib_s"], "large_gib_s");
        let tls = positive(&adapter["tls_large_gib_s"], "tls_large_gib_s");
        // TLS against the plain rustls copy, and against the same
        // adapter's plain large file.
        assert_ratio(
            &adapter["tls_ratio"],
            tls,
            baseline_tls,
            &format!("{name}.tls_ratio"),
        );
        assert_ratio(
            &adapter["tls_plain_ratio"],
            tls,
            large,
            &format!("{name}.tls_plain_ratio"),
        );
        let small = positive(&adapter["small_fps"], "small_fps");
        let small_send = positive(&adapter["small_send_fps"], "small_send_fps");
        let rtt = positive(&adapter["rtt_per_s"], "rtt_per_s");
        let disk = positive(&adapter["disk_gib_s"], "disk_gib_s");
        positive(&adapter["burst_s"], "burst_s");
        let overflows = &adapter["burst_listen_overflows"];
        assert!(
            overflows.is_null() || overflows.is_u64(),
            "{name}: burst_listen_overflows = {overflows}"
        );
        for (ratio, figure, baseline) in [
            ("large_ratio", large, baseline_large),
            ("small_ratio", small, baseline_small),
            ("small_send_ratio", small_send, baseline_small),
            ("small_cross_thread_ratio", small, cross_thread_batches),
            (
                "small_send_cross_thread_ratio",
                small_send,
                cross_thread_per_frame,
            ),
            ("rtt_ratio", rtt, baseline_rtt),
            ("disk_ratio", disk, baseline_disk),
        ] {
            assert_ratio(
                &adapter[ratio],
                figure,
                baseline,
                &format!("{name}.{ratio}"),
            );
        }
    }
    // The Framed peer: every figure, each ratio to the adapters' baseline.
    let framed = &report["framed"];
    for (ratio, figure, baseline) in [
        ("large_ratio", "large_gib_s", baseline_large),
        ("small_ratio", "small_fps", baseline_small),
        ("rtt_ratio", "rtt_per_s", baseline_rtt),
    ] {
        let figure = positive(&framed[figure], &format!("framed.{figure}"));
        assert_ratio(&framed[ratio], figure, baseline, &format!("framed.{ratio}"));
    }
    assert!(report["python"].is_null(), "no --python, no python figures");
}

#[test]
fn the_table_has_a_row_per_measured_adapter_then_the_details() {
    let stdout = bench(&["--runtime", "mio"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        10,
        "header, baseline, mio, framed, sweep, across threads, rustls, disk sweep, iperf3, burst:\n{stdout}"
    );
    for column in [
        "large file GiB/s",
        "TLS GiB/s",
        "TLS ratio",
        "small frames/s",
        "send_blocking/s",
        "round trips/s",
        "disk GiB/s",
        "burst s",
    ] {
        assert!(lines[0].contains(column), "no {column:?} in {:?}", lines[0]);
    }
    for (line, name, figures) in [
        (lines[1], "baseline", 11),
        (lines[2], "mio", 13),
        (lines[3], "framed (tokio-util)", 6),
    ] {
        let figures_part = line
            .strip_prefix(name)
            .unwrap_or_else(|| panic!("{line:?} is not {name}'s row"));
        let cells: Vec<&str> = figures_part.split_whitespace().collect();
        let numbers: Vec<f64> = cells
            .iter()
            .filter(|cell| **cell != "-")
            .map(|cell| {
                cell.parse()
                    .unwrap_or_else(|_| panic!("{cell:?} in {line}"))
            })
            .collect();
        assert_eq!(numbers.len(), figures, "{line}");
        assert!(numbers.iter().all(|figure| *figure > 0.0), "{line}");
    }
    assert!(
        lines[4].starts_with("plain TCP") && lines[4].contains("1MiB"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("small frames made on one thread")
            && [
                "batches of 64KiB",
                "batches of 256KiB",
                "a lock per frame",
                "a channel message per frame"
            ]
            .iter()
            .all(|way| lines[5].contains(way)),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].starts_with("plain rustls")
            && lines[6].contains("tokio-rustls")
            && lines[6].contains("futures-rustls"),
        "{}",
        lines[6]
    );
    assert!(
        lines[7].starts_with("plain disk") && lines[7].contains("io::copy"),
        "{}",
        lines[7]
    );
    assert!(lines[8].starts_with("iperf3"), "{}", lines[8]);
    assert!(
        lines[9].starts_with("burst: 1000 connections"),
        "{}",
        lines[9]
    );
}
