//! A large file sent from disk and spooled to disk over loopback keeps the
//! process's peak RSS bounded, whatever the file's size.
//!
//! The file is 256 MiB by default (`TEJ_LARGE_FILE_MIB` changes it; 4096
//! gives the 4 GiB figure). It is the only test in this binary so that the
//! peak RSS is this transfer's alone.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tej_tokio::{Client, Connection, FileTarget, Frame, FrameBuilder, Handler, Server, Status};

/// The bound the issue sets for receiving a 4 GiB file.
const RSS_CEILING: u64 = 64 << 20;

struct Spooler {
    dir: PathBuf,
    received: Arc<Mutex<Vec<Frame>>>,
}

impl Handler for Spooler {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.received.lock().unwrap().push(frame);
    }

    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        tej_net::spool::to_dir(self.dir.clone())
    }
}

struct Quiet;
impl Handler for Quiet {}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn write_pattern_file(path: &Path, len: u64) {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut left = len;
    let mut round = 0u8;
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        // Vary blocks so a misplaced block would be caught.
        let mut chunk = block[..take].to_vec();
        chunk[0] = round;
        file.write_all(&chunk).unwrap();
        left -= take as u64;
        round = round.wrapping_add(1);
    }
    file.flush().unwrap();
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut left, mut right) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut left).unwrap();
        if n == 0 {
            return b.read(&mut right).unwrap() == 0;
        }
        if b.read_exact(&mut right[..n]).is_err() || left[..n] != right[..n] {
            return false;
        }
    }
}

#[test]
fn spooling_a_large_file_keeps_peak_rss_bounded() {
    let mib: u64 = std::env::var("TEJ_LARGE_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let len = mib << 20;
    let scratch = tempfile::Builder::new()
        .prefix("tej-large-file-")
        .tempdir()
        .unwrap();
    let dir = scratch.path().to_path_buf();
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    let source = dir.join("source.bin");
    write_pattern_file(&source, len);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let rss_before = peak_rss();
    let started = Instant::now();
    runtime.block_on(async {
        let server = Server::bind("127.0.0.1:0").await.unwrap().with_config(
            tej_tokio::SessionConfig::default().limits(
                tej_tokio::Limits::DEFAULT
                    .max_file_size(u64::MAX)
                    .max_frame_size(u64::MAX),
            ),
        );
        let addr = server.local_addr().unwrap();
        let shutdown = server.shutdown_handle();
        let spool = dir.join("spool");
        let serving = tokio::spawn(server.serve({
            let received = received.clone();
            move || Spooler {
                dir: spool.clone(),
                received: received.clone(),
            }
        }));
        let client = Client::connect(addr, Quiet).await.unwrap();
        let frame = FrameBuilder::new(Status::DEFAULT)
            .add_file(tej_net::file::from_path("large.bin", &source).unwrap())
            .message("large")
            .build();
        client.sender().send(frame).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        while received.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the file did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.close();
        client.join().await.unwrap();
        shutdown.shutdown();
        serving.await.unwrap();
    });
    let elapsed = started.elapsed();
    let rss_after = peak_rss();

    let frames = received.lock().unwrap().clone();
    let spooled = frames[0].files[0]
        .path()
        .expect("spooled to disk")
        .to_owned();
    assert_eq!(frames[0].files[0].len(), len);
    assert!(
        same_content(&source, &spooled),
        "spooled bytes differ from the source"
    );
    eprintln!(
        "large file: {mib} MiB in {:.2?} ({:.0} MiB/s); peak RSS before {:.1} MiB, after {:.1} MiB",
        elapsed,
        mib as f64 / elapsed.as_secs_f64(),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert!(
        rss_after < RSS_CEILING,
        "peak RSS {rss_after} bytes exceeds {RSS_CEILING} while moving {len} bytes"
    );
    assert!(rss_after < len / 4, "peak RSS must not grow with the file");
    scratch.close().unwrap();
}
