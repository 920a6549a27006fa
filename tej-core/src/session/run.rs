//! The run format: small frames (no files, a message of at most
//! [`SMALL_MESSAGE_LEN`] bytes) encoded back to back into one buffer by the
//! sending thread, so the driver takes a whole run with no per-frame work;
//! decoded back only for a caller who asks for frames that were never sent.

use alloc::vec::Vec;

use bytes::BytesMut;

use crate::assemble::Assembler;
use crate::encode::{frame_header, message_header, FrameRef};
use crate::frame::Frame;
use crate::limits::Limits;
use crate::wire::{FRAME_HEADER_LEN, MIN_FRAME_LEN};

/// The longest message a frame may carry and still be encoded when queued.
/// The outbox copies payloads this small next to their headers anyway.
pub(crate) const SMALL_MESSAGE_LEN: usize = 4096;
/// A run of encoded frames stops growing at this size, so that the driver
/// can take part of the queue and a queue's buffers stay modest.
pub(crate) const RUN_LEN: usize = 64 * 1024;

/// The cost of `frame` if it is small: no files, and a message of at most
/// [`SMALL_MESSAGE_LEN`] bytes.
#[inline]
pub(crate) fn small_frame_cost(frame: &Frame) -> Option<usize> {
    // `Some` of an empty message would come back from `take_unsent` as
    // `None`: it keeps the general path, which hands it back as given.
    if frame
        .message
        .as_ref()
        .is_some_and(|message| message.is_empty())
        || !frame.files.is_empty()
    {
        return None;
    }
    small_ref_cost(&frame.small_ref())
}

/// The cost of a borrowed `frame` if it is small, as for
/// [`small_frame_cost`]; an empty message is "no message" here, as on the
/// wire.
#[inline]
pub(crate) fn small_ref_cost(frame: &FrameRef<'_>) -> Option<usize> {
    let len = frame.message.map_or(0, <[u8]>::len);
    (frame.files.is_empty() && len <= SMALL_MESSAGE_LEN).then_some(MIN_FRAME_LEN + len)
}

/// Appends a frame without files to `out`, which has room for it.
#[inline]
pub(crate) fn encode_small(frame: &Frame, out: &mut BytesMut) {
    encode_small_ref(&frame.small_ref(), out);
}

impl Frame {
    /// This frame borrowed, without its files: a small frame as it encodes.
    #[inline]
    pub(crate) fn small_ref(&self) -> FrameRef<'_> {
        FrameRef {
            status: self.status,
            version: self.version,
            files: &[],
            message: self.message.as_deref(),
        }
    }
}

/// Appends a borrowed frame without files (its files are not looked at) to
/// `out`, which has room for it.
#[inline]
pub(crate) fn encode_small_ref(frame: &FrameRef<'_>, out: &mut BytesMut) {
    let message = frame.message.unwrap_or_default();
    let mut header = [0u8; MIN_FRAME_LEN];
    header[..FRAME_HEADER_LEN].copy_from_slice(&frame_header(frame.status, frame.version, 0));
    header[FRAME_HEADER_LEN..].copy_from_slice(&message_header(message.len() as u64));
    out.extend_from_slice(&header);
    out.extend_from_slice(message);
}

/// The frames of a run, decoded back for a caller who asked for them;
/// returns where each ends in the run.
pub(crate) fn decode_run(run: &[u8], frames: &mut Vec<Frame>) -> Vec<usize> {
    let mut assembler = Assembler::new(Limits::UNLIMITED);
    let mut ends = Vec::new();
    let mut offset = 0;
    // A run holds whole frames this module encoded, so decoding cannot fail
    // and every call completes a frame.
    while let Ok(assembled) = assembler.decode(&run[offset..]) {
        offset += assembled.consumed;
        match assembled.frame {
            Some(frame) => {
                frames.push(frame);
                ends.push(offset);
            }
            None => break,
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn message(len: usize) -> Frame {
        Frame::message(vec![b'm'; len])
    }

    #[test]
    fn small_frames_are_those_without_files_and_with_short_messages() {
        assert_eq!(
            small_frame_cost(&Frame::new(crate::Status::DEFAULT)),
            Some(18)
        );
        assert_eq!(small_frame_cost(&message(10)), Some(28));
        assert_eq!(
            small_frame_cost(&message(SMALL_MESSAGE_LEN)),
            Some(18 + SMALL_MESSAGE_LEN)
        );
        assert_eq!(small_frame_cost(&message(SMALL_MESSAGE_LEN + 1)), None);
        let mut empty = Frame::new(crate::Status::DEFAULT);
        empty.message = Some(bytes::Bytes::new());
        assert_eq!(small_frame_cost(&empty), None, "handed back as given");
        assert_eq!(
            small_ref_cost(&FrameRef::new(crate::Status::DEFAULT, &[], Some(b""))),
            Some(18),
            "borrowed, empty is no message"
        );
        let with_file = crate::FrameBuilder::new(crate::Status::DEFAULT)
            .file("a", &b"x"[..])
            .build();
        assert_eq!(small_frame_cost(&with_file), None);
    }

    #[test]
    fn a_run_is_the_frames_encoded_back_to_back_and_decodes_to_them() {
        let frames = [
            message(1),
            Frame::new(crate::Status::new(5).unwrap()),
            message(4096),
        ];
        let mut run = BytesMut::new();
        for frame in &frames {
            encode_small(frame, &mut run);
        }
        let expected: Vec<u8> = frames
            .iter()
            .flat_map(|frame| frame.encode_to_vec().unwrap())
            .collect();
        assert_eq!(&run[..], &expected[..]);
        let mut decoded = Vec::new();
        let ends = decode_run(&run, &mut decoded);
        assert_eq!(decoded, frames);
        assert_eq!(ends, [19, 37, 37 + 18 + 4096]);
    }
}
