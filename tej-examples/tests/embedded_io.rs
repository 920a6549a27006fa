//! `tej-core`'s async embedded-io endpoint on the host, against
//! `tej-tokio`'s server and client, through an embedded-io adapter over a
//! tokio `TcpStream` that reads and writes in random splits: the endpoint
//! as a client of an echoing server, and as an echoing server of a client;
//! golden frames, random frames, a file larger than the endpoint's buffer,
//! pings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tej_core::embedded::asynch::Endpoint;
use tej_core::{Event, FileRef, FrameRef, Limits};
use tej_test_support::golden;
use tej_test_support::rng::Rng;
use tej_tokio::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(60);

/// An I/O error as embedded-io sees it.
#[derive(Debug)]
struct IoError(std::io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {}

impl embedded_io_async::Error for IoError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

/// A tokio `TcpStream` as an embedded-io-async stream that reads and
/// writes at most a random number of bytes at a time.
struct Adapter {
    stream: TcpStream,
    rng: Rng,
    largest: usize,
}

impl Adapter {
    fn new(stream: TcpStream, seed: u64) -> Adapter {
        let mut rng = Rng::new(seed);
        let largest = [1, 3, 17, 1000, 70_000][rng.usize(..5)];
        Adapter {
            stream,
            rng,
            largest,
        }
    }

    fn split(&mut self, len: usize) -> usize {
        (1 + self.rng.usize(..self.largest)).min(len)
    }
}

impl embedded_io_async::ErrorType for Adapter {
    type Error = IoError;
}

impl embedded_io_async::Read for Adapter {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let len = self.split(buf.len());
        loop {
            self.stream.readable().await.map_err(IoError)?;
            match self.stream.try_read(&mut buf[..len]) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                result => return result.map_err(IoError),
            }
        }
    }
}

impl embedded_io_async::Write for Adapter {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        let len = self.split(buf.len());
        loop {
            self.stream.writable().await.map_err(IoError)?;
            match self.stream.try_write(&buf[..len]) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                result => return result.map_err(IoError),
            }
        }
    }

    /// A TCP stream buffers nothing of its own.
    async fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

