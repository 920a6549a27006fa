//! The cross-thread [`Sender`]: a bounded queue of frames for one connection.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use bytes::BytesMut;

use crate::frame::Frame;
use crate::session::error::SendError;
use crate::session::progress::{SendProgress, Tracker};
use crate::session::run::small_frame_cost;
use crate::session::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::entries::{Entries, Pending, Queued};
use super::queue::{Flush, Queue, Shared};

/// Pushes frames onto one connection from any thread or task, at any time.
///
/// `Clone + Send + Sync`. Frames wait in a queue bounded by their size in
/// memory (a file on disk counts as 64 KiB): [`send`](Self::send) waits
/// for room, [`try_send`](Self::try_send) refuses at once with
/// [`SendError::Full`], [`send_blocking`](Self::send_blocking) blocks a
/// thread. One frame is always accepted into an empty queue, however large.
/// Frames from one sender are sent in the order they were queued; frames
/// never interleave on the wire.
#[derive(Clone)]
pub struct Sender {
    pub(super) shared: Arc<Shared>,
}

impl core::fmt::Debug for Sender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let queue = self.shared.lock();
        f.debug_struct("Sender")
            .field("queued_frames", &queue.frames.len())
            .field("queued_bytes", &queue.cost)
            .field("capacity", &queue.capacity)
            .field("closed", &queue.closed)
            .finish()
    }
}

impl Drop for Sender {
    /// Frames this handle fed are not left waiting for a flush that will
    /// never come.
    fn drop(&mut self) {
        self.flush();
    }
}

