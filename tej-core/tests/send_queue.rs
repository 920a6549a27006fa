//! The `Sender`'s queue as a session's driver sees it: when the driver is
//! woken, when fed frames are taken, how small frames encoded at send time
//! reach the peer and come back, and which frames a failed connection hands
//! back.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use tej_core::{
    Connection, DisconnectReason, Frame, FrameBuilder, FrameRef, Handler, Session, SessionConfig,
    Status,
};

/// Collects the frames it receives.
#[derive(Default, Clone)]
struct Collect(Arc<Mutex<Vec<Frame>>>);

impl Collect {
    fn frames(&self) -> Vec<Frame> {
        self.0.lock().unwrap().clone()
    }
}

impl Handler for Collect {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(frame);
    }

    fn ping_received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        self.0.lock().unwrap().push(frame);
    }

    fn disconnected(&mut self, _reason: DisconnectReason) {}
}

/// Counts how often the driver is woken.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl WakeCount {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn started<H: Handler>(handler: H, config: SessionConfig) -> Session<H> {
    let mut session = Session::new(handler, config);
    session.start(Duration::ZERO);
    session
}

/// Writes up to `limit` of what `from` offers into `to`; returns the count.
fn write_some<A: Handler, B: Handler>(
    from: &mut Session<A>,
    to: &mut Session<B>,
    limit: usize,
) -> usize {
    let mut slices: [&[u8]; 64] = [&[]; 64];
    let filled = from.transmit(&mut slices);
    let mut bytes: Vec<u8> = slices[..filled].concat();
    bytes.truncate(limit);
    let used = to.handle_input(&bytes, Duration::ZERO);
    from.advance(used);
    used
}

fn write_all<A: Handler, B: Handler>(from: &mut Session<A>, to: &mut Session<B>) {
    while from.wants_write() && write_some(from, to, usize::MAX) > 0 {}
}

/// One driver turn of `client`: take what is due from the queue, write it all.
fn drive(client: &mut Session<Collect>, server: &mut Session<Collect>) {
    client.poll_queue(Waker::noop());
    write_all(client, server);
}

/// A started session under `config` that collects what it receives.
fn collecting(config: SessionConfig) -> Session<Collect> {
    started(Collect::default(), config)
}

/// A receiving server, what it collects, and a client with `config`.
fn pair(config: SessionConfig) -> (Collect, Session<Collect>, Session<Collect>) {
    let collect = Collect::default();
    let server = started(collect.clone(), SessionConfig::default());
    (collect, server, collecting(config))
}

/// Small frames of every shape the fast path takes: no message, a ping,
/// another version, a message of one byte and one of the largest size.
fn small_frames() -> Vec<Frame> {
    vec![
        Frame::new(Status::DEFAULT),
        Frame::ping(),
        FrameBuilder::new(Status::MAX)
            .version(7)
            .message("seven")
            .build(),
        Frame::message("x"),
        Frame::message(vec![0xab; 4096]),
    ]
}

#[test]
fn small_frames_encoded_when_queued_arrive_exactly_as_sent() {
    let (collect, mut server, mut client) = pair(SessionConfig::default());
    let sender = client.sender();
    let mut sent = small_frames();
    // Interleaved with frames that keep the general path: a file, a large
    // message, an explicitly empty message.
    sent.insert(
        2,
        FrameBuilder::new(Status::DEFAULT).file("f", "data").build(),
    );
    sent.insert(4, Frame::message(vec![1; 4097]));
    sent.push(Frame::message(""));
    for frame in &sent {
        sender.send_blocking(frame.clone()).unwrap();
    }
    drive(&mut client, &mut server);
    let mut expected = sent;
    // The wire has no "empty message": it arrives as none.
    *expected.last_mut().unwrap() = Frame::new(Status::DEFAULT);
    assert_eq!(collect.frames(), expected);
}

