//! The drive loop and the session's memory bound, without I/O: a scripted
//! peer stands in for the socket, and the clock is a number.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tej_core::{
    Connection, DisconnectReason, FileTarget, Frame, FrameBuilder, FrameTimeout, Handler, Session,
    SessionConfig, Status,
};
use tej_net::drive::{Drive, Step, Timer, Transport};
use tej_net::ReadBuffer;

/// The smallest frame: no files, no message.
const EMPTY_FRAME: [u8; 18] = [0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const REPLY_LEN: usize = 64 * 1024;

/// A peer on the other end of the stream: sends `input` as fast as it is
/// read; takes what is written only while `reading`.
#[derive(Default)]
struct Peer {
    input: Vec<u8>,
    offset: usize,
    /// End the stream once `input` is sent.
    eof: bool,
    reading: bool,
    /// Bytes it takes before it stops reading, if it stops.
    takes: Option<usize>,
    written: Vec<u8>,
    reads: usize,
    /// Flushes that succeeded.
    flushes: usize,
    shutdown_blocks: bool,
    shut_down: bool,
    /// Flushes and shutdowns asked for, whatever came of them.
    closing_calls: usize,
    /// Errors the next reads, flushes and shutdowns fail with, in order,
    /// before they go on as usual.
    read_errors: VecDeque<io::ErrorKind>,
    flush_errors: VecDeque<io::ErrorKind>,
    shutdown_errors: VecDeque<io::ErrorKind>,
}

impl Peer {
    /// A peer that sends `input` and takes everything written.
    fn reading(input: Vec<u8>) -> Peer {
        Peer {
            input,
            reading: true,
            ..Peer::default()
        }
    }

    /// A drive that retries a flush or shutdown without end would hang
    /// the test: fail instead.
    fn count_closing_call(&mut self) {
        self.closing_calls += 1;
        assert!(
            self.closing_calls < 1_000_000,
            "flushed or shut down in a loop"
        );
    }
}

impl Transport for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.read_errors.pop_front() {
            return Err(kind.into());
        }
        let left = self.input.len() - self.offset;
        if left == 0 {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = left.min(buf.len());
        buf[..n].copy_from_slice(&self.input[self.offset..self.offset + n]);
        self.offset += n;
        self.reads += 1;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let room = self.takes.unwrap_or(usize::MAX);
        if !self.reading || room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(room - n);
            self.written.extend_from_slice(&buf[..take]);
            n += take;
        }
        if let Some(takes) = &mut self.takes {
            *takes -= n;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.count_closing_call();
        if let Some(kind) = self.flush_errors.pop_front() {
            return Err(kind.into());
        }
        self.flushes += 1;
        Ok(())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.count_closing_call();
        if let Some(kind) = self.shutdown_errors.pop_front() {
            return Err(kind.into());
        }
        if self.shutdown_blocks {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.shut_down = true;
        Ok(())
    }
}

/// Answers every frame with a 64 KiB message; records how it ended.
#[derive(Clone, Default)]
struct Replier {
    received: Arc<Mutex<usize>>,
    ended: Arc<Mutex<Option<String>>>,
    /// Closes the connection once it has answered this frame (the first is 1).
    close_at: Option<usize>,
}

impl Handler for Replier {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        let mut received = self.received.lock().unwrap();
        *received += 1;
        conn.send(Frame::message(Bytes::from(vec![b'r'; REPLY_LEN])))
            .unwrap();
        if self.close_at == Some(*received) {
            conn.close();
        }
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        *self.ended.lock().unwrap() = Some(reason.to_string());
    }
}

fn frames(count: usize) -> Vec<u8> {
    EMPTY_FRAME.repeat(count)
}

/// A session, its drive and read buffer, and the transport standing in for
/// the socket: what the drive tests step together.
struct Rig<H: Handler, T: Transport = Peer> {
    session: Session<H>,
    drive: Drive,
    buffer: ReadBuffer,
    peer: T,
}

impl<H: Handler, T: Transport> Rig<H, T> {
    /// A fresh drive of `session` over `peer`, with a read buffer of
    /// `buffer_len` bytes.
    fn new(session: Session<H>, buffer_len: usize, peer: T) -> Self {
        Rig {
            session,
            drive: Drive::new(),
            buffer: ReadBuffer::new(buffer_len),
            peer,
        }
    }

    /// One step of the drive at `now`.
    fn step(&mut self, now: Duration) -> Step {
        self.drive.step(
            &mut self.session,
            &mut self.peer,
            &mut self.buffer,
            Waker::noop(),
            now,
        )
    }

