//! [`BufferedSender`]: small frames batched on the sending thread, as
//! `BufWriter` batches bytes.

use bytes::BytesMut;

use crate::encode::FrameRef;
use crate::frame::Frame;
use crate::session::error::SendError;
use crate::session::run::{encode_small_ref, small_frame_cost, small_ref_cost};

use super::entries::Run;
use super::queue::HandedOver;
use super::sender::Sender;

/// Feeds frames to one connection in batches: small frames (no files, a
/// message of at most 4 KiB) are encoded into a buffer of this handle's own,
/// with no lock and no wake-up per frame, and handed to the connection's
/// queue 64 KiB at a time (or the queue's capacity, if smaller). Other
/// frames go to the queue as [`Sender::feed`] would, after the batch.
///
/// For streams of many small frames from one thread or task; frames
/// borrowed from the caller ([`feed_ref`](Self::feed_ref),
/// [`feed_ref_blocking`](Self::feed_ref_blocking)) are encoded straight
/// into the batch, with no [`Frame`] built. Frames reach
/// the peer in the order they were fed; a batch is handed over when it is
/// full, at [`flush`](Self::flush) / [`flush_blocking`](Self::flush_blocking),
/// and when the handle is dropped (then beyond the queue's bound if need
/// be, by at most one batch, rather than blocking in `drop`; a new handle's
/// first frame waits until dropped batches have gone below the bound, so
/// the queue holds at most one batch more per handle alive). Frames fed
/// after the connection ended are refused when their batch is handed over:
/// the frame being fed then comes back in [`SendError::Closed`], the rest of
/// the batch from [`Sender::take_unsent`].
///
/// # Cancel safety
///
/// [`feed`](Self::feed) and [`flush`](Self::flush) may be cancelled (a
/// `select!`, a timeout) while they wait for room: the frames fed before
/// stay in the batch and go out with the next hand-over or the drop; the
/// frame passed to a cancelled `feed` was not taken.
///
/// ```no_run
/// # fn stream(sender: tej_core::Sender) -> Result<(), tej_core::SendError> {
/// let mut buffered = sender.buffered();
/// for n in 0..1_000_000u32 {
///     buffered.feed_ref_blocking(tej_core::FrameRef::message(&n.to_be_bytes()))?;
/// }
/// // Owned frames too, files and all.
/// buffered.feed_blocking(tej_core::Frame::message("done"))?;
/// buffered.flush_blocking();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BufferedSender {
    sender: Sender,
    batch: BytesMut,
    /// Frames encoded in `batch`.
    batch_frames: u64,
    batch_len: usize,
    /// The queue was seen within its bound since this handle was made
    /// (every hand-over sees it so), so this handle's batch may start.
    started: bool,
}

/// What a feed waits for before it takes its frame ([`BufferedSender::before_feed`]).
enum Wait {
    /// The queue within its bound (a new handle's first frame).
    WithinBound,
    /// The batch handed over.
    HandOver,
    /// Nothing: the frame fits in the batch.
    Nothing,
}

impl Sender {
    /// A handle that batches small frames on the caller's side, as
    /// `BufWriter` does bytes; see [`BufferedSender`].
    pub fn buffered(&self) -> BufferedSender {
        BufferedSender::new(self.clone())
    }
}

impl BufferedSender {
    pub(crate) fn new(sender: Sender) -> BufferedSender {
        let batch_len = sender.shared.batch_len();
        BufferedSender {
            sender,
            batch: BytesMut::new(),
            batch_frames: 0,
            batch_len,
            started: false,
        }
    }

    /// The connection's sender.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Bytes of frames batched here, not yet handed to the connection.
    pub fn buffered_bytes(&self) -> usize {
        self.batch.len()
    }

    /// Adds `frame` to the batch, handing the batch over first when `frame`
    /// does not fit, waiting while the connection's queue is full. Not for
    /// use inside an async task: use [`feed`](Self::feed) there.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when a batch is handed to a connection that has
    /// ended, and as [`Sender::feed_blocking`] for a frame that is not small.
    pub fn feed_blocking(&mut self, frame: Frame) -> Result<(), SendError> {
        let cost = small_frame_cost(&frame);
        let open = self.wait_blocking(cost);
        match self.batch_or_pass(frame, cost, open)? {
            Some(frame) => self.sender.feed_blocking(frame),
            None => Ok(()),
        }
    }

    /// As [`feed_blocking`](Self::feed_blocking), for a frame borrowed from
    /// the caller: a small one is encoded straight into the batch, with no
    /// [`Frame`] built or dropped (the fastest way to stream small
    /// messages); any other is copied into a `Frame` first.
    ///
    /// # Errors
    ///
    /// As [`feed_blocking`](Self::feed_blocking); the frame comes back as
    /// an owned copy.
    pub fn feed_ref_blocking(&mut self, frame: FrameRef<'_>) -> Result<(), SendError> {
        let Some(cost) = small_ref_cost(&frame) else {
            return self.feed_blocking(Frame::from(frame));
        };
        let open = self.wait_blocking(Some(cost));
        self.batch_ref(frame, cost, open)
    }