impl Sender {
    /// A sender whose queue holds up to `capacity` bytes of frames.
    fn new(capacity: usize) -> Sender {
        Sender {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    frames: Entries::default(),
                    cost: 0,
                    capacity,
                    closed: false,
                    close_requested: false,
                    driver: None,
                    driver_parked: true,
                    flush_requested: false,
                    unwritten: Vec::new(),
                    refused: Vec::new(),
                    waiting: Vec::new(),
                    blocked_threads: 0,
                }),
                room: Condvar::new(),
            }),
        }
    }

    /// Queues `frame` if there is room now.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when the queue is at its bound,
    /// [`SendError::Closed`] when the connection is gone, and
    /// [`SendError::Invalid`] / [`SendError::File`] for a frame that cannot
    /// be sent. The frame comes back in each.
    pub fn try_send(&self, frame: Frame) -> Result<(), SendError> {
        let pending = Pending::new(frame)?;
        let mut queue = self.shared.lock();
        match queue.try_push(pending, Flush::Now) {
            Ok(()) => Ok(()),
            Err(outgoing) if queue.closed => Err(SendError::Closed(outgoing.into_frame())),
            Err(outgoing) => Err(SendError::Full(outgoing.into_frame())),
        }
    }

    /// Queues `frame`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), except that it waits instead of
    /// returning [`SendError::Full`].
    ///
    /// # Cancel safety
    ///
    /// The frame is queued in one step, when the future completes: a
    /// future dropped before then (in a `select!` branch that lost, say)
    /// queued nothing, and the frame is dropped with it; never half a
    /// frame. Once it completed, the frame is sent in order, or handed back
    /// by [`take_unsent`](Self::take_unsent) if the connection ends first.
    pub fn send(&self, frame: Frame) -> SendFuture<'_> {
        SendFuture {
            sender: self,
            frame: Some(Pending::new(frame)),
            flush: Flush::Now,
        }
    }

    /// Queues `frame` as [`send`](Self::send) does, and returns a handle
    /// that watches its bytes leave: how many are written so far, and a
    /// future for "written whole to the stream".
    ///
    /// ```no_run
    /// # async fn run(sender: tej_core::Sender, big_iso: tej_core::File) -> Result<(), Box<dyn std::error::Error>> {
    /// // A file on disk (`tej_net::file::open("big.iso")`), say.
    /// let frame = tej_core::FrameBuilder::new(tej_core::Status::DEFAULT)
    ///     .add_file(big_iso)
    ///     .build();
    /// let progress = sender.send_tracked(frame).await?;
    /// // From any thread: progress.bytes_written() of progress.total().
    /// progress.written().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); the frame comes back in the error.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send): dropped before it completes, the frame was
    /// not queued (and is dropped with the future).
    pub async fn send_tracked(&self, frame: Frame) -> Result<SendProgress, SendError> {
        let (tracker, progress) = Tracker::new(&frame);
        SendFuture {
            sender: self,
            frame: Some(Pending::tracked(frame, tracker)),
            flush: Flush::Now,
        }
        .await?;
        Ok(progress)
    }

    /// [`send_tracked`](Self::send_tracked), blocking the thread while the
    /// queue is full. Not for the connection's own thread (a callback).
    ///
    /// # Errors
    ///
    /// As [`send_blocking`](Self::send_blocking).
    pub fn send_tracked_blocking(&self, frame: Frame) -> Result<SendProgress, SendError> {
        let (tracker, progress) = Tracker::new(&frame);
        let mut pending = Pending::tracked(frame, tracker)?;
        let mut queue = self.shared.lock();
        loop {
            match queue.try_push(pending, Flush::Now) {
                Ok(()) => return Ok(progress),
                Err(back) if queue.closed => return Err(SendError::Closed(back.into_frame())),
                Err(back) => pending = back,
            }
            queue = self.shared.wait_for_room(queue);
        }
    }

    /// Queues `frame` like [`send`](Self::send), without asking for it to
    /// be written at once: fed frames go out together, in large writes, when
    /// 256 KiB of them are queued (or half the queue's capacity, if smaller),
    /// at the next [`flush`](Self::flush) or `send`, when the connection
    /// closes, or when this handle is dropped. The sink's `feed`, for
    /// streams of many small frames.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn feed(&self, frame: Frame) -> SendFuture<'_> {
        SendFuture {
            sender: self,
            frame: Some(Pending::new(frame)),
            flush: Flush::Later,
        }
    }

    /// Queues `frame` like [`send_blocking`](Self::send_blocking), without
    /// asking for it to be written at once; see [`feed`](Self::feed).
    ///
    /// ```
    /// # fn stream(sender: &tej_core::Sender) -> Result<(), tej_core::SendError> {
    /// for n in 0..1000 {
    ///     sender.feed_blocking(tej_core::Frame::message(format!("tick {n}")))?;
    /// }
    /// sender.flush();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_blocking`](Self::send_blocking).
    pub fn feed_blocking(&self, frame: Frame) -> Result<(), SendError> {
        self.push_blocking(frame, Flush::Later)
    }

    /// Asks for every queued frame, fed ones included, to be written now.
    pub fn flush(&self) {
        let mut queue = self.shared.lock();
        if !queue.frames.is_empty() {
            queue.flush_requested = true;
            queue.wake_parked_driver();
        }
    }

    /// Queues `frame`, blocking this thread while the queue is full. Not for
    /// use inside an async task: use [`send`](Self::send) there.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_blocking(&self, frame: Frame) -> Result<(), SendError> {
        self.push_blocking(frame, Flush::Now)
    }

    fn push_blocking(&self, frame: Frame, flush: Flush) -> Result<(), SendError> {
        if let Some(cost) = small_frame_cost(&frame) {
            // Encoded straight from the caller's frame, which is dropped
            // after the lock is released: 7 % faster than moving it through
            // `Pending` and `try_push` (session bench, `sender_to_wire`).
            let mut queue = self.shared.lock();
            loop {
                if queue.closed {
                    drop(queue);
                    return Err(SendError::Closed(frame));
                }
                if queue.admits(cost) {
                    queue.frames.push_small(&frame, cost);
                    queue.pushed(cost, flush);
                    return Ok(());
                }
                queue = self.shared.wait_for_room(queue);
            }
        }
        let mut pending = Pending::new(frame)?;
        let mut queue = self.shared.lock();
        loop {
            match queue.try_push(pending, flush) {
                Ok(()) => return Ok(()),
                Err(back) if queue.closed => return Err(SendError::Closed(back.into_frame())),
                Err(back) => pending = back,
            }
            queue = self.shared.wait_for_room(queue);
        }
    }

    /// Asks the connection to close once what is queued has been sent.
    pub fn close(&self) {
        let mut queue = self.shared.lock();
        queue.close_requested = true;
        if let Some(driver) = &queue.driver {
            driver.wake_by_ref();
        }
    }

    /// Whether the connection is gone: every send now fails.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Bytes of frames waiting in the queue (not those already handed to
    /// the connection).
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().cost
    }

    /// The frames that never reached the peer whole, once the connection
    /// has ended: those it had taken but not finished writing, then those
    /// still queued, in the order they were sent. Empty while the connection
    /// is open. (Bytes written to the socket may still be lost with a
    /// failing connection; the protocol has no acknowledgements to tell.)
    pub fn take_unsent(&self) -> Vec<Frame> {
        let mut queue = self.shared.lock();
        if !queue.closed {
            return Vec::new();
        }
        queue.cost = 0;
        let mut frames = core::mem::take(&mut queue.unwritten);
        frames.extend(queue.frames.drain_frames());
        frames.append(&mut queue.refused);
        frames
    }
}

/// The queue's receiving face, held by the connection's session (as h2's
/// `UserPingsRx`): takes frames for the outbox, registers the driver's
/// waker, and shuts the queue when the connection ends. Knows nothing of
/// the session.
pub(crate) struct Receiver {
    sender: Sender,
}

impl Receiver {
    /// A queue holding up to `capacity` bytes of frames.
    pub(crate) fn new(capacity: usize) -> Receiver {
        Receiver {
            sender: Sender::new(capacity),
        }
    }

