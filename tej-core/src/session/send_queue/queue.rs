//! The queue under one lock that [`Sender`](super::Sender),
//! [`BufferedSender`](super::BufferedSender) and the session's `Receiver`
//! share: what is queued, its bound, who waits for room, and whether the
//! driver is parked. Below both faces; imports neither.

use alloc::vec::Vec;
use core::task::{Context, Poll, Waker};
use std::sync::PoisonError;

use bytes::BytesMut;

use crate::frame::Frame;
use crate::session::run::{decode_run, RUN_LEN};
use crate::session::sync::{Condvar, Mutex, MutexGuard};

use super::entries::{Entries, Pending, Run};

pub(super) struct Queue {
    pub(super) frames: Entries,
    /// Sum of the queued frames' memory costs.
    pub(super) cost: usize,
    pub(super) capacity: usize,
    /// The connection is gone: nothing more is accepted.
    pub(super) closed: bool,
    pub(super) close_requested: bool,
    /// The connection's driver, woken when a frame arrives while it is parked.
    pub(super) driver: Option<Waker>,
    /// The driver found nothing to do and will not look at the queue again
    /// unless woken. While it is busy writing it comes back by itself, so
    /// frames queued then cost no wake-up.
    pub(super) driver_parked: bool,
    /// A sender asked for what is queued to go out now; cleared once the
    /// driver has taken everything. Frames only fed wait for this, for a
    /// close, or for [`FEED_BATCH`] bytes to accumulate.
    pub(super) flush_requested: bool,
    /// Async senders waiting for room.
    pub(super) waiting: Vec<Waker>,
    /// Frames handed to the connection that it never finished writing,
    /// given back when it ended; they come before the queued ones.
    pub(super) unwritten: Vec<Frame>,
    /// Frames a buffered sender had batched when the connection had already
    /// ended: they come after the queued ones.
    pub(super) refused: Vec<Frame>,
    /// Threads blocked in `send_blocking`, so that the condvar is signalled
    /// only when someone waits on it.
    pub(super) blocked_threads: usize,
}