    /// Steps until the drive waits or is done, at most 100,000 times.
    fn run(&mut self, now: Duration) -> Step {
        for _ in 0..100_000 {
            match self.step(now) {
                Step::Yield => continue,
                step => return step,
            }
        }
        panic!("the drive never settled");
    }
}

/// The bound the `Session` docs state for a connection whose handler
/// answers every frame with one reply of `reply` bytes, files in memory.
fn bound(config: &SessionConfig, reply: usize) -> usize {
    let encoded_reply = reply + 18;
    config.outbox_high_water + encoded_reply + config.send_queue_capacity
}

#[test]
fn a_peer_that_never_reads_cannot_grow_the_outbox_past_the_bound() {
    let config = SessionConfig::default();
    let handler = Replier::default();
    let received = handler.received.clone();
    // 20,000 empty frames (360 KB) eliciting 64 KiB each: 1.25 GiB of replies.
    let peer = Peer {
        input: frames(20_000),
        ..Peer::default()
    };
    let mut rig = Rig::new(
        Session::new(handler, config.clone()),
        config.read_buffer_len,
        peer,
    );

    let step = rig.run(Duration::ZERO);
    assert_eq!(step, Step::Pending, "waits for the peer to read");
    let outbox = rig.session.queued_bytes() as usize;
    assert!(
        outbox <= bound(&config, REPLY_LEN),
        "outbox {outbox} over the bound {}",
        bound(&config, REPLY_LEN)
    );
    assert!(
        outbox >= config.outbox_high_water,
        "it did fill to the mark"
    );
    assert!(rig.drive.unconsumed_len() <= config.read_buffer_len);
    assert!(rig.buffer.len() <= config.read_buffer_len);
    assert_eq!(
        rig.session.receiving_bytes(),
        0,
        "stopped at a frame boundary"
    );
    let answered = *received.lock().unwrap();
    assert_eq!(answered, config.outbox_high_water / (REPLY_LEN + 18) + 1);
    assert!(!rig.session.wants_read());

    // Waiting changes nothing: no read while the outbox is full.
    let reads = rig.peer.reads;
    assert_eq!(rig.run(Duration::ZERO), Step::Pending);
    assert_eq!(rig.peer.reads, reads);
    assert_eq!(*received.lock().unwrap(), answered);

    // The peer starts reading: every frame is answered, nothing is lost.
    rig.peer.reading = true;
    rig.peer.eof = true;
    assert_eq!(rig.run(Duration::ZERO), Step::Done);
    assert_eq!(*received.lock().unwrap(), 20_000);
    assert_eq!(rig.peer.written.len(), 20_000 * (REPLY_LEN + 18));
    assert!(
        rig.peer.shut_down,
        "the stream is shut down once the session ends"
    );
}

#[test]
fn handle_input_stops_at_the_frame_whose_replies_cross_the_high_water_mark() {
    let config = SessionConfig::default().outbox_high_water(200 * 1024);
    let handler = Replier::default();
    let received = handler.received.clone();
    let mut session = Session::new(handler, config);
    session.start(Duration::ZERO);
    let input = frames(100);
    let used = session.handle_input(&input, Duration::ZERO);
    // 64 KiB replies: the fourth crosses 200 KiB.
    assert_eq!(used, 4 * EMPTY_FRAME.len());
    assert_eq!(*received.lock().unwrap(), 4);
    assert!(!session.wants_read());
    assert_eq!(session.handle_input(&input[used..], Duration::ZERO), 0);
}

#[test]
fn a_frame_part_way_is_read_to_its_end_whatever_the_outbox_holds() {
    let config = SessionConfig::default().outbox_high_water(1024);
    let handler = Replier::default();
    let received = handler.received.clone();
    let mut session = Session::new(handler, config);
    session.start(Duration::ZERO);
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("a.bin", vec![7u8; 10_000])
        .build()
        .encode_to_vec()
        .unwrap();
    // The first frame's reply fills the outbox; the second frame has begun.
    let mut input = EMPTY_FRAME.to_vec();
    input.extend_from_slice(&frame[..100]);
    assert_eq!(session.handle_input(&input, Duration::ZERO), 18);
    assert!(!session.wants_read(), "stopped between frames");
    // Offered again after the reply is written, the second frame starts…
    drain(&mut session);
    assert_eq!(session.handle_input(&input[18..], Duration::ZERO), 100);
    // …and is read to its end even though nothing drains the outbox now.
    assert!(session.wants_read());
    assert_eq!(
        session.handle_input(&frame[100..], Duration::ZERO),
        frame.len() - 100
    );
    assert_eq!(*received.lock().unwrap(), 2);
    assert!(!session.wants_read());
}