#[test]
fn the_driver_is_woken_only_when_parked_and_something_is_due() {
    let wakes = Arc::new(WakeCount::default());
    let waker = Waker::from(wakes.clone());
    let mut server = collecting(SessionConfig::default());
    let mut client = collecting(SessionConfig::default());
    let sender = client.sender();

    // Nothing to do: the driver parks, and the first frame wakes it once.
    client.poll_queue(&waker);
    sender.send_blocking(Frame::message("one")).unwrap();
    sender.send_blocking(Frame::message("two")).unwrap();
    assert_eq!(wakes.get(), 1, "one wake for frames queued while parked");

    // A driver with bytes to write comes back by itself: no wake.
    client.poll_queue(&waker);
    assert!(client.wants_write());
    sender.send_blocking(Frame::message("three")).unwrap();
    assert_eq!(wakes.get(), 1, "no wake while the driver is busy");
    write_all(&mut client, &mut server);
    client.poll_queue(&waker);
    write_all(&mut client, &mut server);
    assert!(!client.wants_write());

    // Parked again: a fed frame does not wake it, a flush does.
    client.poll_queue(&waker);
    sender.feed_blocking(Frame::message("fed")).unwrap();
    assert_eq!(wakes.get(), 1, "a fed frame waits");
    sender.flush();
    assert_eq!(wakes.get(), 2, "a flush wakes the parked driver");
}

#[test]
fn fed_frames_wait_for_a_flush_a_batch_a_send_a_drop_or_a_close() {
    // The batch threshold is half the queue's capacity when that is smaller
    // than the default batch: 2,048 bytes here.
    let (collect, mut server, mut client) =
        pair(SessionConfig::default().send_queue_capacity(4096));
    let sender = client.sender();

    sender.feed_blocking(Frame::message("a")).unwrap();
    sender.feed_blocking(Frame::message("b")).unwrap();
    drive(&mut client, &mut server);
    assert!(collect.frames().is_empty(), "fed frames wait");
    assert!(sender.queued_bytes() > 0);
    sender.flush();
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), 2, "a flush takes them");

    sender.feed_blocking(Frame::message("c")).unwrap();
    sender.send_blocking(Frame::message("d")).unwrap();
    drive(&mut client, &mut server);
    assert_eq!(
        collect.frames().len(),
        4,
        "a send takes the fed ones before it"
    );

    let other = sender.clone();
    other.feed_blocking(Frame::message("e")).unwrap();
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), 4);
    drop(other);
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), 5, "dropping a handle flushes");

    // 2,048 bytes of fed frames are taken without a flush.
    let frame = Frame::message(vec![b'f'; 100]);
    let per_batch = 2048usize.div_ceil(frame.encoded_len() as usize);
    for _ in 0..per_batch - 1 {
        sender.feed_blocking(frame.clone()).unwrap();
    }
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), 5, "below the batch, they wait");
    sender.feed_blocking(frame.clone()).unwrap();
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), 5 + per_batch, "a batch goes");

    sender.feed_blocking(Frame::message("last")).unwrap();
    sender.close();
    drive(&mut client, &mut server);
    assert!(client.is_closed());
    assert_eq!(
        collect.frames().last(),
        Some(&Frame::message("last")),
        "closing flushes"
    );
    let expected: Vec<Frame> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(Frame::message)
        .chain(std::iter::repeat_n(frame, per_batch))
        .chain([Frame::message("last")])
        .collect();
    assert_eq!(collect.frames(), expected, "in the order they were sent");
}

#[test]
fn frames_a_failed_connection_never_finished_writing_come_back_in_order() {
    let (collect, mut server, mut client) = pair(SessionConfig::default());
    let sender = client.sender();
    let small = small_frames();
    let large = FrameBuilder::new(Status::DEFAULT)
        .file("big.bin", vec![9; 10_000])
        .message("with a file")
        .build();
    let mut sent = vec![Frame::message("written whole")];
    sent.extend(small.iter().cloned());
    sent.push(large);
    sent.extend(small.iter().cloned());
    for frame in &sent[..sent.len() - 2] {
        sender.send_blocking(frame.clone()).unwrap();
    }
    client.poll_queue(Waker::noop());
    // The first frame is written whole, the second only in part.
    let first = sent[0].encoded_len() as usize;
    assert_eq!(write_some(&mut client, &mut server, first + 5), first + 5);
    assert_eq!(collect.frames(), vec![sent[0].clone()]);
    // Two more frames wait in the queue, never taken.
    for frame in &sent[sent.len() - 2..] {
        sender.send_blocking(frame.clone()).unwrap();
    }
    client.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
    assert_eq!(
        sender.take_unsent(),
        sent[1..].to_vec(),
        "the frame cut part-way, those taken but not written and those still queued"
    );
}

