//! `TejCodec` with tokio-util's `Framed`, against the server. The
//! scenarios every runtime shares are in the matrix
//! (`tej-examples/tests/conformance.rs`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tej_test_support::handlers::{Echo, Events};
use tej_tokio::{Frame, Server, TejCodec};
use tokio_util::codec::Framed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_talks_to_the_server() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(|| Echo(Events::default())));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, TejCodec::default());
    framed.send(Frame::message("via codec")).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(reply, Frame::message("echo: via codec"));
    // One `Encoder` impl: `feed` and `flush` need no turbofish.
    framed.feed(Frame::message("fed")).await.unwrap();
    framed.flush().await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(reply, Frame::message("echo: fed"));
    drop(framed);
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap();
}