/// Writes everything the session has queued to nowhere.
fn drain<H: Handler>(session: &mut Session<H>) {
    while session.wants_write() {
        let mut slices: [&[u8]; 16] = [&[]; 16];
        let filled = session.transmit(&mut slices);
        let len: usize = slices[..filled].iter().map(|slice| slice.len()).sum();
        session.advance(len);
    }
}

/// Records only how the connection ended.
#[derive(Clone, Default)]
struct Quiet {
    ended: Arc<Mutex<Option<DisconnectReason>>>,
    received: Arc<Mutex<Vec<Frame>>>,
}

impl Handler for Quiet {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.received.lock().unwrap().push(frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        *self.ended.lock().unwrap() = Some(reason);
    }
}

fn one_mib_file_frame() -> Vec<u8> {
    FrameBuilder::new(Status::DEFAULT)
        .file("big.bin", vec![1u8; 1 << 20])
        .build()
        .encode_to_vec()
        .unwrap()
}

#[test]
fn a_drip_below_the_minimum_rate_is_cut_by_the_frame_deadline() {
    let rule = FrameTimeout::new(Duration::from_secs(2), 1000);
    let config = SessionConfig::default()
        .frame_timeout(Some(rule))
        .idle_timeout(Some(Duration::from_secs(60)));
    let handler = Quiet::default();
    let ended = handler.ended.clone();
    let mut session = Session::new(handler, config);
    session.start(Duration::ZERO);
    let wire = one_mib_file_frame();
    // 100 bytes every second: well inside the idle timeout, below 1000 B/s.
    let mut now = Duration::from_secs(10);
    let mut sent = 0;
    while session.is_open() {
        let deadline = session.poll_timeout().unwrap_or(Duration::MAX);
        if deadline <= now {
            session.handle_timeout(now);
            continue;
        }
        sent += session.handle_input(&wire[sent..sent + 100], now);
        now += Duration::from_secs(1);
        assert!(now < Duration::from_secs(100), "the drip was never cut");
    }
    // 2 s plus 0.1 s earned per 100 bytes: cut after 3 seconds of drip.
    assert_eq!(sent, 300);
    assert!(matches!(
        *ended.lock().unwrap(),
        Some(DisconnectReason::FrameTimeout)
    ));
}

#[test]
fn a_fast_large_frame_earns_its_time_and_the_next_frame_starts_afresh() {
    let rule = FrameTimeout::new(Duration::from_secs(1), 1 << 20);
    let handler = Quiet::default();
    let received = handler.received.clone();
    let mut session = Session::new(handler, SessionConfig::default().frame_timeout(Some(rule)));
    session.start(Duration::ZERO);
    // 64 frames of 1 MiB, each taking 0.9 s: a 64 MiB transfer over a minute.
    let wire = one_mib_file_frame();
    let mut now = Duration::ZERO;
    for _ in 0..64 {
        for piece in wire.chunks(wire.len().div_ceil(9)) {
            now += Duration::from_millis(100);
            if session.poll_timeout().is_some_and(|due| due <= now) {
                session.handle_timeout(now);
            }
            assert_eq!(session.handle_input(piece, now), piece.len());
        }
        assert_eq!(session.poll_timeout(), None, "no deadline between frames");
    }
    assert!(session.is_open());
    assert_eq!(received.lock().unwrap().len(), 64);
}

#[test]
fn deadlines_saturate_instead_of_overflowing() {
    let config = SessionConfig::default()
        .idle_timeout(Some(Duration::MAX))
        .ping_interval(Some(Duration::MAX))
        .close_linger(Duration::MAX)
        .frame_timeout(Some(FrameTimeout::new(Duration::MAX, 1)));
    let mut session = Session::new(Quiet::default(), config);
    session.start(Duration::from_secs(5));
    session.handle_input(&EMPTY_FRAME[..5], Duration::from_secs(6));
    assert_eq!(session.poll_timeout(), Some(Duration::MAX));
    session.handle_timeout(Duration::from_secs(7));
    assert!(session.is_open());
    // Closing with a frame still to write arms the (saturated) linger.
    let sender = session.sender();
    sender.try_send(Frame::message("late")).unwrap();
    session.poll_queue(Waker::noop());
    session.close();
    assert!(session.is_closing());
    assert_eq!(session.poll_timeout(), Some(Duration::MAX));
    assert_eq!(
        FrameTimeout::new(Duration::ZERO, 0).deadline(Duration::from_secs(3), u64::MAX),
        Duration::from_secs(3),
        "a zero rate earns nothing"
    );
}