#[test]
fn buffered_frames_arrive_in_order_with_other_frames_between() {
    let (collect, mut server, mut client) = pair(SessionConfig::default());
    let mut buffered = client.sender().buffered();
    let mut sent = Vec::new();
    for i in 0..3000u32 {
        let frame = if i % 1000 == 999 {
            FrameBuilder::new(Status::DEFAULT)
                .file(format!("{i}.bin"), vec![1; 5000])
                .build()
        } else {
            Frame::message(i.to_be_bytes().to_vec())
        };
        sent.push(frame.clone());
        buffered.feed_blocking(frame).unwrap();
        drive(&mut client, &mut server);
    }
    buffered.flush_blocking();
    assert_eq!(buffered.buffered_bytes(), 0);
    drive(&mut client, &mut server);
    assert_eq!(collect.frames(), sent);
}

#[test]
fn borrowed_frames_are_batched_in_order_and_come_back_owned_once_refused() {
    let (collect, mut server, mut client) = pair(SessionConfig::default());
    let sender = client.sender();
    let mut buffered = sender.buffered();
    let long = vec![b'l'; 5000];
    let files = [tej_core::FileRef::new("a.bin", b"abc")];
    let status = Status::new(7).unwrap();
    let borrowed = [
        FrameRef::message(b"small"),
        FrameRef::new(status, &[], None),
        FrameRef::new(Status::DEFAULT, &[], Some(b"")),
        // Too long to batch, and with files: both go as owned copies.
        FrameRef::message(&long),
        FrameRef::new(status, &files, Some(b"with a file")),
        FrameRef::message(b"after"),
    ];
    for frame in borrowed {
        buffered.feed_ref_blocking(frame).unwrap();
    }
    assert_eq!(
        buffered.buffered_bytes(),
        18 + 5,
        "small frames after an owned one start a new batch"
    );
    buffered.flush_blocking();
    drive(&mut client, &mut server);
    let expected: Vec<Frame> = borrowed.into_iter().map(Frame::from).collect();
    assert_eq!(
        expected[2],
        Frame::new(Status::DEFAULT),
        "empty is no message"
    );
    assert_eq!(collect.frames(), expected);
    for (frame, sent) in expected.iter().zip(borrowed) {
        let mut wire = vec![0; sent.encoded_len() as usize];
        sent.encode_into(&mut wire).unwrap();
        assert_eq!(frame.encode_to_vec().unwrap(), wire, "the same bytes");
    }

    client.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
    // Batched, then refused with its batch when the long one is fed.
    buffered
        .feed_ref_blocking(FrameRef::message(b"late"))
        .unwrap();
    match buffered.feed_ref_blocking(FrameRef::message(&long)) {
        Err(tej_core::SendError::Closed(back)) => assert_eq!(back, Frame::message(long.clone())),
        other => panic!("{other:?}"),
    }
    // A small one that must wait for the queue comes back at once.
    match sender
        .buffered()
        .feed_ref_blocking(FrameRef::message(b"refused"))
    {
        Err(tej_core::SendError::Closed(back)) => assert_eq!(back, Frame::message("refused")),
        other => panic!("{other:?}"),
    }
    assert_eq!(sender.take_unsent(), [Frame::message("late")]);
}

#[test]
fn a_buffered_batch_is_handed_over_when_full_on_flush_and_on_drop() {
    // A queue of 4,096 bytes makes batches of 4,096 bytes.
    let (collect, mut server, mut client) =
        pair(SessionConfig::default().send_queue_capacity(4096));
    let sender = client.sender();
    let mut buffered = sender.buffered();
    let frame = Frame::message(vec![b'b'; 100]);
    let per_batch = 4096 / frame.encoded_len() as usize;
    for _ in 0..per_batch {
        buffered.feed_blocking(frame.clone()).unwrap();
    }
    assert_eq!(
        sender.queued_bytes(),
        0,
        "a batch that is not full stays here"
    );
    assert_eq!(
        buffered.buffered_bytes(),
        per_batch * frame.encoded_len() as usize
    );
    buffered.feed_blocking(frame.clone()).unwrap();
    assert_eq!(
        sender.queued_bytes(),
        per_batch * frame.encoded_len() as usize,
        "a full batch is handed over"
    );
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), per_batch);

    buffered.flush_blocking();
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), per_batch + 1, "flushed");

    buffered.feed_blocking(Frame::message("dropped")).unwrap();
    drop(buffered);
    drive(&mut client, &mut server);
    assert_eq!(
        collect.frames().last(),
        Some(&Frame::message("dropped")),
        "dropping the handle hands its batch over"
    );
}