    /// As [`feed_ref_blocking`](Self::feed_ref_blocking), waiting as a task.
    ///
    /// # Errors
    ///
    /// As [`feed_ref_blocking`](Self::feed_ref_blocking).
    pub async fn feed_ref(&mut self, frame: FrameRef<'_>) -> Result<(), SendError> {
        let Some(cost) = small_ref_cost(&frame) else {
            return self.feed(Frame::from(frame)).await;
        };
        let open = self.wait(Some(cost)).await;
        self.batch_ref(frame, cost, open)
    }

    /// As [`feed_blocking`](Self::feed_blocking), waiting as a task.
    ///
    /// # Errors
    ///
    /// As [`feed_blocking`](Self::feed_blocking).
    pub async fn feed(&mut self, frame: Frame) -> Result<(), SendError> {
        let cost = small_frame_cost(&frame);
        let open = self.wait(cost).await;
        match self.batch_or_pass(frame, cost, open)? {
            Some(frame) => self.sender.feed(frame).await,
            None => Ok(()),
        }
    }

    /// What feeding a frame waits for first, given its cost if it is small
    /// (batched): a small frame that starts this handle's batch waits for
    /// the queue to be within its bound, one that does not fit in the batch
    /// for the batch's hand-over; any other frame for the hand-over.
    #[inline]
    fn wait_for(&self, cost: Option<usize>) -> Wait {
        match cost {
            Some(_) if !self.started => Wait::WithinBound,
            Some(cost) if self.batch.len() + cost > self.batch_len => Wait::HandOver,
            Some(_) => Wait::Nothing,
            None => Wait::HandOver,
        }
    }

    /// Waits, blocking the thread, for what feeding a frame of `cost` needs
    /// ([`wait_for`](Self::wait_for)); false if the connection has ended.
    #[inline]
    fn wait_blocking(&mut self, cost: Option<usize>) -> bool {
        match self.wait_for(cost) {
            Wait::WithinBound => self.sender.shared.wait_within_bound_blocking(),
            Wait::HandOver => self.hand_over_blocking(),
            Wait::Nothing => true,
        }
    }

    /// As [`wait_blocking`](Self::wait_blocking), as a task.
    async fn wait(&mut self, cost: Option<usize>) -> bool {
        match self.wait_for(cost) {
            Wait::WithinBound => {
                core::future::poll_fn(|cx| self.sender.shared.poll_within_bound(cx)).await
            }
            Wait::HandOver => self.hand_over().await,
            Wait::Nothing => true,
        }
    }

    /// After the wait: `frame` back in [`SendError::Closed`] if the
    /// connection has ended (`!open`), else batched if small (`cost`), else
    /// returned for the queue.
    fn batch_or_pass(
        &mut self,
        frame: Frame,
        cost: Option<usize>,
        open: bool,
    ) -> Result<Option<Frame>, SendError> {
        if !open {
            return Err(SendError::Closed(frame));
        }
        let Some(cost) = cost else {
            return Ok(Some(frame));
        };
        self.started = true;
        self.encode(&frame.small_ref(), cost);
        Ok(None)
    }

    /// [`batch_or_pass`](Self::batch_or_pass) for a small borrowed frame.
    #[inline]
    fn batch_ref(&mut self, frame: FrameRef<'_>, cost: usize, open: bool) -> Result<(), SendError> {
        if !open {
            return Err(SendError::Closed(Frame::from(frame)));
        }
        self.started = true;
        self.encode(&frame, cost);
        Ok(())
    }

    /// Hands the batch over, waiting while the queue is full, and asks for
    /// everything queued to be written now. If the connection has ended,
    /// the batch's frames wait for [`Sender::take_unsent`].
    pub fn flush_blocking(&mut self) {
        self.hand_over_blocking();
        self.sender.flush();
    }

    /// As [`flush_blocking`](Self::flush_blocking), waiting as a task.
    pub async fn flush(&mut self) {
        self.hand_over().await;
        self.sender.flush();
    }

    #[inline]
    fn encode(&mut self, frame: &FrameRef<'_>, cost: usize) {
        if self.batch.capacity() - self.batch.len() < cost {
            self.batch.reserve(self.batch_len.max(cost));
        }
        encode_small_ref(frame, &mut self.batch);
        self.batch_frames += 1;
    }

    /// The batch as a run, leaving it empty.
    fn take_batch(&mut self) -> Run {
        Run {
            bytes: core::mem::take(&mut self.batch),
            frames: core::mem::take(&mut self.batch_frames),
        }
    }

    /// Queues the batch; false if the connection has ended.
    fn hand_over_blocking(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = self.take_batch();
        self.received(self.sender.shared.push_run_blocking(batch, self.batch_len))
    }

    async fn hand_over(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        // The batch goes back into the handle between polls: a feed or
        // flush cancelled while it waits loses none of the frames fed before.
        let handed = core::future::poll_fn(|cx| {
            let mut slot = Some(self.take_batch());
            let polled = self
                .sender
                .shared
                .poll_push_run(&mut slot, self.batch_len, cx);
            if let Some(run) = slot {
                self.batch = run.bytes;
                self.batch_frames = run.frames;
            }
            polled
        })
        .await;
        self.received(handed)
    }

    fn received(&mut self, handed: HandedOver) -> bool {
        match handed {
            HandedOver::Queued(next) => {
                self.batch = next;
                true
            }
            HandedOver::Refused => false,
        }
    }
}

impl Drop for BufferedSender {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            let batch = self.take_batch();
            self.sender.shared.push_run_now(batch);
        }
    }
}