#[test]
fn the_drive_flushes_then_shuts_the_stream_down_within_the_linger() {
    let config = SessionConfig::default().close_linger(Duration::from_secs(5));
    let peer = Peer {
        shutdown_blocks: true,
        ..Peer::reading(Vec::new())
    };
    let mut rig = Rig::new(Session::new(Quiet::default(), config), 1024, peer);
    let sender = rig.session.sender();
    sender.try_send(Frame::message("bye")).unwrap();
    sender.close();
    let now = Duration::from_secs(1);
    assert_eq!(rig.run(now), Step::Pending);
    assert!(rig.session.is_closed());
    assert_eq!(
        rig.peer.written.len(),
        18 + 3,
        "the frame went out before the close"
    );
    assert!(rig.peer.flushes >= 1, "flushed after writing");
    assert!(
        rig.drive.wants_write(&rig.session),
        "waits to shut the stream down"
    );
    assert_eq!(
        rig.drive.poll_timeout(&rig.session),
        Some(Duration::from_secs(6))
    );
    // The stream never takes the shutdown: the linger ends it.
    rig.drive.timer_fired(Duration::from_secs(6));
    assert_eq!(rig.step(now), Step::Done);
    assert!(!rig.peer.shut_down);
}

#[test]
fn input_a_closing_session_leaves_is_dropped_not_kept() {
    /// Closes the connection on the first frame.
    struct CloseAtOnce;
    impl Handler for CloseAtOnce {
        fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
            conn.close();
        }
    }
    let session = Session::new(CloseAtOnce, SessionConfig::default());
    let mut rig = Rig::new(session, 64 * 1024, Peer::reading(frames(1000)));
    // Shut down; the rest of the peer's input is read and dropped (a close
    // with unread input would reset the connection), until its end.
    assert_eq!(rig.run(Duration::ZERO), Step::Pending);
    assert_eq!(rig.drive.unconsumed_len(), 0);
    assert!(rig.peer.shut_down);
    assert_eq!(
        rig.peer.offset,
        rig.peer.input.len(),
        "everything sent was drained"
    );
    rig.peer.eof = true;
    assert_eq!(rig.step(Duration::ZERO), Step::Done);
}

#[test]
fn a_graceful_close_waits_for_the_peer_s_end_of_stream_within_the_linger() {
    let config = SessionConfig::default().close_linger(Duration::from_secs(2));
    let session = Session::new(Quiet::default(), config);
    let mut rig = Rig::new(session, 1024, Peer::reading(Vec::new()));
    rig.session.sender().close();
    // Shut down, and nothing arrived yet: the peer may still be reading
    // what was sent, and closing now could reset the connection under it.
    assert_eq!(rig.run(Duration::from_secs(1)), Step::Pending);
    assert!(rig.peer.shut_down);
    assert_eq!(
        rig.drive.poll_timeout(&rig.session),
        Some(Duration::from_secs(3))
    );
    // Late input (a TLS server's session tickets) is read and dropped.
    rig.peer.input = frames(3);
    assert_eq!(rig.step(Duration::from_secs(2)), Step::Pending);
    assert_eq!(rig.peer.offset, rig.peer.input.len());
    // A peer that never closes its side: the linger ends the wait.
    rig.drive.timer_fired(Duration::from_secs(3));
    assert_eq!(rig.step(Duration::from_secs(3)), Step::Done);
}

#[test]
fn a_failed_session_s_close_does_not_wait_for_the_peer() {
    let config = SessionConfig::default().close_linger(Duration::from_secs(2));
    let session = Session::new(Quiet::default(), config);
    // A frame whose first byte lacks the status bit: a protocol error.
    let mut rig = Rig::new(session, 1024, Peer::reading(vec![0x05; 16]));
    // The stream is shut down and what arrived is dropped, but a peer that
    // broke the protocol is not waited for.
    assert_eq!(rig.run(Duration::from_secs(1)), Step::Done);
    assert!(rig.peer.shut_down);
    assert!(!rig.session.disconnect_reason().unwrap().is_graceful());
}

/// Records the size of every read the drive asks for.
struct ReadSizes {
    peer: Peer,
    asked: Vec<usize>,
}