#[test]
fn a_buffered_sender_waits_for_room_as_a_task() {
    let (collect, mut server, mut client) =
        pair(SessionConfig::default().send_queue_capacity(4096));
    let mut buffered = client.sender().buffered();
    let frames: Vec<Frame> = (0..200u32)
        .map(|i| Frame::message(vec![i as u8; 60]))
        .collect();
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let mut pending_polls = 0;
    for frame in &frames {
        let mut feed = std::pin::pin!(buffered.feed(frame.clone()));
        loop {
            match feed.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => break result.unwrap(),
                std::task::Poll::Pending => {
                    // The queue is full: the connection's driver makes room.
                    pending_polls += 1;
                    drive(&mut client, &mut server);
                }
            }
        }
    }
    let mut flush = std::pin::pin!(buffered.flush());
    while flush.as_mut().poll(&mut cx).is_pending() {
        drive(&mut client, &mut server);
    }
    drive(&mut client, &mut server);
    assert!(pending_polls > 0, "the queue filled at least once");
    assert_eq!(collect.frames(), frames);
}

#[test]
fn a_cancelled_feed_or_flush_loses_no_frame_fed_before() {
    // Found by the session_ops fuzz target: the batch waited inside the
    // future, so dropping a pending feed or flush dropped its frames.
    let (collect, mut server, mut client) = pair(SessionConfig::default().send_queue_capacity(19));
    let sender = client.sender();
    let mut buffered = sender.buffered();
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let mut feed = Box::pin(buffered.feed(Frame::message("one")));
    assert!(feed.as_mut().poll(&mut cx).is_ready(), "batched");
    drop(feed);
    sender.try_send(Frame::message("queued")).unwrap();
    // The queue is over its capacity: handing "one" over waits; cancelled.
    let mut feed = Box::pin(buffered.feed(Frame::message("two")));
    assert!(feed.as_mut().poll(&mut cx).is_pending());
    drop(feed);
    let mut flush = Box::pin(buffered.flush());
    assert!(flush.as_mut().poll(&mut cx).is_pending());
    drop(flush);
    assert!(buffered.buffered_bytes() > 0, "\"one\" is still batched");
    drop(buffered);
    drive(&mut client, &mut server);
    assert_eq!(
        collect.frames(),
        [Frame::message("queued"), Frame::message("one")]
    );
}

#[test]
fn frames_batched_after_the_connection_ended_come_back() {
    let mut client = collecting(SessionConfig::default().send_queue_capacity(4096));
    let sender = client.sender();
    let mut buffered = sender.buffered();
    buffered.feed_blocking(Frame::message("before")).unwrap();
    buffered.flush_blocking();
    client.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
    // Batched here, the frames are refused only when their batch is handed over.
    let mut fed = Vec::new();
    let refused = loop {
        let frame = Frame::message(format!("after {}", fed.len()));
        match buffered.feed_blocking(frame.clone()) {
            Ok(()) => fed.push(frame),
            Err(tej_core::SendError::Closed(back)) => break back,
            Err(other) => panic!("{other}"),
        }
    };
    assert!(!fed.is_empty());
    assert_eq!(refused, Frame::message(format!("after {}", fed.len())));
    buffered.feed_blocking(Frame::message("last")).unwrap();
    drop(buffered);
    let mut expected = vec![Frame::message("before")];
    expected.extend(fed);
    expected.push(Frame::message("last"));
    assert_eq!(sender.take_unsent(), expected);
}

#[test]
fn every_waiter_of_a_tracked_frame_is_woken() {
    let mut client = collecting(SessionConfig::default());
    let sender = client.sender();
    let frame = FrameBuilder::new(Status::DEFAULT)
        .file("a.bin", vec![1u8; 1000])
        .build();
    let progress = sender.send_tracked_blocking(frame).unwrap();
    let clone = progress.clone();
    // Two tasks wait, one on the handle and one on a clone; a third polls
    // twice with the same waker (registered once).
    let counts: Vec<Arc<WakeCount>> = (0..3).map(|_| Arc::default()).collect();
    let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
    let mut first = std::pin::pin!(progress.written());
    let mut second = std::pin::pin!(clone.written());
    let mut third = std::pin::pin!(progress.written());
    let poll = |future: std::pin::Pin<&mut tej_core::Written<'_>>, waker: &Waker| {
        future.poll(&mut std::task::Context::from_waker(waker))
    };
    assert!(poll(first.as_mut(), &wakers[0]).is_pending());
    assert!(poll(second.as_mut(), &wakers[1]).is_pending());
    assert!(poll(third.as_mut(), &wakers[2]).is_pending());
    assert!(poll(third.as_mut(), &wakers[2]).is_pending());
    client.poll_queue(Waker::noop());
    let mut server = collecting(SessionConfig::default());
    write_all(&mut client, &mut server);
    let woken: Vec<usize> = counts.iter().map(|c| c.get()).collect();
    assert_eq!(woken, [1, 1, 1], "each waiter woken once");
    for future in [first, second, third] {
        assert!(matches!(
            poll(future, Waker::noop()),
            std::task::Poll::Ready(Ok(()))
        ));
    }
}

