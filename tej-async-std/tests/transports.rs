//! Every transport on both faces: TCP, TLS (files both ways, client
//! certificates, untrusted certificates, a plain peer on the TLS port, a
//! stalled handshake, close_notify, graceful shutdown), Unix sockets and
//! `from_stream`. One suite, instantiated for async-std and for smol.

mod common;

/// The two faces, each with its executor's `block_on` and `spawn`.
mod faces {
    #[cfg(feature = "async-std")]
    pub mod async_std {
        use std::future::Future;

        pub use tej_async_std::{Client, Server};

        pub fn block_on<T>(future: impl Future<Output = T>) -> T {
            async_std::task::block_on(future)
        }

        pub fn spawn<T: Send + 'static>(
            future: impl Future<Output = T> + Send + 'static,
        ) -> impl Future<Output = T> + Unpin {
            async_std::task::spawn(future)
        }
    }

    #[cfg(feature = "smol")]
    pub mod smol {
        use std::future::Future;

        pub use tej_async_std::smol::{Client, Server};

        pub fn block_on<T>(future: impl Future<Output = T>) -> T {
            ::smol::block_on(future)
        }

        pub fn spawn<T: Send + 'static>(
            future: impl Future<Output = T> + Send + 'static,
        ) -> impl Future<Output = T> + Unpin {
            ::smol::spawn(future)
        }
    }
}