    /// A sending face of the queue.
    pub(crate) fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The driver's side, under one lock: registers `exchange.waker`, moves
    /// queued entries into `taken`, in order, while their costs fit
    /// `exchange.room` (into an empty outbox, the first is taken whatever
    /// its cost, so that a frame larger than the room still goes), wakes
    /// the senders waiting for room, and records whether the driver parks.
    /// Returns whether a close was asked.
    pub(crate) fn exchange(&self, exchange: Exchange<'_>, taken: &mut Vec<Queued>) -> bool {
        let mut queue = self.sender.shared.lock();
        if let Some(waker) = exchange.waker {
            match &queue.driver {
                Some(current) if current.will_wake(waker) => {}
                _ => queue.driver = Some(waker.clone()),
            }
        }
        let mut taken_cost = 0usize;
        let due = exchange.take_all || queue.is_due();
        while let Some(cost) = queue.frames.front_cost() {
            let fits = taken_cost.saturating_add(cost) <= exchange.room
                || (taken_cost == 0 && exchange.outbox_empty);
            if !due || exchange.room == 0 || !fits {
                break;
            }
            if let Some(queued) = queue.frames.pop_front() {
                taken_cost += cost;
                taken.push(queued);
            }
        }
        if queue.frames.is_empty() {
            queue.flush_requested = false;
        }
        queue.driver_parked =
            exchange.outbox_empty && taken_cost == 0 && (queue.frames.is_empty() || !due);
        if queue.driver_parked {
            // An idle connection keeps no batch buffers, on either side.
            queue.frames.release_buffers();
            *exchange.spare = None;
        } else {
            queue.frames.offer_spare(exchange.spare);
        }
        let close_requested = queue.close_requested;
        if taken_cost == 0 {
            return close_requested;
        }
        queue.cost -= taken_cost;
        for waiter in queue.waiting.drain(..) {
            waiter.wake();
        }
        let blocked = queue.blocked_threads > 0;
        drop(queue);
        if blocked {
            self.sender.shared.room.notify_all();
        }
        close_requested
    }

    /// The connection is gone: refuse further frames and release waiters.
    pub(crate) fn shut(&self) {
        self.shut_with_unwritten(Vec::new());
    }

    /// As [`shut`](Self::shut), keeping the frames the connection had taken
    /// but not finished writing for [`take_unsent`](Self::take_unsent).
    /// Closes the queue if nothing waits in it, under one lock, so that no
    /// frame can be accepted between the check and the close; false (and
    /// nothing changed) if frames wait.
    pub(crate) fn shut_if_empty(&self) -> bool {
        let queue = self.sender.shared.lock();
        if !queue.frames.is_empty() {
            return false;
        }
        self.shut_locked(queue, Vec::new());
        true
    }

    pub(crate) fn shut_with_unwritten(&self, unwritten: Vec<Frame>) {
        self.shut_locked(self.sender.shared.lock(), unwritten);
    }

    fn shut_locked(&self, mut queue: MutexGuard<'_, Queue>, unwritten: Vec<Frame>) {
        if !queue.closed {
            queue.unwritten = unwritten;
        }
        queue.closed = true;
        queue.driver = None;
        for waiter in queue.waiting.drain(..) {
            waiter.wake();
        }
        drop(queue);
        self.sender.shared.room.notify_all();
    }
}

/// What the driver's side brings to [`Sender::exchange`].
pub(crate) struct Exchange<'a> {
    /// The waker to wake when the driver is parked and a frame arrives.
    pub(crate) waker: Option<&'a Waker>,
    /// Cost of entries the outbox can take now; 0 takes nothing. An entry
    /// that does not fit waits until it does, or until the outbox is empty.
    pub(crate) room: usize,
    /// Whether the outbox is empty: with nothing taken, the driver parks.
    pub(crate) outbox_empty: bool,
    /// Take fed frames too, as a flush would (the session is closing).
    pub(crate) take_all: bool,
    /// A buffer the outbox has finished with, for the queue's next run.
    pub(crate) spare: &'a mut Option<BytesMut>,
}

/// The future of [`Sender::send`] and [`Sender::feed`]. Cancel-safe: see
/// [`Sender::send`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a> {
    sender: &'a Sender,
    frame: Option<Result<Pending, SendError>>,
    flush: Flush,
}

impl core::fmt::Debug for SendFuture<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendFuture")
            .field("done", &self.frame.is_none())
            .finish()
    }
}

impl Future for SendFuture<'_> {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pending = match self.frame.take() {
            Some(Ok(pending)) => pending,
            Some(Err(error)) => return Poll::Ready(Err(error)),
            None => return Poll::Ready(Ok(())),
        };
        let mut queue = self.sender.shared.lock();
        match queue.try_push(pending, self.flush) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(back) if queue.closed => Poll::Ready(Err(SendError::Closed(back.into_frame()))),
            Err(back) => {
                queue.wake_when_room(cx.waker());
                drop(queue);
                self.frame = Some(Ok(back));
                Poll::Pending
            }
        }
    }
}
