//! `tej demo` end to end: the binary runs, reports every step and exits 0.

use std::process::Command;

#[test]
fn demo_passes_and_reports_every_step() {
    let scratch = tempfile::Builder::new()
        .prefix("tej-demo-test-")
        .tempdir()
        .unwrap();
    let work_dir = scratch.path();
    let output = Command::new(env!("CARGO_BIN_EXE_tej"))
        .args(["demo", "--large-file-mib", "8", "--work-dir"])
        .arg(work_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "message",
        "ping",
        "3 files",
        "large file",
        "replies",
        "disconnected",
        "all checks passed",
    ] {
        assert!(stdout.contains(step), "no {step:?} in:\n{stdout}");
    }
    assert!(stdout.contains("8 MiB disk to disk, sha256 verified"));
    assert_eq!(
        std::fs::read_dir(work_dir).unwrap().count(),
        0,
        "the demo removes its files"
    );
    scratch.close().unwrap();
}