/// Bytes of fed frames that make the driver take them without a flush:
/// enough to fill a large write, few enough to keep the pipeline moving.
pub(super) const FEED_BATCH: usize = 256 * 1024;

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) room: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic in another sender cannot leave the queue inconsistent:
        // every update is made whole under the lock.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    /// The size of a buffered sender's batch: a run, or the whole queue if
    /// that is smaller.
    pub(crate) fn batch_len(&self) -> usize {
        RUN_LEN.min(self.lock().capacity).max(1)
    }

    /// Blocks until `ready` gives an answer, checking it again each time the
    /// driver makes room or the connection ends.
    fn block_until<T>(&self, mut ready: impl FnMut(&mut Queue) -> Option<T>) -> T {
        let mut queue = self.lock();
        loop {
            if let Some(answer) = ready(&mut queue) {
                return answer;
            }
            queue = self.wait_for_room(queue);
        }
    }

    /// [`block_until`](Self::block_until) for a task: `Pending` (the task
    /// woken when room is made) while `ready` has no answer.
    fn poll_until<T>(
        &self,
        cx: &mut Context<'_>,
        ready: impl FnOnce(&mut Queue) -> Option<T>,
    ) -> Poll<T> {
        let mut queue = self.lock();
        match ready(&mut queue) {
            Some(answer) => Poll::Ready(answer),
            None => {
                queue.wake_when_room(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Hands a batch of encoded small frames to the queue, waiting for room.
    pub(crate) fn push_run_blocking(&self, run: Run, next_len: usize) -> HandedOver {
        let mut slot = Some(run);
        self.block_until(|queue| queue.push_run(&mut slot, next_len))
    }

    /// As [`push_run_blocking`](Self::push_run_blocking), for a task.
    pub(crate) fn poll_push_run(
        &self,
        slot: &mut Option<Run>,
        next_len: usize,
        cx: &mut Context<'_>,
    ) -> Poll<HandedOver> {
        self.poll_until(cx, |queue| queue.push_run(slot, next_len))
    }

    /// Waits until the queue is within its bound, so that a batch started
    /// now and handed over by a drop passes the bound by at most itself;
    /// false if the connection has ended.
    pub(crate) fn wait_within_bound_blocking(&self) -> bool {
        self.block_until(|queue| queue.within_bound())
    }

    /// As [`wait_within_bound_blocking`](Self::wait_within_bound_blocking), for a task.
    pub(crate) fn poll_within_bound(&self, cx: &mut Context<'_>) -> Poll<bool> {
        self.poll_until(cx, |queue| queue.within_bound())
    }

    /// Hands a batch over at once, beyond the queue's bound if need be (by
    /// at most one batch): for a buffered sender being dropped.
    pub(crate) fn push_run_now(&self, run: Run) {
        let mut queue = self.lock();
        if queue.closed {
            queue.refuse_run(run);
        } else {
            queue.enqueue_run(run, Flush::Now);
        }
    }

    /// Blocks until the driver takes frames or the connection ends.
    pub(super) fn wait_for_room<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
    ) -> MutexGuard<'a, Queue> {
        queue.blocked_threads += 1;
        let mut queue = self
            .room
            .wait(queue)
            .unwrap_or_else(PoisonError::into_inner);
        queue.blocked_threads -= 1;
        queue
    }
}

impl Queue {
    /// Queues the batch in `slot` if it fits, or refuses it for good if the
    /// connection has ended; `None` (the batch left in `slot`) while full.
    pub(super) fn push_run(
        &mut self,
        slot: &mut Option<Run>,
        next_len: usize,
    ) -> Option<HandedOver> {
        let Some(run) = slot.take() else {
            return Some(HandedOver::Queued(BytesMut::new()));
        };
        if self.closed {
            self.refuse_run(run);
            return Some(HandedOver::Refused);
        }
        if !self.admits(run.bytes.len()) {
            *slot = Some(run);
            return None;
        }
        self.enqueue_run(run, Flush::Later);
        Some(HandedOver::Queued(self.frames.take_spare(next_len)))
    }

    pub(super) fn enqueue_run(&mut self, run: Run, flush: Flush) {
        let cost = run.bytes.len();
        self.frames.push_run(run, cost);
        self.pushed(cost, flush);
    }

    /// `Some(false)` once the connection has ended, `Some(true)` while the
    /// queue is within its bound, `None` while dropped batches hold it over.
    fn within_bound(&self) -> Option<bool> {
        if self.closed {
            Some(false)
        } else if self.cost <= self.capacity {
            Some(true)
        } else {
            None
        }
    }

    /// Registers a task waiting for room, once.
    pub(super) fn wake_when_room(&mut self, waker: &Waker) {
        if !self.waiting.iter().any(|waiter| waiter.will_wake(waker)) {
            self.waiting.push(waker.clone());
        }
    }

    /// Keeps a batch's frames for `take_unsent`: the connection has ended.
    pub(super) fn refuse_run(&mut self, run: Run) {
        decode_run(&run.bytes, &mut self.refused);
    }

    #[inline]
    pub(super) fn try_push(&mut self, pending: Pending, flush: Flush) -> Result<(), Pending> {
        let cost = pending.cost();
        if self.closed || !self.admits(cost) {
            return Err(pending);
        }
        self.frames.push(pending, cost);
        self.pushed(cost, flush);
        Ok(())
    }

    /// Whether a frame costing `cost` fits now. One frame always fits an
    /// empty queue, however large.
    #[inline]
    pub(super) fn admits(&self, cost: usize) -> bool {
        self.frames.is_empty() || self.cost.saturating_add(cost) <= self.capacity
    }

    /// Accounts for a frame just queued and wakes the driver if it is due.
    #[inline]
    pub(super) fn pushed(&mut self, cost: usize, flush: Flush) {
        self.cost += cost;
        if flush == Flush::Now {
            self.flush_requested = true;
        }
        if self.is_due() {
            self.wake_parked_driver();
        }
    }

    /// Whether the driver should take what is queued now.
    pub(super) fn is_due(&self) -> bool {
        self.flush_requested
            || self.close_requested
            || self.cost >= FEED_BATCH.min(self.capacity / 2).max(1)
    }

    pub(super) fn wake_parked_driver(&mut self) {
        if self.driver_parked {
            if let Some(driver) = &self.driver {
                driver.wake_by_ref();
                self.driver_parked = false;
            }
        }
    }
}

/// What became of a buffered sender's batch.
pub(crate) enum HandedOver {
    /// In the queue; here is a buffer for the next batch.
    Queued(BytesMut),
    /// The connection has ended: the frames wait for `take_unsent`.
    Refused,
}

/// Whether a queued frame asks for the queue to be written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// `send`: write it as soon as possible.
    Now,
    /// `feed`: it may wait for more.
    Later,
}