impl Transport for ReadSizes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked.push(buf.len());
        self.peer.read(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.peer.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.peer.flush()
    }
    fn shutdown(&mut self) -> io::Result<()> {
        self.peer.shutdown()
    }
}

#[test]
fn a_large_body_is_read_in_bulk_pieces_never_past_its_end() {
    let config = SessionConfig::default();
    let body = 9 << 20;
    let mut input = FrameBuilder::new(Status::DEFAULT)
        .file("big.bin", vec![7u8; body])
        .build()
        .encode_to_vec()
        .unwrap();
    input.extend_from_slice(&frames(100));
    let transport = ReadSizes {
        peer: Peer::reading(input.clone()),
        asked: Vec::new(),
    };
    let handler = Replier::default();
    let received = handler.received.clone();
    let session = Session::new(handler, config.clone());
    let mut rig = Rig::new(session, config.read_buffer_len, transport);
    assert_eq!(rig.run(secs(1)), Step::Pending, "waits for more input");
    assert_eq!(*received.lock().unwrap(), 101);
    let asked = &rig.peer.asked;
    let largest = *asked.iter().max().unwrap();
    assert_eq!(
        largest, config.bulk_read_len,
        "reads grow to the bulk size: {asked:?}"
    );
    // The body ends 25 bytes in plus its length: some read ended exactly there.
    let body_end = 10 + 2 + 7 + 8 + body;
    let mut offset = 0;
    let mut ends = Vec::new();
    for &asked in asked {
        offset += asked.min(input.len() - offset);
        ends.push(offset);
    }
    assert!(ends.contains(&body_end), "no read crossed the body's end");
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn input_that_waited_for_its_turn_counts_before_a_passed_idle_deadline() {
    let config = SessionConfig::default().idle_timeout(Some(Duration::from_secs(1)));
    let handler = Replier::default();
    let received = handler.received.clone();
    let session = Session::new(handler, config);
    let mut rig = Rig::new(session, 64 * 1024, Peer::reading(Vec::new()));
    assert_eq!(rig.run(secs(0)), Step::Pending);
    // A frame arrived at 0.9 s, but the task only runs at 1.5 s: past the
    // idle deadline, with the input waiting.
    rig.peer.input.extend_from_slice(&EMPTY_FRAME);
    assert_eq!(rig.run(Duration::from_millis(1500)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 1);
    assert!(
        rig.session.is_open(),
        "the input counted before the deadline"
    );
}

#[test]
fn a_mutable_reference_is_the_transport_it_refers_to() {
    let mut peer = Peer::reading(b"abc".to_vec());
    let mut by_ref: &mut Peer = &mut peer;
    let mut buf = [0u8; 8];
    assert_eq!(Transport::read(&mut by_ref, &mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    let written = Transport::write_vectored(&mut by_ref, &[IoSlice::new(b"xy")]).unwrap();
    assert_eq!(written, 2);
    Transport::flush(&mut by_ref).unwrap();
    Transport::shutdown(&mut by_ref).unwrap();
    assert_eq!(peer.written, b"xy");
    assert_eq!(peer.flushes, 1);
    assert!(peer.shut_down);
}

#[test]
fn what_is_written_is_flushed_before_the_drive_waits() {
    let mut rig = Rig::new(
        Session::new(Replier::default(), SessionConfig::default()),
        1024,
        Peer::reading(frames(1)),
    );
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(rig.peer.written.len(), REPLY_LEN + 18);
    assert_eq!(rig.peer.flushes, 1, "flushed once the reply was written");
    assert!(
        !rig.drive.wants_write(&rig.session),
        "nothing to write, flush or close"
    );
}

#[test]
fn an_interrupted_flush_is_tried_again() {
    let peer = Peer {
        flush_errors: [io::ErrorKind::Interrupted].into(),
        ..Peer::reading(frames(1))
    };
    let mut rig = Rig::new(
        Session::new(Replier::default(), SessionConfig::default()),
        1024,
        peer,
    );
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(rig.peer.flushes, 1);
    assert!(!rig.drive.wants_write(&rig.session));
    assert!(rig.session.is_open());
}

/// A drive of `handler`'s session over a peer sending two frames whose
/// first read fails with `kind`.
fn failing_a_read<H: Handler>(handler: H, kind: io::ErrorKind) -> Rig<H> {
    let peer = Peer {
        read_errors: [kind].into(),
        ..Peer::reading(frames(2))
    };
    Rig::new(Session::new(handler, SessionConfig::default()), 1024, peer)
}

#[test]
fn an_interrupted_read_is_tried_again() {
    let handler = Replier::default();
    let received = handler.received.clone();
    let mut rig = failing_a_read(handler, io::ErrorKind::Interrupted);
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 2);
    assert!(rig.session.is_open());
}

#[test]
fn a_read_error_ends_the_session_and_the_stream_without_a_shutdown() {
    let handler = Quiet::default();
    let ended = handler.ended.clone();
    let mut rig = failing_a_read(handler, io::ErrorKind::ConnectionReset);
    assert_eq!(rig.run(secs(0)), Step::Done);
    assert!(matches!(
        *ended.lock().unwrap(),
        Some(DisconnectReason::Io(ref error)) if error.kind() == io::ErrorKind::ConnectionReset
    ));
    assert!(
        !rig.peer.shut_down,
        "a failed stream is dropped, not closed gracefully"
    );
    assert_eq!(rig.peer.offset, 0, "nothing read after the error");
}

/// A session closed by a `Sender`, over a peer that reads everything:
/// stepped at 1 s until it has shut the stream down and lingers (5 s).
fn closed_and_lingering(peer: Peer) -> Rig<Quiet> {
    let session = Session::new(Quiet::default(), SessionConfig::default());
    let mut rig = Rig::new(session, 1024, peer);
    rig.session.sender().close();
    assert_eq!(rig.run(secs(1)), Step::Pending);
    assert!(rig.peer.shut_down);
    assert_eq!(rig.drive.poll_timeout(&rig.session), Some(secs(6)));
    rig
}

#[test]
fn an_interrupted_shutdown_is_tried_again() {
    closed_and_lingering(Peer {
        shutdown_errors: [io::ErrorKind::Interrupted].into(),
        ..Peer::reading(Vec::new())
    });
}

#[test]
fn a_failed_shutdown_ends_the_close_at_once() {
    let peer = Peer {
        shutdown_errors: [io::ErrorKind::NotConnected].into(),
        ..Peer::reading(Vec::new())
    };
    let mut rig = Rig::new(
        Session::new(Quiet::default(), SessionConfig::default()),
        1024,
        peer,
    );
    rig.session.sender().close();
    assert_eq!(rig.run(secs(1)), Step::Done, "no wait for a gone peer");
    assert!(!rig.peer.shut_down);
}

#[test]
fn an_interrupted_read_while_lingering_is_tried_again() {
    let mut rig = closed_and_lingering(Peer::reading(Vec::new()));
    rig.peer.read_errors.push_back(io::ErrorKind::Interrupted);
    rig.peer.input = frames(3);
    assert_eq!(rig.step(secs(2)), Step::Pending, "still lingering");
    assert_eq!(rig.peer.offset, rig.peer.input.len(), "read and dropped");
}

#[test]
fn a_read_error_while_lingering_ends_the_close() {
    let mut rig = closed_and_lingering(Peer::reading(Vec::new()));
    rig.peer
        .read_errors
        .push_back(io::ErrorKind::ConnectionReset);
    assert_eq!(rig.step(secs(2)), Step::Done, "before the linger is over");
}

#[test]
fn a_stack_read_of_an_on_demand_buffer_brings_frames_and_the_end_of_stream() {
    let handler = Quiet::default();
    let received = handler.received.clone();
    let ended = handler.ended.clone();
    let peer = Peer {
        eof: true,
        ..Peer::reading(frames(2))
    };
    let config = SessionConfig::default();
    let buffer_len = config.read_buffer_len;
    let mut rig = Rig::new(Session::new(handler, config), buffer_len, peer);
    rig.buffer = ReadBuffer::on_demand(buffer_len);
    assert_eq!(rig.run(secs(0)), Step::Done);
    assert_eq!(received.lock().unwrap().len(), 2);
    assert!(matches!(
        *ended.lock().unwrap(),
        Some(DisconnectReason::PeerClosed)
    ));
}

#[test]
fn input_left_from_a_stack_read_is_kept_and_offered_again() {
    // Each reply crosses the mark: one frame at a time until the peer reads.
    let config = SessionConfig::default().outbox_high_water(1);
    let handler = Replier::default();
    let received = handler.received.clone();
    let peer = Peer {
        input: frames(10),
        ..Peer::default()
    };
    let mut rig = Rig::new(Session::new(handler, config), 0, peer);
    rig.buffer = ReadBuffer::on_demand(64 * 1024);
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 1);
    assert_eq!(rig.drive.unconsumed_len(), 9 * EMPTY_FRAME.len());
    assert!(rig.buffer.is_empty(), "180 bytes stay on the stack");
    assert!(
        rig.drive.wants_write(&rig.session),
        "the reply waits for the peer"
    );
    rig.peer.reading = true;
    rig.peer.eof = true;
    assert_eq!(rig.run(secs(0)), Step::Done);
    assert_eq!(*received.lock().unwrap(), 10);
    assert_eq!(rig.peer.written.len(), 10 * (REPLY_LEN + 18));
}

#[test]
fn input_a_closing_session_leaves_is_dropped_while_it_flushes() {
    for on_demand in [false, true] {
        let handler = Replier {
            close_at: Some(1),
            ..Replier::default()
        };
        let peer = Peer {
            input: frames(10),
            ..Peer::default()
        };
        let mut rig = Rig::new(Session::new(handler, SessionConfig::default()), 1024, peer);
        if on_demand {
            rig.buffer = ReadBuffer::on_demand(1024);
        }
        // The reply waits for a peer that does not read: the session is
        // closing, and the nine frames after the first are not for it.
        assert_eq!(rig.run(secs(0)), Step::Pending);
        assert!(rig.session.is_closing());
        assert_eq!(rig.drive.unconsumed_len(), 0, "on demand: {on_demand}");
    }
}

#[test]
fn input_kept_for_later_is_dropped_once_the_session_closes_on_it() {
    let config = SessionConfig::default().outbox_high_water(1);
    let handler = Replier {
        close_at: Some(2),
        ..Replier::default()
    };
    let received = handler.received.clone();
    let peer = Peer {
        input: frames(10),
        ..Peer::default()
    };
    let mut rig = Rig::new(Session::new(handler, config), 1024, peer);
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(rig.drive.unconsumed_len(), 9 * EMPTY_FRAME.len());
    // The peer takes the first reply only: the second frame, offered from
    // what was kept, closes the session, whose reply then waits.
    rig.peer.reading = true;
    rig.peer.takes = Some(REPLY_LEN + 18);
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 2);
    assert!(rig.session.is_closing());
    assert_eq!(rig.drive.unconsumed_len(), 0);
}

#[test]
fn an_on_demand_buffer_is_given_back_when_a_quiet_connection_would_block() {
    let handler = Quiet::default();
    let received = handler.received.clone();
    let config = SessionConfig::default();
    let mut rig = Rig::new(Session::new(handler, config), 0, Peer::reading(frames(100)));
    rig.buffer = ReadBuffer::on_demand(256 * 1024);
    // 1,800 bytes: the stack read comes back full and makes the buffer,
    // which a busy connection keeps when its next read would block.
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(received.lock().unwrap().len(), 100);
    assert_eq!(rig.buffer.len(), 16 * 1024);
    // A small read, then nothing: the buffer goes back.
    rig.peer.input.extend_from_slice(&EMPTY_FRAME);
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(received.lock().unwrap().len(), 101);
    assert!(rig.buffer.is_empty());
}

/// Takes as many frames as its room says, answering each with "ack". A
/// room that `flickers` is gone at every other ask, as one shared with
/// other consumers can be.
#[derive(Default)]
struct Rationed {
    room: Arc<Mutex<usize>>,
    received: Arc<Mutex<usize>>,
    flickers: bool,
    asks: usize,
}

impl Handler for Rationed {
    fn received(&mut self, conn: &mut Connection<'_>, _frame: Frame) {
        *self.received.lock().unwrap() += 1;
        let mut room = self.room.lock().unwrap();
        *room = room.saturating_sub(1);
        conn.send(Frame::message("ack")).unwrap();
    }

    fn poll_room(&mut self, _waker: &Waker) -> usize {
        self.asks += 1;
        if self.flickers && self.asks.is_multiple_of(2) {
            return 0;
        }
        *self.room.lock().unwrap()
    }
}

#[test]
fn input_kept_for_the_handler_s_room_is_offered_as_room_frees() {
    const ACK: usize = 18 + 3;
    let handler = Rationed::default();
    let room = handler.room.clone();
    let received = handler.received.clone();
    *room.lock().unwrap() = 3;
    let session = Session::new(handler, SessionConfig::default());
    let mut rig = Rig::new(session, 1024, Peer::reading(frames(10)));
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 3);
    assert_eq!(rig.drive.unconsumed_len(), 7 * EMPTY_FRAME.len());
    // Room for two more: taken from what was kept, and answered in the same step.
    *room.lock().unwrap() = 2;
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 5);
    assert_eq!(rig.peer.written.len(), 5 * ACK);
    // Room that is gone again by the time the session asks: nothing is
    // taken, and the drive waits instead of trying again at once.
    *room.lock().unwrap() = 5;
    rig.session.handler_mut().flickers = true;
    rig.session.handler_mut().asks = 0;
    assert_eq!(rig.step(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 5);
    // Steady again: the rest arrives, nothing lost.
    rig.session.handler_mut().flickers = false;
    assert_eq!(rig.run(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 10);
    assert_eq!(rig.peer.written.len(), 10 * ACK);
}

/// Keeps what it is written, shared.
#[derive(Clone, Default)]
struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends every file to a writer: a sink that may block, as a disk does.
#[derive(Default)]
struct ToWriter {
    writer: SharedWriter,
    received: Arc<Mutex<usize>>,
}

impl Handler for ToWriter {
    fn received(&mut self, _conn: &mut Connection<'_>, _frame: Frame) {
        *self.received.lock().unwrap() += 1;
    }
    fn file_target(&mut self, _name: &str, _size: u64, _index: usize) -> FileTarget {
        FileTarget::Writer(Box::new(self.writer.clone()))
    }
}

#[test]
fn the_drive_yields_when_file_io_begins_and_goes_on_in_the_next_step() {
    let handler = ToWriter::default();
    let stored = handler.writer.0.clone();
    let received = handler.received.clone();
    let wire = FrameBuilder::new(Status::DEFAULT)
        .file("a.bin", vec![7u8; 10_000])
        .build()
        .encode_to_vec()
        .unwrap();
    let session = Session::new(handler, SessionConfig::default());
    let mut rig = Rig::new(session, 64 * 1024, Peer::reading(wire));
    // The file's header chose a sink that blocks: a step of its own follows.
    assert_eq!(rig.step(secs(0)), Step::Yield);
    assert!(rig.session.does_file_io());
    // That step runs the file I/O through to the frame's end.
    assert_eq!(rig.step(secs(0)), Step::Pending);
    assert_eq!(*received.lock().unwrap(), 1);
    assert_eq!(stored.lock().unwrap().len(), 10_000);
    assert!(!rig.session.does_file_io());
}

/// A peer behind an async runtime's stream and timer; the timer fires
/// when its own clock reaches the deadline, whatever the adapter's says.
struct Timed {
    peer: Peer,
    armed: Vec<Duration>,
    clock: Duration,
    /// Times the drive asked whether the timer fired.
    polls: usize,
}

impl Transport for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.peer.read(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.peer.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.peer.flush()
    }
    fn shutdown(&mut self) -> io::Result<()> {
        self.peer.shutdown()
    }
}

