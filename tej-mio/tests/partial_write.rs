//! Frames far larger than the socket buffers, to readers that read slowly:
//! every write is partial, and not a byte may be lost or reordered.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tej_mio::{Client, Connection, Frame, FrameBuilder, Handler, Sender, SessionConfig, Status};
use tej_test_support::{
    handlers::{Collect, Events},
    mio::{join, Running},
    peer::{pattern, text, Peer, PATIENCE},
};

const LEN: usize = 16 << 20;

/// Sends a large frame on connect, and hands its sender to the test.
struct Flood(mpsc::Sender<Sender>);

impl Handler for Flood {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("big.bin", pattern(LEN, 42))
            .file("small.txt", &b"after the big one"[..])
            .message("flood")
            .build();
        conn.send(frame).unwrap();
        conn.send(Frame::message("second")).unwrap();
        self.0.send(conn.sender()).unwrap();
    }
}

#[test]
fn a_large_frame_reaches_a_slow_reader_intact() {
    let (handover, handed) = mpsc::channel();
    let server = Running::start(SessionConfig::default(), move || Flood(handover.clone()));
    let mut peer = Peer::connect(server.addr);
    let sender = handed.recv_timeout(PATIENCE).unwrap();
    // Queued from another thread while the flood is still being written:
    // it must come after it, whole.
    sender.send_blocking(Frame::message("third")).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    // 8 KiB at a time, resting after each read.
    let first = peer
        .recv_paced(8 * 1024, Duration::from_micros(200))
        .unwrap()
        .expect("the large frame");
    assert_eq!(text(&first), "flood");
    assert_eq!(first.files.len(), 2);
    assert_eq!(first.files[0].name, "big.bin");
    let data = first.files[0].data().unwrap();
    assert_eq!(data.len(), LEN);
    assert!(
        data[..] == pattern(LEN, 42)[..],
        "the large file arrived changed"
    );
    assert_eq!(&first.files[1].data().unwrap()[..], b"after the big one");
    assert_eq!(text(&peer.recv().unwrap().unwrap()), "second");
    assert_eq!(text(&peer.recv().unwrap().unwrap()), "third");
    eprintln!("16 MiB read slowly in {:?}", started.elapsed());
    drop(peer);
    server.stop();
}

#[test]
fn a_client_flushes_a_large_frame_to_a_slow_server_before_closing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut peer = Peer::new(stream);
        std::thread::sleep(Duration::from_millis(200));
        let mut frames = Vec::new();
        while let Some(frame) = peer
            .recv_paced(16 * 1024, Duration::from_micros(100))
            .unwrap()
        {
            frames.push(frame);
        }
        frames
    });
    let events = Events::default();
    let client = Client::connect(addr, Collect(events.clone())).unwrap();
    let sender = client.sender();
    let big = FrameBuilder::new(Status::new(9).unwrap())
        .file("big.bin", pattern(LEN, 7))
        .message("big")
        .build();
    sender.send_blocking(big.clone()).unwrap();
    for i in 0..50 {
        sender
            .send_blocking(Frame::message(format!("tail {i}")))
            .unwrap();
    }
    // Close after everything queued: all of it must still go out.
    client.close();
    join(client).unwrap();
    assert_eq!(events.snapshot(), vec!["disconnected: closed locally"]);

    let frames = reader.join().unwrap();
    assert_eq!(frames.len(), 51);
    assert!(frames[0] == big, "the large frame arrived changed");
    for (i, frame) in frames[1..].iter().enumerate() {
        assert_eq!(text(frame), format!("tail {i}"));
    }
}
