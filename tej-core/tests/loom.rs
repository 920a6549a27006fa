//! The cross-thread send queue under loom: every interleaving of the
//! sending threads' and the connection's driver's locks, waits and wakes,
//! up to loom's preemption bound. Checked in each: no lost wake-up (loom
//! reports a thread or task left waiting for ever as a deadlock), no frame
//! lost or duplicated, and frames in the order they were sent.
//!
//! Runs only with loom's cfg, which puts the queue on loom's locks
//! (`src/session/sync.rs`):
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p tej-core --release --test loom
//! ```
//!
//! The driver is a loop as `tej_net::drive::Drive` runs it: take from the
//! queue with the task's waker ([`Session::poll_queue`]), write everything,
//! and wait to be woken when there is nothing to do.
#![cfg(loom)]

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use loom::future::block_on;
use loom::thread;
use tej_core::{
    Frame, FrameBuilder, Handler, NotWritten, SendError, Sender, Session, SessionConfig, Status,
};

/// A handler that does nothing: the models watch the bytes the session writes.
struct Quiet;

impl Handler for Quiet {}

fn started(config: SessionConfig) -> Session<Quiet> {
    let mut session = Session::new(Quiet, config);
    session.start(std::time::Duration::ZERO);
    session
}

/// A started session under `config`, and a sender of it.
fn started_with_sender(config: SessionConfig) -> (Session<Quiet>, Sender) {
    let session = started(config);
    let sender = session.sender();
    (session, sender)
}

/// Sends each of `sent`, in order, with `send`: the frames refused because
/// the connection had ended.
fn send_each(sent: &[Frame], mut send: impl FnMut(Frame) -> Result<(), SendError>) -> Vec<Frame> {
    let mut refused = Vec::new();
    for frame in sent {
        match send(frame.clone()) {
            Ok(()) => {}
            Err(SendError::Closed(back)) => refused.push(back),
            Err(other) => panic!("{other}"),
        }
    }
    refused
}

/// A small frame, queued encoded in a run.
fn small(n: u8) -> Frame {
    Frame::message(vec![n])
}

/// A frame with a file, queued as a frame of its own.
fn with_file(n: u8) -> Frame {
    FrameBuilder::new(Status::DEFAULT)
        .file("f", vec![n; 40])
        .build()
}

/// Writes what the session has to write into `wire`, `limit` bytes at most.
fn write_out(session: &mut Session<Quiet>, wire: &mut Vec<u8>, limit: usize) {
    let start = wire.len();
    while session.wants_write() && wire.len() - start < limit {
        let mut slices: [&[u8]; 8] = [&[]; 8];
        let filled = session.transmit(&mut slices);
        let before = wire.len();
        for slice in &slices[..filled] {
            let room = limit - (wire.len() - start);
            wire.extend_from_slice(&slice[..slice.len().min(room)]);
        }
        let written = wire.len() - before;
        session.advance(written);
    }
}

