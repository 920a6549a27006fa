//! The spool latency measurement (`--example spool_latency`), bounded: two
//! small uploads instead of 1 GiB ones, so that it runs on every CI pass.

use std::time::Duration;

use tej_examples::spool_latency::{run, upload_data, Latency, Options, Target};

fn smoke(target: Target) {
    let options = Options {
        upload_len: 16 << 20,
        idle_time: Duration::from_millis(200),
        target,
        ..Options::default()
    };
    let data = upload_data(options.upload_len);
    let report = run(&options, &data).unwrap();
    assert_eq!(report.uploaded, 2 * (16 << 20));
    assert!(report.idle.samples > 10, "{:?}", report.idle);
    assert!(report.loaded.samples > 0, "{:?}", report.loaded);
    for latency in [report.idle, report.loaded] {
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    }
    let median = Latency::median(&[report.idle, report.loaded, report.idle]);
    assert_eq!(median, report.idle);
}

#[test]
fn uploads_spooled_by_the_connection_task() {
    smoke(Target::SpoolDir);
}

#[test]
fn uploads_written_by_writer_threads() {
    smoke(Target::WriterThread);
}
