//! One large file over loopback through tej-tokio, next to plain TCP moving
//! the same bytes in the same process, interleaved.
//!
//! `cargo run --release -p tej-tokio --example large_file_throughput -- [MiB] [rounds]`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_tokio::{
    Client, Connection, FileTarget, Frame, FrameBuilder, Handler, Limits, Server, SessionConfig,
    Status,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Counts what arrives without keeping it.
struct Discard(mpsc::Sender<u64>);

impl Handler for Discard {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let _ = self.0.send(frame.files.iter().map(|file| file.len()).sum());
    }
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Discard
    }
}

struct Quiet;
impl Handler for Quiet {}

async fn tej_round(payload: &Bytes) -> Duration {
    let config = SessionConfig::default().limits(
        Limits::DEFAULT
            .max_file_size(u64::MAX)
            .max_frame_size(u64::MAX),
    );
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_config(config);
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let (done_tx, done) = mpsc::channel();
    let serving = tokio::spawn(server.serve(move || Discard(done_tx.clone())));
    let client = Client::connect(addr, Quiet).await.unwrap();
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("large.bin", payload.clone())
        .build();
    let started = Instant::now();
    client.sender().send(frame).await.unwrap();
    let received = tokio::task::spawn_blocking(move || done.recv().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(received, payload.len() as u64);
    client.close();
    client.join().await.unwrap();
    shutdown.shutdown();
    serving.await.unwrap();
    took
}

/// Plain TCP: `write_all` of the buffer; the receiver copies to a sink.
async fn tcp_round(payload: &Bytes, read_buffer: Option<usize>) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiving = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        match read_buffer {
            Some(capacity) => {
                let mut reader = BufReader::with_capacity(capacity, stream);
                tokio::io::copy_buf(&mut reader, &mut tokio::io::sink())
                    .await
                    .unwrap()
            }
            None => {
                let mut stream = stream;
                tokio::io::copy(&mut stream, &mut tokio::io::sink())
                    .await
                    .unwrap()
            }
        }
    });
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let started = Instant::now();
    stream.write_all(payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let received = receiving.await.unwrap();
    assert_eq!(received, payload.len() as u64);
    started.elapsed()
}

fn gib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(1024);
    let rounds: usize = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(5);
    let payload = Bytes::from((0..mib << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let (mut tej, mut copy, mut tuned) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        tej.push(gib_per_s(payload.len(), tej_round(&payload).await));
        copy.push(gib_per_s(payload.len(), tcp_round(&payload, None).await));
        tuned.push(gib_per_s(
            payload.len(),
            tcp_round(&payload, Some(256 * 1024)).await,
        ));
    }
    let (tej, copy, tuned) = (median(tej), median(copy), median(tuned));
    println!("{mib} MiB over loopback, median of {rounds} interleaved rounds:");
    println!("  tej-tokio (file from memory, receiver discards): {tej:.2} GiB/s");
    println!(
        "  tokio::io::copy to a sink (8 KiB reads):         {copy:.2} GiB/s  ratio tej/copy {:.2}",
        tej / copy
    );
    println!(
        "  plain TCP, 256 KiB reads (same as tej-tokio):    {tuned:.2} GiB/s  ratio tej/tcp  {:.2}",
        tej / tuned
    );
}
