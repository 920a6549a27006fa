//! What a session tells about the frame it is receiving, step by step:
//! [`Session::receiving_bytes`] (the memory bound is checked with it),
//! [`Session::body_remaining`], reading on past the high water until the
//! frame ends, and a shutdown that waits for a frame whose header has
//! only begun to arrive.

use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use tej_core::{
    Connection, DisconnectReason, Frame, FrameBuilder, Handler, Session, SessionConfig, Status,
};

/// Records the frames received and whether `disconnected` ran.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<(Vec<Frame>, bool)>>);

impl Handler for Log {
    fn connected(&mut self, _conn: &mut Connection<'_>) {}
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().0.push(frame);
    }
    fn disconnected(&mut self, _reason: DisconnectReason) {
        self.0.lock().unwrap().1 = true;
    }
}

impl Log {
    fn frames(&self) -> usize {
        self.0.lock().unwrap().0.len()
    }
    fn disconnected(&self) -> bool {
        self.0.lock().unwrap().1
    }
}

fn session(config: SessionConfig) -> (Session<Log>, Log) {
    let log = Log::default();
    let mut session = Session::new(log.clone(), config);
    session.start(Duration::ZERO);
    (session, log)
}

#[test]
fn receiving_bytes_counts_names_bodies_and_the_message_so_far() {
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("ab", vec![1u8; 100])
        .file("cde", vec![2u8; 50])
        .message(vec![b'm'; 40])
        .build();
    let wire = frame.encode_to_vec().unwrap();
    let (mut session, log) = session(SessionConfig::default());
    let now = Duration::ZERO;
    assert_eq!(session.receiving_bytes(), 0);

    // Frame header 10; "ab": 2 + 2 + 8 + 100; "cde": 2 + 3 + 8, then 30 of
    // its 50 bytes.
    let first_file_end = 10 + 12 + 100;
    let into_second = first_file_end + 13 + 30;
    assert_eq!(session.handle_input(&wire[..into_second], now), into_second);
    assert_eq!(session.receiving_bytes(), 2 + 100 + 3 + 30);
    assert_eq!(session.body_remaining(), 20);

    // The rest of "cde", the message header and 15 bytes of the message.
    let message_at = wire.len() - 40;
    let into_message = message_at + 15;
    let rest = &wire[into_second..into_message];
    assert_eq!(session.handle_input(rest, now), rest.len());
    assert_eq!(session.receiving_bytes(), 2 + 100 + 3 + 50 + 15);
    assert_eq!(session.body_remaining(), 25);
    assert_eq!(log.frames(), 0);

    let rest = &wire[into_message..];
    assert_eq!(session.handle_input(rest, now), rest.len());
    assert_eq!(log.frames(), 1);
    assert_eq!(session.receiving_bytes(), 0);
    assert_eq!(session.body_remaining(), 0);
}

#[test]
fn a_frame_begun_is_read_to_its_end_past_the_high_water() {
    let (mut session, log) = session(SessionConfig::default().outbox_high_water(1));
    let now = Duration::ZERO;
    let wire = Frame::message("hello").encode_to_vec().unwrap();
    // Five bytes of the frame header: no event yet, but a frame has begun.
    assert_eq!(session.handle_input(&wire[..5], now), 5);
    // Now the outbox goes over the high water.
    session.sender().try_send(Frame::message("queued")).unwrap();
    session.poll_queue(Waker::noop());
    assert!(session.queued_bytes() > 1);
    assert!(session.wants_read(), "the frame begun is read to its end");
    assert_eq!(session.handle_input(&wire[5..], now), wire.len() - 5);
    assert_eq!(log.frames(), 1);
    // At the boundary, over the high water: no more input.
    assert!(!session.wants_read());
    assert_eq!(session.handle_input(&wire, now), 0);
}

#[test]
fn shutdown_waits_for_a_frame_whose_header_has_begun() {
    let (mut session, log) = session(SessionConfig::default());
    let now = Duration::ZERO;
    let wire = Frame::message("last").encode_to_vec().unwrap();
    assert_eq!(session.handle_input(&wire[..5], now), 5);
    session.shutdown();
    assert!(session.is_open(), "open until the frame ends");
    assert!(session.wants_read());
    assert_eq!(session.handle_input(&wire[5..], now), wire.len() - 5);
    assert_eq!(log.frames(), 1);
    // The frame delivered, the session closes: nothing left to write.
    assert!(!session.is_open());
    assert!(session.is_closed());
    assert!(log.disconnected());
}
