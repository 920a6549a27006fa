//! `Server::with_proxy_protocol` on both faces: v1 and v2 headers name the
//! peer, a connection without a valid header never meets a handler, a
//! stalled header is cut at the handshake timeout, health checks go
//! unreported, and PROXY composes with TLS (header first, then TLS).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_io::Async;
use futures_lite::AsyncReadExt;
use tej_async_std::{Connection, DisconnectReason, Frame, FrameBuilder, Handler, Status};

/// A connection's peer and proxy addresses.
type Addrs = (Option<SocketAddr>, Option<SocketAddr>);

/// What the server's handlers saw: `(peer, proxy)` per connection, frames.
#[derive(Default, Clone)]
struct Seen {
    made: Arc<AtomicUsize>,
    connected: Arc<Mutex<Vec<Addrs>>>,
    frames: Arc<Mutex<Vec<Frame>>>,
}

impl Seen {
    fn factory(&self) -> impl FnMut() -> Mirror + Send + 'static {
        let seen = self.clone();
        move || {
            seen.made.fetch_add(1, Ordering::SeqCst);
            Mirror(seen.clone())
        }
    }
    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }
    fn connected(&self) -> Vec<Addrs> {
        self.connected.lock().unwrap().clone()
    }
}

/// Records the connection's addresses and mirrors every frame.
struct Mirror(Seen);

impl Handler for Mirror {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let addrs = (conn.peer_addr(), conn.proxy_addr());
        self.0.connected.lock().unwrap().push(addrs);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        self.0.frames.lock().unwrap().push(frame.clone());
        let _ = conn.send(frame);
    }
}

/// Keeps what comes back.
#[derive(Default, Clone)]
struct Collect(Arc<Mutex<Vec<Frame>>>);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(frame);
    }
    fn disconnected(&mut self, _reason: DisconnectReason) {}
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A v2 `PROXY` header over TCP4 (`local`: a `LOCAL` one).
fn v2(source: SocketAddr, destination: SocketAddr, local: bool) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[if local { 0x20 } else { 0x21 }, 0x11, 0, 12]);
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

fn client_address() -> SocketAddr {
    "203.0.113.7:40001".parse().unwrap()
}

fn sample() -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file(
            "a.bin",
            (0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
        )
        .message("through the balancer")
        .build()
}

/// Reads until the server closes; the bytes it sent.
async fn until_closed(mut stream: Async<TcpStream>) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    got
}

