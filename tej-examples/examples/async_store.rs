//! A store that awaits: every incoming file is written under a directory
//! through an async writer held to a rate, each frame answered once its
//! files are stored. No `Handler`, no whole file in memory: the connection's
//! frames are a `Stream`, its files `AsyncRead`s, and while the writer is
//! slow the session reads nothing, so the sender waits in TCP.
//!
//! ```text
//! cargo run --release -p tej-examples --example async_store -- \
//!     --runtime tokio|async-std|smol --bind 127.0.0.1:0 --dir /tmp/store --rate 32M
//! ```
//!
//! Prints `{"event":"listening","addr":"HOST:PORT"}` first; then, per frame,
//! `{"event":"stored","files":[{"name":…,"size":…,"sha256":…}]}`, the same
//! object being the message of the status-0 reply on that connection.
//! SIGTERM or Ctrl-C stops accepting and ends the connections gracefully.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use futures_lite::{AsyncWriteExt, StreamExt};
use sha2::{Digest, Sha256};
use smol::{Timer, Unblock};
use tej_core::Frame;
use tej_net::runtime::{PollIo, Resolve, Runtime};
use tej_net::{AsyncConnection, IncomingFrame, Listener, ShutdownHandle};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeName {
    Tokio,
    AsyncStd,
    Smol,
}

/// Stores every incoming file under a directory at a given rate.
#[derive(Debug, Parser)]
struct Args {
    /// The async runtime to serve on.
    #[arg(long, value_enum)]
    runtime: RuntimeName,
    /// The address to listen on (port 0 picks one).
    #[arg(long)]
    bind: SocketAddr,
    /// Where files are stored (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per second each connection's writer keeps to (K, M, G suffixes).
    #[arg(long, value_parser = tej_examples::cli::parse_size)]
    rate: u64,
}

fn main() {
    let args = Args::parse();
    if let Err(error) = run(args) {
        eprintln!("async_store: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.rate == 0 {
        bail!("--rate must be at least 1 byte per second");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let store = Arc::new(Store {
        dir: args.dir.clone(),
        rate: args.rate,
    });
    match args.runtime {
        RuntimeName::Tokio => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve::<tej_tokio::Tokio>(args.bind, store)),
        RuntimeName::AsyncStd => {
            async_std::task::block_on(serve::<tej_async_std::AsyncStd>(args.bind, store))
        }
        RuntimeName::Smol => smol::block_on(serve::<tej_async_std::Smol>(args.bind, store)),
    }
}

/// Serves `store` at `bind` on async runtime `R` until shut down: the
/// server is tej-net's, the same type on every async runtime.
async fn serve<R>(bind: SocketAddr, store: Arc<Store>) -> anyhow::Result<()>
where
    R: Runtime + Resolve<SocketAddr> + PollIo<<R::TcpListener as Listener<R>>::Io>,
{
    let server = tej_net::Server::<R>::bind(bind).await?;
    listening(server.local_addr()?, server.shutdown_handle())?;
    server
        .serve_connections(move |conn| store.clone().serve(conn))
        .await;
    Ok(())
}

/// Says where it listens, and stops on SIGTERM or Ctrl-C.
fn listening(addr: SocketAddr, shutdown: ShutdownHandle) -> anyhow::Result<()> {
    print_line(&format!(
        r#"{{"event":"listening","addr":{}}}"#,
        json_string(&addr.to_string())
    ));
    ctrlc::set_handler(move || shutdown.shutdown()).context("cannot handle SIGTERM")?;
    Ok(())
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `text` as a JSON string. The lines are written by hand so that their
/// keys come in the documented order.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// One stored file, as the `stored` line lists it.
struct Stored {
    name: String,
    size: u64,
    sha256: String,
}

/// The `stored` line and reply for a frame's files.
fn stored_line(files: &[Stored]) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|file| {
            format!(
                r#"{{"name":{},"size":{},"sha256":"{}"}}"#,
                json_string(&file.name),
                file.size,
                file.sha256
            )
        })
        .collect();
    format!(r#"{{"event":"stored","files":[{}]}}"#, files.join(","))
}

struct Store {
    dir: PathBuf,
    rate: u64,
}

impl Store {
    /// Serves one connection: each frame's files stored, then answered.
    async fn serve(self: Arc<Self>, mut conn: AsyncConnection) {
        while let Some(frame) = conn.next().await {
            let Ok(frame) = frame else {
                // The connection broke; its reason is the session's to log.
                return;
            };
            match self.store(frame).await {
                Ok(stored) => {
                    print_line(&stored);
                    let reply = Frame::message(stored);
                    if conn.sender().send(reply).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    eprintln!("async_store: a frame was not stored: {error}");
                    return;
                }
            }
        }
    }

    /// Writes a frame's files under the directory; what the reply says of them.
    async fn store(&self, mut frame: IncomingFrame) -> std::io::Result<String> {
        let mut files = Vec::new();
        while let Some(mut file) = frame.next_file().await? {
            let path = unique_path(&self.dir, &tej_net::spool::sanitize_file_name(file.name()));
            let mut writer = Paced::new(Unblock::new(std::fs::File::create(&path)?), self.rate);
            let mut hash = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = file.read_chunk().await? {
                hash.update(&chunk);
                size += chunk.len() as u64;
                writer.write_all(&chunk).await?;
            }
            writer.finish().await?;
            files.push(Stored {
                name: file.name().to_owned(),
                size,
                sha256: hex::encode(hash.finalize()),
            });
        }
        let _message = frame.message().await?;
        Ok(stored_line(&files))
    }
}

/// `dir/name`, or `dir/name.N` for the first N free: two files of one name
/// never overwrite each other.
fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    if !path.exists() {
        return path;
    }
    (1u64..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|path| !path.exists())
        .unwrap_or(path)
}

/// An async file writer that keeps to `rate` bytes per second on average,
/// sleeping on a runtime-independent timer (async-io's) when ahead.
struct Paced {
    file: Unblock<std::fs::File>,
    rate: u64,
    start: Instant,
    written: u64,
}

impl Paced {
    fn new(file: Unblock<std::fs::File>, rate: u64) -> Paced {
        Paced {
            file,
            rate,
            start: Instant::now(),
            written: 0,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // In pieces of a tenth of a second's worth, so that the pace is even.
        let piece = (self.rate / 10).clamp(1, 1 << 20) as usize;
        for part in bytes.chunks(piece) {
            self.file.write_all(part).await?;
            self.written += part.len() as u64;
            let due = Duration::from_secs_f64(self.written as f64 / self.rate as f64);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                Timer::after(wait).await;
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        self.file.close().await
    }
}
