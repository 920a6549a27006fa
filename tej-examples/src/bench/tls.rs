//! The TLS workload's configurations (rustls with ring and the test
//! certificates of `testdata/tls` built into the binary) and its baseline:
//! plain rustls copies of the large file with the same configurations,
//! over tokio-rustls and futures-rustls, so that an adapter's TLS figure is
//! set against the cipher's speed on this machine (the adapters' sending
//! itself is [`large`](super::large)'s).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::harness::{joined, loopback};

/// The test certificates of `testdata/tls`, built into the binary so that
/// `tej bench` runs from anywhere: a CA and a server certificate for
/// `localhost`/`127.0.0.1` signed by it. For measuring only.
const TLS_CA_PEM: &[u8] = include_bytes!("../../../testdata/tls/ca.pem");
const TLS_SERVER_PEM: &[u8] = include_bytes!("../../../testdata/tls/server.pem");
const TLS_SERVER_KEY: &[u8] = include_bytes!("../../../testdata/tls/server.key");

/// The TLS configurations of the TLS large-file workload: rustls with ring,
/// as `tej serve --tls-*` and `tej send --tls` build them
/// ([`crate::tls`]), from the built-in certificates (written to the
/// bench's scratch directory for those functions to read).
pub(super) struct BenchTls {
    pub(super) server: Arc<rustls::ServerConfig>,
    pub(super) client: crate::tls::ClientTls,
}

impl BenchTls {
    pub(super) fn new(dir: &Path) -> io::Result<BenchTls> {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let ca = tls_dir.join("ca.pem");
        let cert = tls_dir.join("server.pem");
        let key = tls_dir.join("server.key");
        std::fs::write(&ca, TLS_CA_PEM)?;
        std::fs::write(&cert, TLS_SERVER_PEM)?;
        std::fs::write(&key, TLS_SERVER_KEY)?;
        let failed = |error: anyhow::Error| io::Error::other(format!("{error:#}"));
        Ok(BenchTls {
            server: crate::tls::server_config(&cert, &key, None).map_err(failed)?,
            client: crate::tls::ClientTls {
                config: crate::tls::client_config(Some(&ca), None).map_err(failed)?,
                server_name: crate::tls::server_name("localhost").map_err(failed)?,
            },
        })
    }
}

/// The plain rustls copies, in the order measured; the best is the TLS
/// baseline.
pub const TLS_SWEEP: &[&str] = &["tokio-rustls", "futures-rustls"];

/// A plain rustls copy of the large file over tokio-rustls, on a tokio
/// runtime with two workers (as tej-tokio's): the same configurations, the
/// payload handed over in one `write_all` (as the outbox offers a body
/// whole), read into a buffer of the adapters' bulk read size; timed
/// until the receiver has every byte.
pub(super) fn tokio_rustls_large(payload: &Bytes, tls: &BenchTls) -> io::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(loopback()).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.server));
        let expected = payload.len() as u64;
        let receiver = tokio::spawn(async move {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let mut stream = acceptor.accept(stream).await?;
            let mut buffer = vec![0u8; read_len()];
            let mut total = 0u64;
            while total < expected {
                match stream.read(&mut buffer).await? {
                    0 => break,
                    read => total += read as u64,
                }
            }
            io::Result::Ok(total)
        });
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.client.config));
        let mut stream = connector
            .connect(tls.client.server_name.clone(), stream)
            .await?;
        let started = Instant::now();
        stream.write_all(payload).await?;
        stream.flush().await?;
        let received = receiver
            .await
            .map_err(|_| io::Error::other("the tokio-rustls receiver panicked"))??;
        let took = started.elapsed();
        if received != expected {
            return Err(io::Error::other("tokio-rustls lost bytes"));
        }
        Ok(took)
    })
}

/// The same copy over futures-rustls on smol's sockets, each side on its
/// own thread (as the async-std and smol adapters run with two threads).
pub(super) fn futures_rustls_large(payload: &Bytes, tls: &BenchTls) -> io::Result<Duration> {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    let listener = smol::block_on(smol::net::TcpListener::bind(loopback()))?;
    let addr = listener.local_addr()?;
    let acceptor = futures_rustls::TlsAcceptor::from(Arc::clone(&tls.server));
    let expected = payload.len() as u64;
    let receiver = std::thread::spawn(move || {
        smol::block_on(async {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let mut stream = acceptor.accept(stream).await?;
            let mut buffer = vec![0u8; read_len()];
            let mut total = 0u64;
            while total < expected {
                match stream.read(&mut buffer).await? {
                    0 => break,
                    read => total += read as u64,
                }
            }
            io::Result::Ok(total)
        })
    });
    // The client's stream outlives the receiver: closed with the server's
    // session tickets unread, it would reset the connection under it.
    let (started, _client) = smol::block_on(async {
        let stream = smol::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let connector = futures_rustls::TlsConnector::from(Arc::clone(&tls.client.config));
        let mut stream = connector
            .connect(tls.client.server_name.clone(), stream)
            .await?;
        let started = Instant::now();
        stream.write_all(payload).await?;
        stream.flush().await?;
        io::Result::Ok((started, stream))
    })?;
    let received = joined(receiver, "the futures-rustls receiver")?;
    let took = started.elapsed();
    if received != expected {
        return Err(io::Error::other("futures-rustls lost bytes"));
    }
    Ok(took)
}

/// The receivers' read size: what the adapters read a large body with.
fn read_len() -> usize {
    tej_core::SessionConfig::default().bulk_read_len
}
