//! The async face on every async runtime: connections accepted and opened
//! as `AsyncConnection`s, frames as a `Stream`, files read as they arrive,
//! a dropped file skipped, and a consumer that stops reading holding up its
//! own peer only.

use std::time::Duration;

use futures_lite::{AsyncReadExt, StreamExt};
use sha2::{Digest, Sha256};
use tej_core::{File, Frame, SessionConfig};
use tej_net::{AsyncConnection, IncomingFrame};
use tej_test_support::harness;

/// Deterministic bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the echo server says of a frame: each file's name, length and
/// digest as read through `AsyncRead`, then the message.
async fn describe(mut frame: IncomingFrame) -> std::io::Result<String> {
    let mut parts = vec![format!("status {}", frame.status().get())];
    while let Some(mut file) = frame.next_file().await? {
        let mut body = Vec::new();
        file.read_to_end(&mut body).await?;
        parts.push(format!("{} {} {}", file.name(), body.len(), digest(&body)));
    }
    let message = frame.message().await?;
    parts.push(format!(
        "message {}",
        String::from_utf8_lossy(message.as_deref().unwrap_or(b"-"))
    ));
    Ok(parts.join("; "))
}

/// Answers every frame with its description.
async fn echo(mut conn: AsyncConnection) {
    while let Some(Ok(frame)) = conn.next().await {
        let Ok(text) = describe(frame).await else {
            return;
        };
        if conn.sender().send(Frame::message(text)).await.is_err() {
            return;
        }
    }
}

/// The description `describe` gives of `frame`.
fn expected(frame: &Frame) -> String {
    let mut parts = vec![format!("status {}", frame.status.get())];
    for file in &frame.files {
        let body = file.data().expect("in memory");
        parts.push(format!("{} {} {}", file.name, body.len(), digest(body)));
    }
    parts.push(format!(
        "message {}",
        String::from_utf8_lossy(frame.message.as_deref().unwrap_or(b"-"))
    ));
    parts.join("; ")
}

/// The next reply's message, as text.
async fn reply(conn: &mut AsyncConnection) -> String {
    let frame = conn
        .next()
        .await
        .expect("a reply")
        .expect("a sound connection");
    let message = frame.message().await.expect("its message");
    String::from_utf8(message.expect("a message").to_vec()).expect("UTF-8")
}

fn frames() -> Vec<Frame> {
    let mut with_files = Frame::message("three files");
    with_files.status = tej_core::Status::new(7).expect("status");
    with_files
        .files
        .push(File::new("a.bin", pattern(1 << 20, 1)));
    with_files.files.push(File::new("empty", Vec::new()));
    with_files
        .files
        .push(File::new("c.txt", pattern(100_000, 3)));
    let mut files_only = Frame::default();
    files_only
        .files
        .push(File::new("only.bin", pattern(70_000, 9)));
    vec![Frame::message("just a message"), with_files, files_only]
}

