//! What tej-async-std's faces (async-std, smol) do with streams of the
//! user's own: `Client::from_stream` over async-io's `Async<TcpStream>`,
//! and `local_addr` of a Unix listener. The scenarios every runtime shares
//! are in the matrix (`tej-examples/tests/conformance.rs`).

macro_rules! face {
    ($face:ident, $block_on:path, $spawn:path, $Server:path, $Client:path) => {
        mod $face {
            use std::net::TcpStream;
            use std::time::Duration;

            use async_io::Async;
            use tej_async_std::{FrameBuilder, SessionConfig, Status};
            use tej_test_support::peer::{eventually, pattern, within};
            use tej_test_support::recorder::{FrameSummary, Record, Recorder, Seen};
            use $Client as Client;
            use $Server as Server;

            #[test]
            fn a_client_from_a_stream_of_ones_own() {
                $block_on(within("the test", async {
                    let server = Server::bind("127.0.0.1:0").await.unwrap();
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    let served = Record::default();
                    let mut mirror = Recorder::new(&served);
                    mirror.mirror = true;
                    let serving = $spawn(server.serve(mirror.factory()));

                    let stream = Async::<TcpStream>::connect(addr).await.unwrap();
                    let record = Record::default();
                    // A plain `Async<TcpStream>`'s close only flushes: the
                    // server never sees this side's end, so the graceful
                    // close waits out the linger (kept short here).
                    let config = SessionConfig::default().close_linger(Duration::from_millis(300));
                    let client = Client::from_stream(stream, Recorder::new(&record), config);
                    assert_eq!(client.peer_addr(), None);
                    let frame = FrameBuilder::new(Status::DEFAULT)
                        .file("big.bin", pattern(1 << 20, 1))
                        .file("empty", Vec::new())
                        .file("odd.bin", pattern(70_001, 2))
                        .message("files")
                        .build();
                    client.sender().send(frame.clone()).await.unwrap();
                    eventually("the frame back", || record.received().len() == 1).await;
                    assert_eq!(record.received(), [FrameSummary::of(&frame)]);
                    assert_eq!(served.received(), [FrameSummary::of(&frame)]);
                    client.shutdown();
                    within("the client to end", client.join()).await.unwrap();
                    assert_eq!(
                        record.snapshot().last().unwrap(),
                        &Seen::Disconnected("closed locally".into())
                    );
                    shutdown.shutdown();
                    within("serve to return", serving).await;
                    assert_eq!(served.made(), 1);
                }));
            }

            #[test]
            fn a_unix_listener_has_no_socket_address() {
                $block_on(async {
                    let dir = tempfile::tempdir().unwrap();
                    let server = Server::bind_unix(dir.path().join("tej.sock"))
                        .await
                        .unwrap();
                    let error = server.local_addr().unwrap_err();
                    assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
                });
            }
        }
    };
}

#[cfg(feature = "async-std")]
face!(
    async_std,
    ::async_std::task::block_on,
    ::async_std::task::spawn,
    tej_async_std::Server,
    tej_async_std::Client
);

#[cfg(feature = "smol")]
face!(
    smol,
    ::smol::block_on,
    ::smol::spawn,
    tej_async_std::smol::Server,
    tej_async_std::smol::Client
);