#[test]
fn the_outbox_takes_from_the_queue_only_what_fits_under_its_high_water() {
    let mut client = collecting(SessionConfig::default().outbox_high_water(1000));
    let sender = client.sender();
    let frame = |n: u8| {
        FrameBuilder::new(Status::DEFAULT)
            .file("f", vec![n; 900])
            .build()
    };
    sender.send_blocking(frame(1)).unwrap();
    client.poll_queue(Waker::noop());
    let first = client.queued_bytes();
    assert_eq!(first, frame(1).encoded_len(), "an empty outbox takes it");
    sender.send_blocking(frame(2)).unwrap();
    client.poll_queue(Waker::noop());
    assert_eq!(
        client.queued_bytes(),
        first,
        "a frame over the room waits in the queue while the outbox is not empty"
    );
    assert!(sender.queued_bytes() > 0);
    // Written out, the outbox is empty again: the second frame goes.
    let collect = Collect::default();
    let mut server = started(collect.clone(), SessionConfig::default());
    write_all(&mut client, &mut server);
    client.poll_queue(Waker::noop());
    write_all(&mut client, &mut server);
    assert_eq!(collect.frames(), [frame(1), frame(2)]);
}

#[test]
fn handles_made_and_dropped_in_a_loop_keep_the_queue_bounded() {
    // Each dropped handle hands its batch over past the bound; the next
    // handle's first frame waits until the queue is back within it, so
    // the queue never holds more than the bound and one batch.
    let capacity = 4096;
    let (collect, mut server, mut client) =
        pair(SessionConfig::default().send_queue_capacity(capacity));
    let sender = client.sender();
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let (mut accepted, mut waited) = (0, 0);
    for n in 0..200u32 {
        let mut buffered = sender.buffered();
        for _ in 0..8 {
            let frame = Frame::message(vec![n as u8; 400]);
            let mut feed = Box::pin(buffered.feed(frame));
            match feed.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => {
                    result.unwrap();
                    accepted += 1;
                }
                std::task::Poll::Pending => {
                    waited += 1;
                    break;
                }
            }
        }
        drop(buffered);
        assert!(
            sender.queued_bytes() <= 2 * capacity,
            "{} bytes queued after {n} handles, over the bound and one batch",
            sender.queued_bytes()
        );
    }
    assert!(accepted >= 8, "the first handles were served");
    assert!(waited > 100, "later handles waited for room");
    // The connection takes what was queued: every accepted frame arrives.
    drive(&mut client, &mut server);
    assert_eq!(collect.frames().len(), accepted);
}

#[test]
fn a_batch_fills_to_the_byte_before_it_is_handed_over() {
    let frame = Frame::message(vec![b'x'; 100]);
    let cost = frame.encoded_len() as usize;
    let client = collecting(SessionConfig::default().send_queue_capacity(8 * cost));
    let sender = client.sender();
    let mut buffered = sender.buffered();
    for _ in 0..8 {
        buffered.feed_blocking(frame.clone()).unwrap();
    }
    assert_eq!(buffered.buffered_bytes(), 8 * cost, "exactly full, kept");
    assert_eq!(sender.queued_bytes(), 0);
    buffered.feed_blocking(frame.clone()).unwrap();
    assert_eq!(sender.queued_bytes(), 8 * cost, "the ninth hands it over");
    assert_eq!(buffered.buffered_bytes(), cost);
}

#[test]
fn a_new_handle_on_an_ended_connection_refuses_its_first_frame_at_once() {
    let mut client = collecting(SessionConfig::default());
    let sender = client.sender();
    client.handle_io_error(std::io::ErrorKind::ConnectionReset.into());
    let mut buffered = sender.buffered();
    match buffered.feed_blocking(Frame::message("late")) {
        Err(tej_core::SendError::Closed(frame)) => assert_eq!(frame, Frame::message("late")),
        other => panic!("{other:?}"),
    }
    assert_eq!(buffered.buffered_bytes(), 0);
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let mut feed = Box::pin(buffered.feed(Frame::message("late too")));
    assert!(matches!(
        feed.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(tej_core::SendError::Closed(_)))
    ));
}