macro_rules! suite {
    ($face:ident) => {
        mod $face {
            use std::future::Future;
            use std::net::TcpStream;
            use std::sync::{Arc, Mutex};

            use async_io::{Async, Timer};
            use futures_lite::future;
            use tej_async_std::{Frame, SessionConfig};

            #[allow(unused_imports)]
            use crate::common::{
                frame_with, pattern, socket_path, wait_until, CollectFiles, Events, FileEcho,
                Files, PerConnection, TEST_LIMIT, WAIT_LIMIT,
            };
            use crate::faces::$face::{block_on, spawn, Client, Server};

            fn run(test: impl Future<Output = ()>) {
                block_on(future::or(test, async {
                    Timer::after(TEST_LIMIT).await;
                    panic!("the test timed out");
                }));
            }

            async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
                future::or(future, async {
                    Timer::after(WAIT_LIMIT).await;
                    panic!("timed out waiting for {what}");
                })
                .await
            }

            /// A server's handler factory: a [`FileEcho`] per connection,
            /// its events in `connections`, its files in `files`.
            fn echo_factory(
                connections: &PerConnection,
                files: &Arc<Mutex<Vec<Files>>>,
            ) -> impl FnMut() -> FileEcho + Send + 'static {
                let connections = connections.clone();
                let files = Arc::clone(files);
                move || FileEcho {
                    events: connections.next(),
                    files: Arc::clone(&files),
                }
            }

            fn collector() -> (CollectFiles, Events, Arc<Mutex<Vec<Files>>>) {
                let events = Events::default();
                let files = Arc::new(Mutex::new(Vec::new()));
                let handler = CollectFiles {
                    events: events.clone(),
                    files: Arc::clone(&files),
                };
                (handler, events, files)
            }

            fn sample_files() -> Files {
                vec![
                    ("big.bin".to_string(), pattern(1 << 20, 1)),
                    ("empty".to_string(), Vec::new()),
                    ("odd.bin".to_string(), pattern(70_001, 2)),
                ]
            }

            /// Sends `files`, expects them echoed byte for byte, and checks
            /// the server received them byte for byte.
            async fn round_trip(
                client: &Client,
                events: &Events,
                received: &Arc<Mutex<Vec<Files>>>,
                served: &Arc<Mutex<Vec<Files>>>,
            ) {
                let files = sample_files();
                client
                    .sender()
                    .send(frame_with(&files, "files"))
                    .await
                    .unwrap();
                wait_until("the echo", || events.contains("echo: files")).await;
                assert_eq!(received.lock().unwrap().last(), Some(&files));
                assert_eq!(served.lock().unwrap().last(), Some(&files));
            }

            #[test]
            fn tcp_round_trip() {
                run(async {
                    let server = Server::bind("127.0.0.1:0").await.unwrap();
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    let connections = PerConnection::default();
                    let served = Arc::new(Mutex::new(Vec::new()));
                    let serving = spawn(server.serve(echo_factory(&connections, &served)));

                    let (handler, events, received) = collector();
                    let client = Client::connect(addr, handler).await.unwrap();
                    assert_eq!(client.peer_addr(), Some(addr));
                    round_trip(&client, &events, &received, &served).await;
                    client.close();
                    bounded("the client to end", client.join()).await.unwrap();
                    wait_until("server disconnect", || {
                        connections.get(0).is_some_and(|events| events.ended())
                    })
                    .await;
                    shutdown.shutdown();
                    bounded("serve to return", serving).await;
                    assert_eq!(
                        connections.get(0).unwrap().snapshot(),
                        vec![
                            "connected",
                            "received files files=3",
                            "disconnected: peer closed the connection"
                        ]
                    );
                });
            }

            #[cfg(feature = "tls")]
            mod tls {
                use super::*;
                use crate::common::tls;
                use futures_lite::{AsyncReadExt, AsyncWriteExt};
                use futures_rustls::{TlsAcceptor, TlsConnector};
                use std::net::SocketAddr;
                use std::time::{Duration, Instant};

                async fn tls_server(
                    config: Arc<rustls::ServerConfig>,
                    session: SessionConfig,
                ) -> (
                    SocketAddr,
                    tej_async_std::ShutdownHandle,
                    PerConnection,
                    Arc<Mutex<Vec<Files>>>,
                    impl Future<Output = ()> + Unpin,
                ) {
                    let server = Server::bind("127.0.0.1:0")
                        .await
                        .unwrap()
                        .with_config(session)
                        .with_tls(config);
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    let connections = PerConnection::default();
                    let served = Arc::new(Mutex::new(Vec::new()));
                    let serving = spawn(server.serve(echo_factory(&connections, &served)));
                    (addr, shutdown, connections, served, serving)
                }

                #[test]
                fn tls_round_trip_with_files() {
                    run(async {
                        let (addr, shutdown, connections, served, serving) =
                            tls_server(tls::server(), SessionConfig::default()).await;
                        let (handler, events, received) = collector();
                        let client = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap();
                        assert_eq!(client.peer_addr(), Some(addr));
                        round_trip(&client, &events, &received, &served).await;
                        client.close();
                        bounded("the client to end", client.join()).await.unwrap();
                        wait_until("server disconnect", || {
                            connections.get(0).is_some_and(|events| events.ended())
                        })
                        .await;
                        assert_eq!(
                            connections.get(0).unwrap().snapshot(),
                            vec![
                                "connected",
                                "received files files=3",
                                "disconnected: peer closed the connection"
                            ]
                        );
                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                    });
                }

                #[test]
                fn a_required_client_certificate_admits_only_clients_with_one() {
                    run(async {
                        let (addr, shutdown, connections, served, serving) = tls_server(
                            tls::server_requiring_client_cert(),
                            SessionConfig::default(),
                        )
                        .await;

                        // Without a certificate: the server refuses the
                        // handshake; no handler is ever made for it.
                        let (handler, events, _) = collector();
                        let refused = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await;
                        if let Ok(client) = refused {
                            // TLS 1.3: the client finishes its side first,
                            // then learns of the refusal.
                            let _ = client.sender().send(Frame::message("let me in")).await;
                            bounded("the refused client to end", client.join())
                                .await
                                .unwrap();
                            let seen = events.snapshot();
                            assert_eq!(seen.len(), 1, "{seen:?}");
                            assert!(seen[0].starts_with("disconnected"), "{seen:?}");
                        }
                        assert_eq!(connections.count(), 0);

                        // With one: served.
                        let (handler, events, received) = collector();
                        let client = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client_with_cert(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap();
                        round_trip(&client, &events, &received, &served).await;
                        client.close();
                        bounded("the client to end", client.join()).await.unwrap();
                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                        assert_eq!(connections.count(), 1);
                        assert_eq!(
                            connections.get(0).unwrap().snapshot()[..2],
                            ["connected", "received files files=3"]
                        );
                    });
                }

                #[test]
                fn an_untrusted_server_certificate_fails_with_its_reason() {
                    run(async {
                        let (addr, shutdown, connections, _served, serving) =
                            tls_server(tls::untrusted_server(), SessionConfig::default()).await;
                        let (handler, events, _) = collector();
                        let error = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap_err();
                        let message = error.to_string();
                        assert!(message.contains("not trusted"), "{message}");
                        assert!(!message.contains('\n'), "{message}");
                        assert!(events.snapshot().is_empty());
                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                        assert_eq!(connections.count(), 0);
                    });
                }

                #[test]
                fn a_plain_client_on_the_tls_port_gets_no_frame_through() {
                    run(async {
                        let (addr, shutdown, connections, _served, serving) =
                            tls_server(tls::server(), SessionConfig::default()).await;
                        let (handler, events, _) = collector();
                        let client = Client::connect(addr, handler).await.unwrap();
                        let _ = client.sender().send(Frame::message("plain")).await;
                        bounded("the plain client to end", client.join())
                            .await
                            .unwrap();
                        let seen = events.snapshot();
                        assert_eq!(seen.len(), 1, "{seen:?}");
                        assert!(seen[0].starts_with("disconnected"), "{seen:?}");

                        // Raw: a TEJ frame in the clear gets back no TEJ
                        // bytes, only (at most) a TLS alert, then the end.
                        let mut raw = Async::<TcpStream>::connect(addr).await.unwrap();
                        let wire = Frame::message("plain").encode_to_vec().unwrap();
                        raw.write_all(&wire).await.unwrap();
                        let mut reply = Vec::new();
                        let _ = bounded("the server to close", raw.read_to_end(&mut reply)).await;
                        assert!(reply.is_empty() || reply[0] == 0x15, "{reply:?}");

                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                        assert_eq!(connections.count(), 0);
                    });
                }

                #[test]
                fn a_stalled_handshake_is_cut_by_the_timeout_while_others_are_served() {
                    run(async {
                        let timeout = Duration::from_millis(400);
                        let (addr, shutdown, connections, served, serving) = tls_server(
                            tls::server(),
                            SessionConfig::default().handshake_timeout(timeout),
                        )
                        .await;
                        // The first bytes of a ClientHello record, then nothing.
                        let started = Instant::now();
                        let mut stalled = Async::<TcpStream>::connect(addr).await.unwrap();
                        stalled
                            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                            .await
                            .unwrap();

                        let (handler, events, received) = collector();
                        let client = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap();
                        round_trip(&client, &events, &received, &served).await;

                        let mut rest = Vec::new();
                        let _ =
                            bounded("the stalled peer to be cut", stalled.read_to_end(&mut rest))
                                .await;
                        let elapsed = started.elapsed();
                        assert!(
                            elapsed >= timeout - Duration::from_millis(50),
                            "{elapsed:?}"
                        );
                        assert!(rest.is_empty() || rest[0] == 0x15, "{rest:?}");

                        // Still serving after the cut.
                        round_trip(&client, &events, &received, &served).await;
                        client.close();
                        bounded("the client to end", client.join()).await.unwrap();
                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                        assert_eq!(connections.count(), 1);
                    });
                }

                #[test]
                fn a_handshake_holds_its_slot_under_the_cap() {
                    run(async {
                        let timeout = Duration::from_millis(400);
                        let server = Server::bind("127.0.0.1:0")
                            .await
                            .unwrap()
                            .with_config(SessionConfig::default().handshake_timeout(timeout))
                            .with_max_connections(1)
                            .with_tls(tls::server());
                        let addr = server.local_addr().unwrap();
                        let shutdown = server.shutdown_handle();
                        let connections = PerConnection::default();
                        let served = Arc::new(Mutex::new(Vec::new()));
                        let serving = spawn(server.serve(echo_factory(&connections, &served)));

                        let mut stalled = Async::<TcpStream>::connect(addr).await.unwrap();
                        stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
                        Timer::after(Duration::from_millis(100)).await;
                        // At the cap: accepted and closed at once.
                        let (handler, _, _) = collector();
                        let refused = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await;
                        assert!(refused.is_err(), "served beyond the cap");
                        // The stalled handshake times out and frees the slot.
                        let mut rest = Vec::new();
                        let _ =
                            bounded("the stalled peer to be cut", stalled.read_to_end(&mut rest))
                                .await;
                        let (handler, events, received) = collector();
                        let client = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap();
                        round_trip(&client, &events, &received, &served).await;
                        client.close();
                        bounded("the client to end", client.join()).await.unwrap();
                        shutdown.shutdown();
                        bounded("serve to return", serving).await;
                        assert_eq!(connections.count(), 1);
                    });
                }

                #[test]
                fn graceful_shutdown_over_tls_sends_close_notify() {
                    run(async {
                        let (addr, shutdown, connections, _served, serving) =
                            tls_server(tls::server(), SessionConfig::default()).await;
                        let tcp = Async::<TcpStream>::connect(addr).await.unwrap();
                        let mut stream = TlsConnector::from(tls::client())
                            .connect(tls::localhost(), tcp)
                            .await
                            .unwrap();
                        let wire = Frame::message("hi").encode_to_vec().unwrap();
                        stream.write_all(&wire).await.unwrap();
                        stream.flush().await.unwrap();
                        wait_until("the frame", || {
                            connections
                                .get(0)
                                .is_some_and(|events| events.contains("received hi files=0"))
                        })
                        .await;
                        shutdown.shutdown();
                        // Ok, not UnexpectedEof: the server sent close_notify.
                        let mut reply = Vec::new();
                        bounded("the end of the TLS stream", stream.read_to_end(&mut reply))
                            .await
                            .expect("a clean TLS end (close_notify)");
                        assert_eq!(reply, Frame::message("echo: hi").encode_to_vec().unwrap());
                        bounded("serve to return", serving).await;
                        assert_eq!(
                            connections.get(0).unwrap().snapshot(),
                            vec![
                                "connected",
                                "received hi files=0",
                                "disconnected: closed locally"
                            ]
                        );
                    });
                }

                #[test]
                fn a_tls_client_sends_close_notify_on_close() {
                    run(async {
                        let listener =
                            Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
                        let addr = listener.get_ref().local_addr().unwrap();
                        let peer = spawn(async move {
                            let (tcp, _) = listener.accept().await.unwrap();
                            let mut stream =
                                TlsAcceptor::from(tls::server()).accept(tcp).await.unwrap();
                            let mut received = Vec::new();
                            stream.read_to_end(&mut received).await.map(|_| received)
                        });
                        let (handler, events, _) = collector();
                        let client = Client::connect_tls(
                            addr,
                            tls::localhost(),
                            tls::client(),
                            handler,
                            SessionConfig::default(),
                        )
                        .await
                        .unwrap();
                        client.sender().send(Frame::message("bye")).await.unwrap();
                        client.close();
                        bounded("the client to end", client.join()).await.unwrap();
                        let received = bounded("the raw server", peer)
                            .await
                            .expect("a clean TLS end (close_notify)");
                        assert_eq!(received, Frame::message("bye").encode_to_vec().unwrap());
                        assert_eq!(events.snapshot(), vec!["disconnected: closed locally"]);
                    });
                }
            }

            #[cfg(unix)]
            #[test]
            fn unix_round_trip_and_graceful_shutdown() {
                run(async {
                    let (_socket_dir, path) = socket_path(stringify!($face));
                    let server = Server::bind_unix(&path).await.unwrap();
                    let error = server.local_addr().unwrap_err();
                    assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
                    let shutdown = server.shutdown_handle();
                    let connections = PerConnection::default();
                    let served = Arc::new(Mutex::new(Vec::new()));
                    let serving = spawn(server.serve(echo_factory(&connections, &served)));

                    let (handler, events, received) = collector();
                    let client = Client::connect_unix(&path, handler, SessionConfig::default())
                        .await
                        .unwrap();
                    assert_eq!(client.peer_addr(), None);
                    round_trip(&client, &events, &received, &served).await;
                    client.close();
                    bounded("the client to end", client.join()).await.unwrap();

                    // Graceful shutdown: the busy connection flushes its
                    // echo, then closes.
                    let (handler, busy_events, _) = collector();
                    let busy = Client::connect_unix(&path, handler, SessionConfig::default())
                        .await
                        .unwrap();
                    busy.sender().send(Frame::message("busy")).await.unwrap();
                    wait_until("the echo", || busy_events.contains("echo: busy")).await;
                    shutdown.shutdown();
                    bounded("serve to return", serving).await;
                    bounded("the busy client to end", busy.join())
                        .await
                        .unwrap();
                    assert_eq!(
                        busy_events.snapshot(),
                        vec!["echo: busy", "disconnected: peer closed the connection"]
                    );
                    assert_eq!(
                        connections.get(1).unwrap().snapshot(),
                        vec![
                            "connected",
                            "received busy files=0",
                            "disconnected: closed locally"
                        ]
                    );
                });
            }

            #[test]
            fn from_stream_round_trip() {
                run(async {
                    let server = Server::bind("127.0.0.1:0").await.unwrap();
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    let connections = PerConnection::default();
                    let served = Arc::new(Mutex::new(Vec::new()));
                    let serving = spawn(server.serve(echo_factory(&connections, &served)));

                    let stream = Async::<TcpStream>::connect(addr).await.unwrap();
                    let (handler, events, received) = collector();
                    let client = Client::from_stream(stream, handler, SessionConfig::default());
                    assert_eq!(client.peer_addr(), None);
                    round_trip(&client, &events, &received, &served).await;
                    client.shutdown();
                    bounded("the client to end", client.join()).await.unwrap();
                    assert_eq!(
                        events.snapshot().last().unwrap(),
                        "disconnected: closed locally"
                    );
                    shutdown.shutdown();
                    bounded("serve to return", serving).await;
                    assert_eq!(connections.count(), 1);
                });
            }

            #[test]
            fn dropping_a_client_closes_it_after_what_is_queued() {
                run(async {
                    let server = Server::bind("127.0.0.1:0").await.unwrap();
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    // A server that answers nothing: a peer still sending
                    // when this side closes would see its close as a reset.
                    let connections = PerConnection::default();
                    let serving = spawn(server.serve({
                        let connections = connections.clone();
                        move || CollectFiles {
                            events: connections.next(),
                            files: Arc::default(),
                        }
                    }));

                    let (handler, events, _received) = collector();
                    // Room for every frame, so that they are all queued at once.
                    let config = SessionConfig::default().send_queue_capacity(8 << 20);
                    let client = Client::connect_with(addr, handler, config).await.unwrap();
                    let sender = client.sender();
                    let files: Files = vec![("data.bin".to_string(), pattern(64 * 1024, 3))];
                    for i in 0..40 {
                        sender
                            .try_send(frame_with(&files, &format!("m{i}")))
                            .unwrap();
                    }
                    drop(client);
                    // A sender taken before does not keep the connection open.
                    wait_until("the server to see the end", || {
                        connections.get(0).is_some_and(|events| events.ended())
                    })
                    .await;
                    let mut expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
                    expected.push("disconnected: peer closed the connection".into());
                    assert_eq!(connections.get(0).unwrap().snapshot(), expected);
                    wait_until("the client to end", || events.ended()).await;
                    assert_eq!(events.snapshot(), ["disconnected: closed locally"]);
                    assert!(sender.is_closed());
                    shutdown.shutdown();
                    bounded("serve to return", serving).await;
                });
            }

            #[test]
            fn join_tells_why_and_detach_runs_on() {
                run(async {
                    let server = Server::bind("127.0.0.1:0").await.unwrap();
                    let addr = server.local_addr().unwrap();
                    let shutdown = server.shutdown_handle();
                    let connections = PerConnection::default();
                    let served = Arc::new(Mutex::new(Vec::new()));
                    let serving = spawn(server.serve(echo_factory(&connections, &served)));

                    // Closed by this side.
                    let (handler, _events, _received) = collector();
                    let client = Client::connect(addr, handler).await.unwrap();
                    client.close();
                    let reason = bounded("the client to end", client.join()).await.unwrap();
                    assert!(
                        matches!(reason, tej_async_std::DisconnectReason::LocalClose),
                        "{reason}"
                    );

                    // Detached: runs on after its `Client` is gone.
                    let (handler, events, _received) = collector();
                    let client = Client::connect(addr, handler).await.unwrap();
                    let sender = client.detach();
                    sender.send(Frame::message("detached")).await.unwrap();
                    wait_until("the echo", || events.contains("echo: detached")).await;
                    assert!(!sender.is_closed());

                    // Closed by the server: the detached client sees it too.
                    shutdown.shutdown();
                    bounded("serve to return", serving).await;
                    wait_until("the client to end", || events.ended()).await;
                    assert_eq!(
                        events.snapshot().last().unwrap(),
                        "disconnected: peer closed the connection"
                    );
                });
            }
        }
    };
}

#[cfg(feature = "async-std")]
suite!(async_std);
#[cfg(feature = "smol")]
suite!(smol);