macro_rules! suite {
    ($face:ident, $block_on:path, $spawn:path, $Server:ty, $Client:ty) => {
        mod $face {
            use std::future::Future;
            use std::net::{SocketAddr, TcpStream};
            use std::time::{Duration, Instant};

            use async_io::{Async, Timer};
            use futures_lite::{future, AsyncWriteExt};
            use tej_async_std::{SessionConfig, ShutdownHandle};

            use super::*;
            use crate::common::{TEST_LIMIT, WAIT_LIMIT};

            fn run(test: impl Future<Output = ()>) {
                $block_on(future::or(test, async {
                    Timer::after(TEST_LIMIT).await;
                    panic!("the test timed out");
                }));
            }

            async fn wait_for(mut done: impl FnMut() -> bool) {
                let deadline = Instant::now() + WAIT_LIMIT;
                while !done() {
                    assert!(Instant::now() < deadline, "timed out");
                    Timer::after(Duration::from_millis(5)).await;
                }
            }

            struct Running {
                addr: SocketAddr,
                seen: Seen,
                shutdown: ShutdownHandle,
                serving: Box<dyn Future<Output = ()> + Unpin>,
            }

            impl Running {
                async fn stop(self) -> Seen {
                    self.shutdown.shutdown();
                    self.serving.await;
                    self.seen
                }
            }

            async fn start(timeout: Duration, tls: bool) -> Running {
                let config = SessionConfig::default().handshake_timeout(timeout);
                let server = <$Server>::bind("127.0.0.1:0")
                    .await
                    .unwrap()
                    .with_config(config)
                    .with_proxy_protocol();
                assert!(cfg!(feature = "tls") || !tls);
                let addr = server.local_addr().unwrap();
                let shutdown = server.shutdown_handle();
                let seen = Seen::default();
                #[cfg(feature = "tls")]
                let serving = if tls {
                    let server = server.with_tls(crate::common::tls::server());
                    Box::new($spawn(server.serve(seen.factory())))
                } else {
                    Box::new($spawn(server.serve(seen.factory())))
                };
                #[cfg(not(feature = "tls"))]
                let serving = Box::new($spawn(server.serve(seen.factory())));
                Running {
                    addr,
                    seen,
                    shutdown,
                    serving,
                }
            }

            async fn connect(addr: SocketAddr) -> Async<TcpStream> {
                Async::<TcpStream>::connect(addr).await.unwrap()
            }

            /// Writes `preamble`, then runs a client over `stream`, sends
            /// one frame and waits for it to come back.
            async fn round_trip<S>(mut stream: S, preamble: &[u8]) -> Frame
            where
                S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
            {
                stream.write_all(preamble).await.unwrap();
                let collect = Collect::default();
                let client =
                    <$Client>::from_stream(stream, collect.clone(), SessionConfig::default());
                client.sender().send(sample()).await.unwrap();
                wait_for(|| !collect.0.lock().unwrap().is_empty()).await;
                client.close();
                let _ = client.join().await;
                let frame = collect.0.lock().unwrap().remove(0);
                frame
            }

            #[test]
            fn a_v1_header_names_the_peer_and_the_balancer_is_the_proxy() {
                run(async {
                    let running = start(Duration::from_secs(5), false).await;
                    let stream = connect(running.addr).await;
                    let balancer = stream.get_ref().local_addr().unwrap();
                    let back = round_trip(stream, &v1(client_address(), running.addr)).await;
                    assert_eq!(back, sample());
                    let seen = running.stop().await;
                    assert_eq!(
                        seen.connected(),
                        vec![(Some(client_address()), Some(balancer))]
                    );
                });
            }

            #[test]
            fn a_v2_header_with_the_first_frame_in_the_same_write_loses_no_byte() {
                run(async {
                    let running = start(Duration::from_secs(5), false).await;
                    let mut stream = connect(running.addr).await;
                    let balancer = stream.get_ref().local_addr().unwrap();
                    let mut wire = v2(client_address(), running.addr, false);
                    wire.extend_from_slice(&sample().encode_to_vec().unwrap());
                    stream.write_all(&wire).await.unwrap();
                    assert_eq!(round_trip(stream, &[]).await, sample());
                    // Both frames reach the handler (a shutdown right away
                    // could otherwise stop before the second is read).
                    let frames = running.seen.frames.clone();
                    wait_for(|| frames.lock().unwrap().len() == 2).await;
                    let seen = running.stop().await;
                    assert_eq!(seen.frames.lock().unwrap().len(), 2);
                    assert_eq!(
                        seen.connected(),
                        vec![(Some(client_address()), Some(balancer))]
                    );
                });
            }

            #[test]
            fn a_missing_or_invalid_header_is_refused_before_any_handler() {
                run(async {
                    let running = start(Duration::from_secs(5), false).await;
                    let bad: [&[u8]; 4] = [
                        &sample().encode_to_vec().unwrap(),
                        b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n",
                        b"GET / HTTP/1.1\r\n\r\n",
                        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
                    ];
                    for preamble in bad {
                        let mut stream = connect(running.addr).await;
                        stream.write_all(preamble).await.unwrap();
                        assert!(until_closed(stream).await.is_empty());
                    }
                    let stream = connect(running.addr).await;
                    let back = round_trip(stream, &v1(client_address(), running.addr)).await;
                    assert_eq!(back, sample());
                    assert_eq!(running.stop().await.made(), 1);
                });
            }

            #[test]
            fn a_stalled_header_is_cut_at_the_handshake_timeout() {
                run(async {
                    let running = start(Duration::from_millis(300), false).await;
                    let mut stream = connect(running.addr).await;
                    let started = Instant::now();
                    stream.write_all(b"PROXY TCP4 192.0.2.1").await.unwrap();
                    assert!(until_closed(stream).await.is_empty());
                    let took = started.elapsed();
                    assert!(
                        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
                        "{took:?}"
                    );
                    assert_eq!(running.stop().await.made(), 0);
                });
            }

            #[test]
            fn health_checks_are_closed_quietly_without_a_handler() {
                run(async {
                    let running = start(Duration::from_secs(5), false).await;
                    for _ in 0..3 {
                        drop(connect(running.addr).await);
                        let mut stream = connect(running.addr).await;
                        let local = v2(client_address(), running.addr, true);
                        stream.write_all(&local).await.unwrap();
                        assert!(until_closed(stream).await.is_empty());
                    }
                    let stream = connect(running.addr).await;
                    let back = round_trip(stream, &v1(client_address(), running.addr)).await;
                    assert_eq!(back, sample());
                    assert_eq!(running.stop().await.made(), 1);
                });
            }

            #[cfg(feature = "tls")]
            #[test]
            fn proxy_then_tls() {
                use futures_rustls::TlsConnector;
                run(async {
                    let running = start(Duration::from_secs(5), true).await;
                    let mut stream = connect(running.addr).await;
                    let balancer = stream.get_ref().local_addr().unwrap();
                    let header = v2(client_address(), running.addr, false);
                    stream.write_all(&header).await.unwrap();
                    let connector = TlsConnector::from(crate::common::tls::client());
                    let tls = connector
                        .connect(crate::common::tls::localhost(), stream)
                        .await
                        .unwrap();
                    assert_eq!(round_trip(tls, &[]).await, sample());

                    // TLS without the header first is refused.
                    let stream = connect(running.addr).await;
                    let refused = connector
                        .connect(crate::common::tls::localhost(), stream)
                        .await;
                    assert!(refused.is_err());

                    let seen = running.stop().await;
                    assert_eq!(
                        seen.connected(),
                        vec![(Some(client_address()), Some(balancer))]
                    );
                });
            }
        }
    };
}

#[cfg(feature = "async-std")]
suite!(
    async_std,
    ::async_std::task::block_on,
    ::async_std::task::spawn,
    tej_async_std::Server,
    tej_async_std::Client
);

#[cfg(feature = "smol")]
suite!(
    smol,
    ::smol::block_on,
    ::smol::spawn,
    tej_async_std::smol::Server,
    tej_async_std::smol::Client
);