impl Timer for Timed {
    fn arm(&mut self, deadline: Duration) {
        self.armed.push(deadline);
    }
    fn poll_expired(&mut self) -> bool {
        // A drive that runs a fired deadline and still finds it due would
        // loop here for ever: fail instead.
        self.polls += 1;
        assert!(self.polls < 100, "the timer is polled in a loop");
        self.armed.last().is_some_and(|&due| due <= self.clock)
    }
}

#[test]
fn poll_arms_the_timer_once_per_deadline_and_runs_what_is_due_when_it_fires() {
    let config = SessionConfig::default().idle_timeout(Some(secs(10)));
    let handler = Quiet::default();
    let ended = handler.ended.clone();
    let mut session = Session::new(handler, config);
    let mut drive = Drive::new();
    let mut buffer = ReadBuffer::new(1024);
    let mut io = Timed {
        peer: Peer::reading(Vec::new()),
        armed: Vec::new(),
        clock: secs(0),
        polls: 0,
    };
    // The adapter's clock stands still at 0 throughout.
    let mut poll = |session: &mut Session<Quiet>, io: &mut Timed| {
        drive.poll(session, io, &mut buffer, Waker::noop(), || secs(0))
    };
    assert_eq!(poll(&mut session, &mut io), Poll::Pending);
    assert_eq!(io.armed, [secs(10)], "armed for the idle deadline");
    // Woken with nothing new: the timer is armed already.
    assert_eq!(poll(&mut session, &mut io), Poll::Pending);
    assert_eq!(io.armed, [secs(10)]);
    assert!(session.is_open());
    // The timer fired: the idle deadline runs, and the connection ends.
    io.clock = secs(10);
    assert_eq!(poll(&mut session, &mut io), Poll::Ready(()));
    assert!(matches!(
        *ended.lock().unwrap(),
        Some(DisconnectReason::IdleTimeout)
    ));
    assert!(io.peer.shut_down);
}