macro_rules! on_runtime {
    ($name:ident, $face:path, $block_on:expr, $spawn:expr) => {
        mod $name {
            use super::*;
            use $face as face;

            /// This runtime's tests, named `runtime::test`.
            pub fn tests() -> Vec<harness::Test> {
                tej_test_support::tests!(stringify!($name);
                    a_shutdown_lets_the_consumer_finish_its_frame_and_reply,
                    past_the_drain_timeout_what_remains_is_cut,
                    frames_and_files_arrive_as_a_stream,
                    accept_hands_out_each_connection_with_its_peer,
                    a_dropped_file_skips_the_rest_of_its_bytes,
                    a_consumer_that_stops_reading_holds_up_its_own_peer_only,
                )
            }

            fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
                ($block_on)(future)
            }

            fn spawn(future: impl std::future::Future<Output = ()> + Send + 'static) {
                ($spawn)(future)
            }

            /// A server on a free port whose connections `serve` handles.
            async fn server<F, Fut>(serve: F) -> std::net::SocketAddr
            where
                F: Fn(AsyncConnection) -> Fut + Send + Sync + 'static,
                Fut: std::future::Future<Output = ()> + Send + 'static,
            {
                let server = face::Server::bind("127.0.0.1:0").await.expect("bind");
                let addr = server.local_addr().expect("addr");
                spawn(server.serve_connections(serve));
                addr
            }

            /// A server shut down by the returned handle, with `drain`
            /// as its drain timeout; the channel closes when `serve` returned.
            async fn stoppable<F, Fut>(
                drain: Option<Duration>,
                serve: F,
            ) -> (
                std::net::SocketAddr,
                tej_net::ShutdownHandle,
                async_channel::Receiver<()>,
            )
            where
                F: Fn(AsyncConnection) -> Fut + Send + Sync + 'static,
                Fut: std::future::Future<Output = ()> + Send + 'static,
            {
                let server = face::Server::bind("127.0.0.1:0")
                    .await
                    .expect("bind")
                    .with_drain_timeout(drain);
                let addr = server.local_addr().expect("addr");
                let shutdown = server.shutdown_handle();
                let (returned, done) = async_channel::bounded::<()>(1);
                spawn(async move {
                    server.serve_connections(serve).await;
                    drop(returned);
                });
                (addr, shutdown, done)
            }

            fn a_shutdown_lets_the_consumer_finish_its_frame_and_reply() {
                block_on(async {
                    let (started_tx, started) = async_channel::bounded::<()>(1);
                    let (addr, shutdown, done) = stoppable(
                        Some(Duration::from_secs(20)),
                        move |mut conn: AsyncConnection| {
                            let started_tx = started_tx.clone();
                            async move {
                                while let Some(Ok(mut frame)) = conn.next().await {
                                    let mut file = frame.next_file().await.unwrap().unwrap();
                                    let _ = started_tx.try_send(());
                                    let mut len = 0;
                                    // A slow consumer: the upload takes a while.
                                    while let Some(chunk) = file.read_chunk().await.unwrap() {
                                        len += chunk.len();
                                        smol::Timer::after(Duration::from_millis(20)).await;
                                    }
                                    drop(file);
                                    let _ = frame.message().await.unwrap();
                                    let reply = Frame::message(format!("stored {len}"));
                                    conn.sender().send(reply).await.unwrap();
                                }
                            }
                        },
                    )
                    .await;
                    let mut conn = face::Client::open(addr).await.expect("open");
                    let mut frame = Frame::message("upload");
                    frame.files.push(File::new("f", pattern(4 << 20, 1)));
                    conn.sender().send(frame).await.expect("send");
                    started.recv().await.expect("the upload began");
                    shutdown.shutdown();
                    // The frame under way is finished and answered ...
                    assert_eq!(reply(&mut conn).await, format!("stored {}", 4 << 20));
                    // ... then the connection closes and serve returns.
                    assert!(conn.next().await.is_none(), "a clean end");
                    assert!(done.recv().await.is_err(), "serve returned");
                });
            }

            fn past_the_drain_timeout_what_remains_is_cut() {
                block_on(async {
                    let (addr, shutdown, done) = stoppable(
                        Some(Duration::from_millis(300)),
                        |mut conn: AsyncConnection| async move {
                            // Takes the frame, then never finishes.
                            let _frame = conn.next().await;
                            std::future::pending::<()>().await;
                        },
                    )
                    .await;
                    let mut conn = face::Client::open(addr).await.expect("open");
                    conn.sender()
                        .send(Frame::message("never answered"))
                        .await
                        .expect("send");
                    smol::Timer::after(Duration::from_millis(200)).await;
                    let asked = std::time::Instant::now();
                    shutdown.shutdown();
                    assert!(done.recv().await.is_err(), "serve returned");
                    let took = asked.elapsed();
                    assert!(
                        took >= Duration::from_millis(300) && took < Duration::from_secs(10),
                        "{took:?}"
                    );
                    // The client learns that the connection is gone.
                    match conn.next().await {
                        None | Some(Err(_)) => {}
                        Some(Ok(frame)) => panic!("a frame after the cut: {frame:?}"),
                    }
                });
            }

            fn frames_and_files_arrive_as_a_stream() {
                block_on(async {
                    let addr = server(echo).await;
                    let mut conn = face::Client::open(addr).await.expect("open");
                    for frame in frames() {
                        let want = expected(&frame);
                        conn.sender().send(frame).await.expect("send");
                        assert_eq!(reply(&mut conn).await, want);
                    }
                });
            }

            fn accept_hands_out_each_connection_with_its_peer() {
                block_on(async {
                    let mut server = face::Server::bind("127.0.0.1:0").await.expect("bind");
                    let addr = server.local_addr().expect("addr");
                    let accepting = async move {
                        for _ in 0..2 {
                            let conn = server.accept().await.expect("a connection");
                            let peer = conn.peer_addr().expect("a peer");
                            let sender = conn.sender();
                            sender
                                .send(Frame::message(format!("you are {peer}")))
                                .await
                                .expect("send");
                            spawn(echo(conn));
                        }
                    };
                    spawn(accepting);
                    for _ in 0..2 {
                        let mut conn = face::Client::open(addr).await.expect("open");
                        let local = conn.local_addr().expect("local");
                        assert_eq!(reply(&mut conn).await, format!("you are {local}"));
                        let frame = Frame::message("and back");
                        let want = expected(&frame);
                        conn.sender().send(frame).await.expect("send");
                        assert_eq!(reply(&mut conn).await, want);
                    }
                });
            }

            fn a_dropped_file_skips_the_rest_of_its_bytes() {
                block_on(async {
                    let addr = server(|mut conn: AsyncConnection| async move {
                        while let Some(Ok(mut frame)) = conn.next().await {
                            // The first file: one chunk read, the rest dropped.
                            let mut first = frame.next_file().await.unwrap().unwrap();
                            let chunk = first.read_chunk().await.unwrap().unwrap();
                            drop(first);
                            let mut second = frame.next_file().await.unwrap().unwrap();
                            let mut body = Vec::new();
                            second.read_to_end(&mut body).await.unwrap();
                            let name = second.name().to_owned();
                            assert!(frame.next_file().await.unwrap().is_none());
                            let message = frame.message().await.unwrap().unwrap();
                            let text = format!(
                                "{} first bytes; {name} {}; {}",
                                chunk.len() > 0,
                                digest(&body),
                                String::from_utf8_lossy(&message)
                            );
                            conn.sender().send(Frame::message(text)).await.unwrap();
                        }
                    })
                    .await;
                    let mut conn = face::Client::open(addr).await.expect("open");
                    for round in 0..3u8 {
                        let mut frame = Frame::message(format!("round {round}"));
                        frame
                            .files
                            .push(File::new("skipped", pattern(3 << 20, round)));
                        let kept = pattern(200_000, round + 100);
                        frame.files.push(File::new("kept", kept.clone()));
                        conn.sender().send(frame).await.expect("send");
                        assert_eq!(
                            reply(&mut conn).await,
                            format!("true first bytes; kept {}; round {round}", digest(&kept))
                        );
                    }
                });
            }

            fn a_consumer_that_stops_reading_holds_up_its_own_peer_only() {
                block_on(async {
                    let (stalled_tx, stalled_rx) = async_channel::bounded::<()>(1);
                    let addr = server(move |mut conn: AsyncConnection| {
                        let stalled_rx = stalled_rx.clone();
                        async move {
                            let Some(Ok(frame)) = conn.next().await else {
                                return;
                            };
                            if frame.status().get() == 9 {
                                // Never reads: waits until the test is done.
                                let _ = stalled_rx.recv().await;
                                return;
                            }
                            let text = describe(frame).await.unwrap();
                            conn.sender().send(Frame::message(text)).await.unwrap();
                            echo(conn).await;
                        }
                    })
                    .await;
                    let config = SessionConfig::default().send_queue_capacity(64 << 20);
                    let stalled = face::Client::open_with(addr, config).await.expect("open");
                    let mut big = Frame::default();
                    big.status = tej_core::Status::new(9).expect("status");
                    big.files.push(File::new("big", pattern(48 << 20, 5)));
                    let progress = stalled.sender().send_tracked(big).await.expect("queued");
                    // Another connection is served meanwhile, at once.
                    for _ in 0..3 {
                        let mut other = face::Client::open(addr).await.expect("open");
                        let frame = Frame::message("still served");
                        let want = expected(&frame);
                        other.sender().send(frame).await.expect("send");
                        assert_eq!(reply(&mut other).await, want);
                    }
                    // The stalled one's 48 MiB do not leave within a second
                    // (loopback would take a few dozen milliseconds): its
                    // peer reads nothing, so the sender's kernel takes only
                    // what the buffers hold.
                    let timeout = async {
                        smol::Timer::after(Duration::from_secs(1)).await;
                        None
                    };
                    let written = async { Some(progress.written().await) };
                    assert!(
                        futures_lite::future::or(written, timeout).await.is_none(),
                        "48 MiB were written to a peer that reads nothing"
                    );
                    drop(stalled_tx);
                });
            }
        }
    };
}

on_runtime!(
    tokio_runtime,
    tej_tokio,
    |future| tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future),
    |future| {
        tokio::spawn(future);
    }
);
on_runtime!(
    async_std_runtime,
    tej_async_std,
    async_std::task::block_on,
    |future| {
        async_std::task::spawn(future);
    }
);
on_runtime!(
    smol_runtime,
    tej_async_std::smol,
    smol::block_on,
    |future| {
        smol::spawn(future).detach();
    }
);

/// Two threads per core: the cases mostly wait (drain timeouts, a
/// consumer that stops reading).
fn main() -> std::process::ExitCode {
    let mut tests = tokio_runtime::tests();
    tests.extend(async_std_runtime::tests());
    tests.extend(smol_runtime::tests());
    harness::run_tests(tests, 2)
}
