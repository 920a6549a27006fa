//! The cross-thread [`Sender`]: a bounded queue of frames for one connection.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::frame::Frame;
use crate::session::handler::SendError;
use crate::session::outgoing::OutgoingFrame;

struct Queue {
    frames: VecDeque<(OutgoingFrame, usize)>,
    /// Sum of the queued frames' memory costs.
    cost: usize,
    capacity: usize,
    /// The connection is gone: nothing more is accepted.
    closed: bool,
    close_requested: bool,
    /// The connection's driver, woken when the queue stops being empty.
    driver: Option<Waker>,
    /// Async senders waiting for room.
    waiting: Vec<Waker>,
    /// Threads blocked in `send_blocking`, so that the condvar is signalled
    /// only when someone waits on it.
    blocked_threads: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic in another sender cannot leave the queue inconsistent:
        // every update is made whole under the lock.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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
    shared: Arc<Shared>,
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

impl Sender {
    /// A sender whose queue holds up to `capacity` bytes of frames.
    pub(crate) fn new(capacity: usize) -> Sender {
        Sender {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    frames: VecDeque::new(),
                    cost: 0,
                    capacity,
                    closed: false,
                    close_requested: false,
                    driver: None,
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
        let outgoing = prepare(frame)?;
        let mut queue = self.shared.lock();
        match queue.try_push(outgoing) {
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
    pub fn send(&self, frame: Frame) -> SendFuture<'_> {
        SendFuture {
            sender: self,
            frame: Some(prepare(frame)),
        }
    }

    /// Queues `frame`, blocking this thread while the queue is full. Not for
    /// use inside an async task: use [`send`](Self::send) there.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_blocking(&self, frame: Frame) -> Result<(), SendError> {
        let mut outgoing = prepare(frame)?;
        let mut queue = self.shared.lock();
        loop {
            match queue.try_push(outgoing) {
                Ok(()) => return Ok(()),
                Err(back) if queue.closed => return Err(SendError::Closed(back.into_frame())),
                Err(back) => outgoing = back,
            }
            queue.blocked_threads += 1;
            queue = self
                .shared
                .room
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            queue.blocked_threads -= 1;
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

    /// The frames still queued when the connection ended, which were never
    /// sent. Empty while the connection is open.
    pub fn take_unsent(&self) -> Vec<Frame> {
        let mut queue = self.shared.lock();
        if !queue.closed {
            return Vec::new();
        }
        queue.cost = 0;
        queue
            .frames
            .drain(..)
            .map(|(frame, _)| frame.into_frame())
            .collect()
    }

    /// Wakes `waker` whenever the queue stops being empty or a close is asked.
    pub(crate) fn register_driver(&self, waker: &Waker) {
        let mut queue = self.shared.lock();
        match &queue.driver {
            Some(current) if current.will_wake(waker) => {}
            _ => queue.driver = Some(waker.clone()),
        }
    }

    /// Hands queued frames to `take`, in order, until their costs reach
    /// `room` (the first frame is always taken), under one lock; then wakes
    /// the senders waiting for room, once.
    pub(crate) fn pop_into(&self, room: usize, mut take: impl FnMut(OutgoingFrame)) {
        let mut queue = self.shared.lock();
        let mut taken = 0usize;
        while let Some(&(_, cost)) = queue.frames.front() {
            if taken > 0 && taken.saturating_add(cost) > room {
                break;
            }
            if let Some((frame, cost)) = queue.frames.pop_front() {
                taken += cost;
                take(frame);
            }
        }
        if taken == 0 {
            return;
        }
        queue.cost -= taken;
        for waiter in queue.waiting.drain(..) {
            waiter.wake();
        }
        let blocked = queue.blocked_threads > 0;
        drop(queue);
        if blocked {
            self.shared.room.notify_all();
        }
    }

    /// Whether the connection's side should start closing.
    pub(crate) fn close_requested(&self) -> bool {
        self.shared.lock().close_requested
    }

    /// The connection is gone: refuse further frames and release waiters.
    pub(crate) fn shut(&self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        queue.driver = None;
        for waiter in queue.waiting.drain(..) {
            waiter.wake();
        }
        drop(queue);
        self.shared.room.notify_all();
    }
}

impl Queue {
    fn try_push(&mut self, frame: OutgoingFrame) -> Result<(), OutgoingFrame> {
        let cost = frame.memory_cost();
        let fits = self.frames.is_empty() || self.cost.saturating_add(cost) <= self.capacity;
        if self.closed || !fits {
            return Err(frame);
        }
        let was_empty = self.frames.is_empty();
        self.frames.push_back((frame, cost));
        self.cost += cost;
        // The driver drains until the queue is empty or its outbox is full,
        // so only the empty-to-busy transition needs a wake-up.
        if was_empty {
            if let Some(driver) = &self.driver {
                driver.wake_by_ref();
            }
        }
        Ok(())
    }
}

fn prepare(frame: Frame) -> Result<OutgoingFrame, SendError> {
    OutgoingFrame::prepare(frame).map_err(|(error, frame)| SendError::from_prepare(error, frame))
}

/// The future of [`Sender::send`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a> {
    sender: &'a Sender,
    frame: Option<Result<OutgoingFrame, SendError>>,
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
        let outgoing = match self.frame.take() {
            Some(Ok(outgoing)) => outgoing,
            Some(Err(error)) => return Poll::Ready(Err(error)),
            None => return Poll::Ready(Ok(())),
        };
        let mut queue = self.sender.shared.lock();
        match queue.try_push(outgoing) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(back) if queue.closed => Poll::Ready(Err(SendError::Closed(back.into_frame()))),
            Err(back) => {
                if !queue
                    .waiting
                    .iter()
                    .any(|waiter| waiter.will_wake(cx.waker()))
                {
                    queue.waiting.push(cx.waker().clone());
                }
                drop(queue);
                self.frame = Some(Ok(back));
                Poll::Pending
            }
        }
    }
}
