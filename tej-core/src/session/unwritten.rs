//! Which frames from the send queue are still in the outbox, so that those
//! a failed connection never finished writing go back to the caller.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::frame::Frame;
use crate::session::run::decode_run;

/// Where a frame handed to the outbox can be rebuilt from.
enum Origin {
    /// A frame with files or a large message: a copy of its parts
    /// (reference-counted payloads, file paths).
    Frame(Frame),
    /// A run of small frames, encoded, starting at this stream position.
    Run { start: u64, bytes: Bytes },
}

/// The queue's frames in the outbox, each with the stream position where
/// its bytes end; forgotten as soon as they are written.
#[derive(Default)]
pub(crate) struct Unwritten {
    origins: VecDeque<(u64, Origin)>,
}

impl Unwritten {
    /// A frame whose bytes end at stream position `end`.
    pub(crate) fn frame(&mut self, end: u64, frame: Frame) {
        self.origins.push_back((end, Origin::Frame(frame)));
    }

    /// A run of encoded frames whose bytes start at stream position `start`.
    pub(crate) fn run(&mut self, start: u64, bytes: Bytes) {
        let end = start + bytes.len() as u64;
        self.origins.push_back((end, Origin::Run { start, bytes }));
    }

    /// Everything up to stream position `written` has been written.
    pub(crate) fn written(&mut self, written: u64) {
        while self.origins.front().is_some_and(|&(end, _)| end <= written) {
            self.origins.pop_front();
        }
    }

    /// The frames not completely written by stream position `written`, in
    /// order: a frame cut part-way never reached the peer whole.
    pub(crate) fn take(&mut self, written: u64) -> Vec<Frame> {
        let mut frames = Vec::new();
        for (_, origin) in self.origins.drain(..) {
            match origin {
                Origin::Frame(frame) => frames.push(frame),
                Origin::Run { start, bytes } => {
                    let mut decoded = Vec::new();
                    let ends = decode_run(&bytes, &mut decoded);
                    frames.extend(
                        decoded
                            .into_iter()
                            .zip(ends)
                            .filter(|&(_, end)| start + end as u64 > written)
                            .map(|(frame, _)| frame),
                    );
                }
            }
        }
        frames
    }
}