/// A frame's content: status, version, files, message.
type Content = (u8, u8, Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

fn content(frame: &Frame) -> Content {
    let files = frame
        .files
        .iter()
        .map(|file| (file.name.clone(), file.data().expect("in memory").to_vec()))
        .collect();
    (
        frame.status.get(),
        frame.version,
        files,
        frame.message.as_ref().map(|m| m.to_vec()),
    )
}

fn frames() -> Vec<Frame> {
    let mut frames: Vec<Frame> = golden::frames()
        .into_iter()
        .map(|(_, _, frame)| frame)
        .filter(|frame| !frame.is_ping())
        .collect();
    let mut rng = Rng::new(24);
    for i in 0..20 {
        let mut builder =
            FrameBuilder::new(Status::new(rng.u8(..128)).unwrap()).version(rng.u8(..));
        for f in 0..rng.usize(..4) {
            let len = rng.usize(..5000);
            builder = builder.file(format!("f{i}-{f}"), vec![(i * f) as u8; len]);
        }
        if rng.bool() {
            builder = builder.message(format!("random {i}"));
        }
        let frame = builder.build();
        if !frame.is_ping() {
            frames.push(frame);
        }
    }
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    frames.push(
        FrameBuilder::new(Status::DEFAULT)
            .file("large.bin", large)
            .message("larger than the buffer")
            .build(),
    );
    frames
}

/// Sends `frame` through the endpoint, from borrowed slices.
async fn send(endpoint: &mut Endpoint<'_, Adapter>, frame: &Frame) {
    let files: Vec<FileRef<'_>> = frame
        .files
        .iter()
        .map(|file| FileRef::new(&file.name, file.data().expect("in memory")))
        .collect();
    let mut frame_ref = FrameRef::new(frame.status, &files, frame.message.as_deref());
    frame_ref.version = frame.version;
    endpoint.send(&frame_ref).await.expect("send");
}

/// Receives the next whole frame through the endpoint's events; `None` at
/// the end of the stream.
async fn receive(
    endpoint: &mut Endpoint<'_, Adapter>,
    largest_piece: &mut usize,
) -> Option<Content> {
    let mut frame: Content = (0, 0, Vec::new(), None);
    loop {
        match endpoint.next_event().await.expect("receive")? {
            Event::FrameStart {
                status, version, ..
            } => frame = (status.get(), version, Vec::new(), None),
            Event::FileStart { name, .. } => frame.2.push((name.to_owned(), Vec::new())),
            Event::FileData(data) => {
                *largest_piece = (*largest_piece).max(data.len());
                frame.2.last_mut().unwrap().1.extend_from_slice(data);
            }
            Event::MessageStart { size } => frame.3 = (size > 0).then(Vec::new),
            Event::MessageData(data) => {
                *largest_piece = (*largest_piece).max(data.len());
                frame.3.as_mut().unwrap().extend_from_slice(data);
            }
            Event::FileEnd => {}
            Event::FrameEnd => return Some(frame),
        }
    }
}

/// Echoes every frame, pings answered with pings.
struct Echo;

impl Handler for Echo {
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let _ = conn.send(frame);
    }
    fn ping_received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let _ = conn.send(Frame::ping());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_as_a_client_of_a_tokio_server() {
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let shutdown = server.shutdown_handle();
    let serving = tokio::spawn(server.serve(|| Echo));
    let frames = std::sync::Arc::new(frames());
    // One client per seed, at once: the tiny pieces make each slow.
    let clients: Vec<_> = (0..4)
        .map(|seed| {
            let frames = std::sync::Arc::clone(&frames);
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let mut buffer = vec![0u8; 512];
                // The server answers pings: this side must not, or they
                // would ping each other forever.
                let mut endpoint =
                    Endpoint::new(Adapter::new(stream, seed), &mut buffer, Limits::DEFAULT)
                        .answer_pings(false);
                let mut largest_piece = 0;
                tokio::time::timeout(TIMEOUT, async {
                    for frame in frames.iter() {
                        send(&mut endpoint, frame).await;
                        let echo = receive(&mut endpoint, &mut largest_piece).await;
                        assert!(
                            echo.as_ref() == Some(&content(frame)),
                            "seed {seed}: echo differs"
                        );
                    }
                    send(&mut endpoint, &Frame::ping()).await;
                    let pong = receive(&mut endpoint, &mut largest_piece).await.unwrap();
                    assert_eq!(pong, (2, 1, Vec::new(), None), "seed {seed}");
                })
                .await
                .expect("within the timeout");
                assert!(largest_piece <= 512, "pieces come from the 512-byte buffer");
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client");
    }
    shutdown.shutdown();
    tokio::time::timeout(TIMEOUT, serving)
        .await
        .unwrap()
        .unwrap();
}

/// Collects what a client receives.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Content>>>);

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(content(&frame));
    }
    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(content(&frame));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_as_a_server_of_a_tokio_client() {
    let frames = frames();
    for seed in 0..4 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The endpoint's side: echo each frame until the client leaves.
        let served = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 300];
            let mut endpoint = Endpoint::new(
                Adapter::new(stream, seed + 10),
                &mut buffer,
                Limits::DEFAULT,
            );
            let mut largest_piece = 0;
            let mut echoed = 0;
            while let Some((status, version, files, message)) =
                receive(&mut endpoint, &mut largest_piece).await
            {
                if status == 2 {
                    continue; // The endpoint answered it.
                }
                let mut builder = FrameBuilder::new(Status::new(status).unwrap()).version(version);
                for (name, data) in files {
                    builder = builder.file(name, data);
                }
                if let Some(message) = message {
                    builder = builder.message(message);
                }
                send(&mut endpoint, &builder.build()).await;
                echoed += 1;
            }
            (echoed, largest_piece)
        });
        let seen = Collect::default();
        let client = Client::connect(addr, seen.clone()).await.unwrap();
        let sender = client.sender();
        for frame in &frames {
            sender.send(frame.clone()).await.unwrap();
        }
        sender.send(Frame::ping()).await.unwrap();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while seen.0.lock().unwrap().len() < frames.len() + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: answers missing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.close();
        client.join().await.unwrap();
        let (echoed, largest_piece) = tokio::time::timeout(TIMEOUT, served)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, frames.len(), "seed {seed}");
        assert!(largest_piece <= 300, "pieces come from the 300-byte buffer");
        let seen = seen.0.lock().unwrap().clone();
        let expected: Vec<Content> = frames
            .iter()
            .map(content)
            .chain([(2, 1, Vec::new(), None)])
            .collect();
        assert!(
            seen == expected,
            "seed {seed}: the echoes and the pong differ"
        );
    }
}