/// The connection's driver: takes from the queue and writes until `done`,
/// parking in between. A frame queued or a close asked without the driver
/// being woken leaves it parked for ever, which loom reports.
fn drive_until(
    session: &mut Session<Quiet>,
    wire: &mut Vec<u8>,
    mut done: impl FnMut(&Session<Quiet>, &[u8]) -> bool,
) {
    block_on(std::future::poll_fn(|cx| {
        loop {
            session.poll_queue(cx.waker());
            if !session.wants_write() {
                break;
            }
            write_out(session, wire, usize::MAX);
        }
        if done(session, wire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

/// A queue with room for one small frame: the second waits for room.
fn one_frame_queue() -> SessionConfig {
    SessionConfig::default().send_queue_capacity(small(0).encoded_len() as usize)
}

/// A sender fills the queue from another thread (blocking, then as a task
/// waiting for room) while the driver takes: all arrive, in order.
#[test]
fn frames_pushed_from_another_thread_all_arrive_in_order() {
    loom::model(|| {
        let (mut session, sender) = started_with_sender(one_frame_queue());
        let sent = [small(1), small(2), with_file(3)];
        let thread = thread::spawn({
            let sent = sent.clone();
            move || {
                sender.send_blocking(sent[0].clone()).unwrap();
                // The queue holds one frame: these wait for the driver,
                // blocked on the condvar, then as a task for a wake-up.
                sender.send_blocking(sent[1].clone()).unwrap();
                block_on(sender.send(sent[2].clone())).unwrap();
            }
        });
        let mut wire = Vec::new();
        drive_until(&mut session, &mut wire, |_, wire| {
            common::whole_frames(wire).0.len() == sent.len()
        });
        thread.join().unwrap();
        assert_eq!(common::whole_frames(&wire).0, sent);
    });
}

/// A sender queues frames and asks to close: every frame queued before the
/// close goes out, then the session closes, whatever the interleaving.
#[test]
fn a_close_from_another_thread_flushes_what_was_queued_first() {
    loom::model(|| {
        let (mut session, sender) = started_with_sender(SessionConfig::default());
        let sent = [small(1), with_file(2)];
        let thread = thread::spawn({
            let sent = sent.clone();
            move || {
                for frame in &sent {
                    sender.feed_blocking(frame.clone()).unwrap();
                }
                sender.close();
                sender
            }
        });
        let mut wire = Vec::new();
        drive_until(&mut session, &mut wire, |session, _| session.is_closed());
        let sender = thread.join().unwrap();
        assert_eq!(common::whole_frames(&wire).0, sent);
        assert_eq!(sender.take_unsent(), Vec::<Frame>::new());
    });
}

/// The connection fails part-way (an I/O error, or the session dropped)
/// while a sender pushes: each frame is delivered whole, handed back by
/// `take_unsent`, or refused to the sender; exactly once, in order. A
/// sender blocked for room is released.
#[test]
fn a_connection_ending_loses_and_duplicates_no_frame() {
    for drop_session in [false, true] {
        loom::model(move || {
            let (mut session, sender) = started_with_sender(one_frame_queue());
            let sent = [small(1), with_file(2), small(3)];
            let thread = thread::spawn({
                let sent = sent.clone();
                move || {
                    let refused = send_each(&sent, |frame| sender.send_blocking(frame));
                    (sender, refused)
                }
            });
            // One turn of the driver, half of what it took written.
            let mut wire = Vec::new();
            session.poll_queue(std::task::Waker::noop());
            let offered: usize = {
                let mut slices: [&[u8]; 8] = [&[]; 8];
                let filled = session.transmit(&mut slices);
                slices[..filled].iter().map(|slice| slice.len()).sum()
            };
            write_out(&mut session, &mut wire, offered / 2);
            if drop_session {
                drop(session);
            } else {
                session.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
                assert!(session.is_closed());
            }
            let (sender, refused) = thread.join().unwrap();
            let mut accounted = common::whole_frames(&wire).0;
            accounted.extend(sender.take_unsent());
            accounted.extend(refused);
            assert_eq!(accounted, sent);
        });
    }
}

/// Several tasks await one tracked frame (on the handle and on a clone)
/// while the driver writes it: each is woken, each sees the outcome.
#[test]
fn every_waiter_of_a_tracked_frame_is_woken() {
    for fail in [false, true] {
        loom::model(move || {
            let (mut session, sender) = started_with_sender(SessionConfig::default());
            let progress = sender.send_tracked_blocking(with_file(1)).unwrap();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let progress = progress.clone();
                    thread::spawn(move || block_on(progress.written()))
                })
                .collect();
            let mut wire = Vec::new();
            session.poll_queue(std::task::Waker::noop());
            if fail {
                write_out(&mut session, &mut wire, 10);
                session.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
            } else {
                write_out(&mut session, &mut wire, usize::MAX);
            }
            let expected = if fail {
                Err(NotWritten {
                    written: 10,
                    total: progress.total(),
                })
            } else {
                Ok(())
            };
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), expected);
            }
            assert_eq!(progress.outcome(), Some(expected));
        });
    }
}

/// A `Written` future polled, then dropped before the end, while another
/// task waits: the other is still woken, and the dropped one's waker is
/// not kept.
#[test]
fn a_waiter_given_up_on_does_not_strand_the_others() {
    loom::model(|| {
        let (mut session, sender) = started_with_sender(SessionConfig::default());
        let progress = sender.send_tracked_blocking(with_file(1)).unwrap();
        let waiter = thread::spawn({
            let progress = progress.clone();
            move || block_on(progress.written())
        });
        {
            let mut given_up = pin!(progress.written());
            let waker = std::task::Waker::noop();
            assert!(given_up
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
        }
        let mut wire = Vec::new();
        session.poll_queue(std::task::Waker::noop());
        write_out(&mut session, &mut wire, usize::MAX);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
}

/// A buffered sender flushes its batch while another thread closes the
/// connection: the batch is written before the close, or handed back by
/// `take_unsent`; never lost, never both, and the flush never hangs.
#[test]
fn a_buffered_flush_against_a_close() {
    loom::model(|| {
        let (mut session, sender) = started_with_sender(SessionConfig::default());
        let sent = [small(1), small(2)];
        let feeder = thread::spawn({
            let mut buffered = sender.buffered();
            let sent = sent.clone();
            move || {
                // A handle's first frame is refused at once if the
                // connection has already ended, and so is every one after.
                let refused = send_each(&sent, |frame| buffered.feed_blocking(frame));
                buffered.flush_blocking();
                refused
            }
        });
        let closer = thread::spawn({
            let sender = sender.clone();
            move || sender.close()
        });
        let mut wire = Vec::new();
        drive_until(&mut session, &mut wire, |session, _| session.is_closed());
        let refused = feeder.join().unwrap();
        closer.join().unwrap();
        let mut accounted = common::whole_frames(&wire).0;
        accounted.extend(sender.take_unsent());
        accounted.extend(refused);
        assert_eq!(accounted, sent);
    });
}

/// Another thread queues a frame while a local close flushes: it is
/// written, or refused at once; never accepted and then handed back
/// unsent, since the close ends only once the queue is empty, checked and
/// closed under one lock.
#[test]
fn a_frame_queued_during_a_local_close_is_written_or_refused() {
    loom::model(|| {
        let (mut session, sender) = started_with_sender(SessionConfig::default());
        let pusher = thread::spawn({
            let sender = sender.clone();
            move || sender.try_send(small(1)).is_ok()
        });
        session.close();
        let mut wire = Vec::new();
        drive_until(&mut session, &mut wire, |session, _| session.is_closed());
        let accepted = pusher.join().unwrap();
        let written = common::whole_frames(&wire).0;
        assert_eq!(written, if accepted { vec![small(1)] } else { vec![] });
        assert!(sender.take_unsent().is_empty(), "a frame came back unsent");
    });
}
