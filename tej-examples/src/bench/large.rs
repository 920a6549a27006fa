//! The large-file workload: one file from memory to a receiver that
//! discards it, on an adapter (plain or over TLS) and on plain TCP with
//! each write/read size of [`LARGE_SWEEP`], the best of which is the
//! baseline.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tej_core::{FrameBuilder, Status};

use super::harness::{joined, loopback, timed_send, unbounded_config, Counter, Quiet};
use super::tls::BenchTls;
use crate::runtime::{self, Runtime};

/// The write and read sizes plain TCP is measured with; the best is the
/// large-file baseline.
pub const LARGE_SWEEP: &[usize] = &[256 * 1024, 1024 * 1024, 4 * 1024 * 1024];

/// One large file from memory to a discarding receiver, over TLS with
/// `tls`; timed until the server's handler has the frame.
pub(super) fn tej_large(
    runtime: Runtime,
    payload: &Bytes,
    tls: Option<&BenchTls>,
) -> io::Result<Duration> {
    let (done_tx, done) = mpsc::sync_channel(1);
    let options = runtime::ServerOptions {
        tls: tls.map(|tls| Arc::clone(&tls.server)),
        ..runtime::ServerOptions::default()
    };
    let server = runtime::start_server_with(
        runtime,
        loopback(),
        unbounded_config(),
        options,
        move || Counter::new(1, done_tx.clone()),
    )?;
    let client = runtime::connect_with(
        runtime,
        server.endpoint(),
        tls.map(|tls| &tls.client),
        Quiet,
        unbounded_config(),
    )?;
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("large.bin", payload.clone())
        .build();
    let ((), took) = timed_send(&client.sender(), frame, &done, "the large file")?;
    client.close()?;
    server.stop();
    Ok(took)
}

/// Plain TCP: the payload written in `chunk`-byte `write_all`s; the
/// receiver reads it in `chunk`-byte pieces and drops them.
pub(super) fn plain_tcp_large(payload: &Bytes, chunk: usize) -> io::Result<Duration> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let expected = payload.len() as u64;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; chunk];
        let mut total = 0u64;
        while total < expected {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            total += read as u64;
        }
        Ok(total)
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    for piece in payload.chunks(chunk) {
        stream.write_all(piece)?;
    }
    let received = joined(receiver, "the receiver")?;
    let took = started.elapsed();
    if received != expected {
        return Err(io::Error::other("plain TCP lost bytes"));
    }
    Ok(took)
}
