//! What waits in a [`Sender`](super::Sender)'s queue: frames made ready to
//! send, and runs of small frames already encoded back to back.
//!
//! A small frame (no files, a short message) is encoded by the sending
//! thread as it is queued, in the [run format](crate::session::run). The connection's driver
//! then takes a whole run of such frames as one buffer, with no per-frame
//! work on its side, and the frame's own memory is released at once.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use bytes::BytesMut;

use crate::frame::Frame;
use crate::session::error::SendError;
use crate::session::outgoing::OutgoingFrame;
use crate::session::run::{decode_run, encode_small, small_frame_cost, RUN_LEN};
use crate::wire::MIN_FRAME_LEN;

/// A frame on its way into the queue.
pub(crate) enum Pending {
    /// To be encoded into a run when queued.
    Small(Frame),
    /// Validated, its files opened.
    Prepared(OutgoingFrame),
}

impl Pending {
    /// Checks `frame` and opens its files; the frame comes back in the error.
    #[inline]
    pub(crate) fn new(frame: Frame) -> Result<Pending, SendError> {
        if small_frame_cost(&frame).is_some() {
            return Ok(Pending::Small(frame));
        }
        OutgoingFrame::prepare(frame)
            .map(Pending::Prepared)
            .map_err(|(error, frame)| error.into_send_error(frame))
    }

    /// Checks `frame` and opens its files, with `tracker` watching its
    /// bytes leave: never encoded into a run, so its place on the stream
    /// is known.
    pub(crate) fn tracked(
        frame: Frame,
        tracker: crate::session::progress::Tracker,
    ) -> Result<Pending, SendError> {
        let mut prepared =
            OutgoingFrame::prepare(frame).map_err(|(error, frame)| error.into_send_error(frame))?;
        prepared.progress = Some(tracker);
        Ok(Pending::Prepared(prepared))
    }

    /// What the frame costs against the queue's bound: its bytes in memory.
    #[inline]
    pub(crate) fn cost(&self) -> usize {
        match self {
            Pending::Small(frame) => {
                MIN_FRAME_LEN + frame.message.as_ref().map_or(0, |message| message.len())
            }
            Pending::Prepared(frame) => frame.memory_cost(),
        }
    }

    /// The frame as the caller gave it.
    pub(crate) fn into_frame(self) -> Frame {
        match self {
            Pending::Small(frame) => frame,
            Pending::Prepared(frame) => frame.into_frame(),
        }
    }
}

/// Small frames encoded back to back, and how many: counted as they are
/// encoded, so that the driver never walks a run to count it.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) bytes: BytesMut,
    pub(crate) frames: u64,
}

/// One entry of the queue, as the driver takes it.
pub(crate) enum Queued {
    /// A frame with files or a large message.
    Frame(OutgoingFrame),
    /// Small frames, encoded back to back.
    Encoded(Run),
}

/// The queue's entries in order, each with its cost, then the open run:
/// small frames encoded after every entry, not yet taken.
///
/// The open run's buffer is kept when the driver takes its bytes, so that
/// once the driver has written and dropped them the same allocation is
/// reused: a steady stream of small frames allocates nothing.
#[derive(Default)]
pub(crate) struct Entries {
    entries: VecDeque<(Queued, usize)>,
    open_run: BytesMut,
    open_cost: usize,
    open_frames: u64,
    /// A written run's buffer handed back by the driver, for the next run.
    spare_run: Option<BytesMut>,
}

impl Entries {
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + usize::from(!self.open_run.is_empty())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.open_run.is_empty()
    }

    /// The cost of the first entry.
    pub(crate) fn front_cost(&self) -> Option<usize> {
        match self.entries.front() {
            Some(&(_, cost)) => Some(cost),
            None if self.open_run.is_empty() => None,
            None => Some(self.open_cost),
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Queued> {
        if let Some((queued, _)) = self.entries.pop_front() {
            return Some(queued);
        }
        if self.open_run.is_empty() {
            return None;
        }
        self.open_cost = 0;
        Some(Queued::Encoded(Run {
            bytes: self.open_run.split(),
            frames: core::mem::take(&mut self.open_frames),
        }))
    }

    /// Appends `pending`, whose cost is `cost`.
    #[inline]
    pub(crate) fn push(&mut self, pending: Pending, cost: usize) {
        match pending {
            Pending::Prepared(frame) => {
                self.close_open_run();
                self.entries.push_back((Queued::Frame(frame), cost));
            }
            Pending::Small(frame) => self.push_small(&frame, cost),
        }
    }

    /// Encodes a small frame, whose cost is `cost`, at the end of the open run.
    #[inline]
    pub(crate) fn push_small(&mut self, frame: &Frame, cost: usize) {
        if self.open_run.len() + cost > RUN_LEN
            || self.open_run.capacity() - self.open_run.len() < cost
        {
            self.close_open_run();
        }
        // The open run is empty whenever it lacks room.
        if self.open_run.capacity() < cost && !self.open_run.try_reclaim(RUN_LEN.max(cost)) {
            self.open_run = match self.spare_run.take() {
                Some(spare) if spare.capacity() >= cost => spare,
                _ => BytesMut::with_capacity(RUN_LEN.max(cost)),
            };
        }
        self.open_cost += cost;
        self.open_frames += 1;
        encode_small(frame, &mut self.open_run);
    }

    /// Appends a run of small frames a [`BufferedSender`](super::BufferedSender)
    /// encoded, whose cost is `cost`.
    pub(crate) fn push_run(&mut self, run: Run, cost: usize) {
        self.close_open_run();
        self.entries.push_back((Queued::Encoded(run), cost));
    }

    /// A buffer for the next batch of a buffered sender: the written one
    /// the driver handed back, or a new one of `len` bytes.
    pub(crate) fn take_spare(&mut self, len: usize) -> BytesMut {
        match self.spare_run.take() {
            Some(spare) if spare.capacity() >= len => spare,
            _ => BytesMut::with_capacity(len),
        }
    }

    /// Keeps `spare`, a written buffer with room for a run, for the next run.
    pub(crate) fn offer_spare(&mut self, spare: &mut Option<BytesMut>) {
        if self.spare_run.is_none() {
            self.spare_run = spare.take();
        }
    }

    /// Lets go of the buffers kept for runs: the connection is idle.
    pub(crate) fn release_buffers(&mut self) {
        if self.open_run.is_empty() {
            self.open_run = BytesMut::new();
        }
        self.spare_run = None;
    }

    fn close_open_run(&mut self) {
        if !self.open_run.is_empty() {
            let run = Run {
                bytes: self.open_run.split(),
                frames: core::mem::take(&mut self.open_frames),
            };
            self.entries
                .push_back((Queued::Encoded(run), core::mem::take(&mut self.open_cost)));
        }
    }

    /// Every queued frame, in order, as the callers gave them; the queue is
    /// left empty.
    pub(crate) fn drain_frames(&mut self) -> Vec<Frame> {
        self.close_open_run();
        let mut frames = Vec::new();
        for (queued, _) in self.entries.drain(..) {
            match queued {
                Queued::Frame(frame) => frames.push(frame.into_frame()),
                Queued::Encoded(run) => {
                    decode_run(&run.bytes, &mut frames);
                }
            }
        }
        frames
    }
}
