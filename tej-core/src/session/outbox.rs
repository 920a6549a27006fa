//! Bytes waiting to be sent: headers and small payloads coalesced in one
//! buffer, large payloads kept by reference, file sources read in chunks.

use alloc::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::encode::{frame_header, message_header};
use crate::session::outgoing::{OutgoingBody, OutgoingFrame};

/// Payloads up to this size are copied next to their headers: one copy is
/// cheaper than one more slice in a vectored write.
const COPY_THRESHOLD: usize = 4096;
/// Chunk read from a file source per refill. The chunk is freed when the
/// file is sent: an idle connection keeps none.
#[cfg(feature = "std")]
const SOURCE_CHUNK_LEN: usize = 256 * 1024;

/// A run of outgoing bytes.
enum Segment {
    Memory(Bytes),
    #[cfg(feature = "std")]
    Source {
        reader: alloc::boxed::Box<dyn std::io::Read + Send>,
        /// Bytes of this file not yet sent (including any read ahead).
        remaining: u64,
    },
}

/// The bytes of queued frames, in order.
#[derive(Default)]
pub(crate) struct Outbox {
    segments: VecDeque<Segment>,
    /// Headers and small payloads after the last segment.
    staging: BytesMut,
    /// Bytes held in memory (segments and staging), for backpressure.
    memory_len: usize,
    /// Every byte waiting, in memory or in a source.
    pending_len: u64,
    /// Read-ahead of the first source segment, and how much of it is sent.
    #[cfg(feature = "std")]
    source_chunk: alloc::vec::Vec<u8>,
    #[cfg(feature = "std")]
    source_chunk_sent: usize,
    /// The buffer of a written segment that can hold a run of small frames,
    /// for the send queue to reuse.
    #[cfg(feature = "std")]
    spare_run: Option<BytesMut>,
    /// Bytes written since the connection began: the stream position.
    written_total: u64,
    /// Frames queued here so far (for [`Traffic`](super::Traffic)).
    frames_total: u64,
    /// The send queue's frames among the bytes waiting.
    #[cfg(feature = "std")]
    unwritten: crate::session::unwritten::Unwritten,
    /// Tracked frames (`send_tracked`) not yet written whole, with the
    /// stream position where each starts.
    #[cfg(feature = "std")]
    progress: VecDeque<(u64, crate::session::progress::Tracker)>,
}

impl Outbox {
    /// Whether any byte is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending_len == 0
    }

    /// Whether a file source is among the bytes waiting: sending it reads
    /// the source, which may block.
    #[cfg(feature = "std")]
    pub(crate) fn reads_files(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Source { .. }))
    }

    /// Bytes waiting that are held in memory.
    pub(crate) fn memory_len(&self) -> usize {
        self.memory_len
    }

    /// Every byte waiting.
    /// Frames queued so far, and bytes written.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.frames_total, self.written_total)
    }

    pub(crate) fn pending_len(&self) -> u64 {
        self.pending_len
    }

    /// Queues a frame's bytes after everything already queued.
    pub(crate) fn push(&mut self, frame: OutgoingFrame) {
        self.frames_total += 1;
        self.pending_len += frame.encoded_len();
        self.stage(&frame_header(
            frame.status,
            frame.version,
            frame.files.len() as u64,
        ));
        for file in frame.files {
            let mut header = [0u8; 2];
            header.copy_from_slice(&(file.name.len() as u16).to_be_bytes());
            self.stage(&header);
            self.stage(file.name.as_bytes());
            self.stage(&file.body.len().to_be_bytes());
            match file.body {
                OutgoingBody::Memory(data) => self.push_payload(data),
                #[cfg(feature = "std")]
                OutgoingBody::Source { reader, source } => {
                    let len = source.len();
                    if len > 0 {
                        self.seal_staging();
                        self.segments.push_back(Segment::Source {
                            reader,
                            remaining: len,
                        });
                    }
                }
            }
        }
        let message = frame.message.unwrap_or_default();
        self.stage(&message_header(message.len() as u64));
        self.push_payload(message);
    }

    /// Queues a frame from the send queue, remembered until written so
    /// that it can be handed back if the connection fails first.
    #[cfg(feature = "std")]
    pub(crate) fn push_tracked(&mut self, mut frame: OutgoingFrame) {
        let copy = frame.to_frame();
        if let Some(tracker) = frame.progress.take() {
            let start = self.written_total + self.pending_len;
            self.progress.push_back((start, tracker));
        }
        self.push(frame);
        let end = self.written_total + self.pending_len;
        self.unwritten.frame(end, copy);
    }

    /// Queues a run of small frames from the send queue, encoded, remembered
    /// until written like [`push_tracked`](Self::push_tracked)'s frames.
    #[cfg(feature = "std")]
    pub(crate) fn push_run(&mut self, run: Bytes, frames: u64) {
        self.unwritten
            .run(self.written_total + self.pending_len, run.clone());
        self.pending_len += run.len() as u64;
        self.frames_total += frames;
        self.push_payload(run);
    }

    fn push_payload(&mut self, data: Bytes) {
        if data.len() <= COPY_THRESHOLD {
            self.stage(&data);
        } else {
            self.seal_staging();
            self.memory_len += data.len();
            self.segments.push_back(Segment::Memory(data));
        }
    }

    fn stage(&mut self, bytes: &[u8]) {
        self.memory_len += bytes.len();
        self.staging.extend_from_slice(bytes);
    }

    /// Ends the staging run so that a segment can follow it.
    fn seal_staging(&mut self) {
        if !self.staging.is_empty() {
            self.segments
                .push_back(Segment::Memory(self.staging.split().freeze()));
        }
    }

    /// Reads the next chunk of a file source when one is due, so that
    /// [`fill`](Self::fill) can offer it.
    ///
    /// # Errors
    ///
    /// A file being sent could not be read, or is shorter than announced.
    pub(crate) fn read_ahead(&mut self) -> Result<(), crate::assemble::StorageError> {
        #[cfg(feature = "std")]
        self.read_source_chunk()?;
        Ok(())
    }

    /// Fills `out` with the next bytes to send, in order, and returns how
    /// many slices it filled.
    pub(crate) fn fill<'a>(&'a self, out: &mut [&'a [u8]]) -> usize {
        let mut filled = 0;
        let mut slots = out.iter_mut();
        for segment in &self.segments {
            // Without `std` there is only the memory variant.
            #[allow(clippy::infallible_destructuring_match)]
            let slice: &[u8] = match segment {
                Segment::Memory(bytes) => bytes,
                #[cfg(feature = "std")]
                Segment::Source { .. } => {
                    // Only the first source segment has its chunk loaded.
                    let chunk = &self.source_chunk[self.source_chunk_sent..];
                    if let Some(slot) = slots.next() {
                        *slot = chunk;
                        filled += 1;
                    }
                    return filled;
                }
            };
            let Some(slot) = slots.next() else {
                return filled;
            };
            *slot = slice;
            filled += 1;
        }
        if !self.staging.is_empty() {
            if let Some(slot) = slots.next() {
                *slot = &self.staging;
                filled += 1;
            }
        }
        filled
    }

    /// Marks `written` bytes from the front as sent.
    pub(crate) fn advance(&mut self, mut written: usize) {
        let written_now = (written as u64).min(self.pending_len);
        self.pending_len -= written_now;
        self.written_total += written_now;
        // Before any segment is recycled: a run written whole is no longer shared.
        #[cfg(feature = "std")]
        self.unwritten.written(self.written_total);
        #[cfg(feature = "std")]
        self.report_progress();
        while written > 0 {
            let Some(segment) = self.segments.front_mut() else {
                let step = written.min(self.staging.len());
                self.staging.advance(step);
                self.memory_len -= step;
                return;
            };
            match segment {
                Segment::Memory(bytes) => {
                    let step = written.min(bytes.len());
                    bytes.advance(step);
                    self.memory_len -= step;
                    written -= step;
                    if bytes.is_empty() {
                        let written = self.segments.pop_front();
                        #[cfg(feature = "std")]
                        if let Some(Segment::Memory(buffer)) = written {
                            self.recycle(buffer);
                        }
                        #[cfg(not(feature = "std"))]
                        drop(written);
                    }
                }
                #[cfg(feature = "std")]
                Segment::Source { remaining, .. } => {
                    let step = written.min(self.source_chunk.len() - self.source_chunk_sent);
                    self.source_chunk_sent += step;
                    *remaining -= step as u64;
                    written -= step;
                    if *remaining == 0 {
                        self.segments.pop_front();
                        self.source_chunk = alloc::vec::Vec::new();
                        self.source_chunk_sent = 0;
                    }
                    if step == 0 {
                        // More than was offered: nothing sensible left to advance.
                        return;
                    }
                }
            }
        }
    }

    /// Tells tracked frames how much of them is written; forgets those
    /// written whole.
    #[cfg(feature = "std")]
    fn report_progress(&mut self) {
        while let Some((start, tracker)) = self.progress.front() {
            if self.written_total <= *start {
                return;
            }
            let done = self.written_total - start;
            tracker.advance_to(done);
            if done < tracker.total() {
                return;
            }
            self.progress.pop_front();
        }
    }

    /// The send queue's frames not completely written, in order; forgotten
    /// here. For a connection that ends with bytes still waiting. Their
    /// trackers report them not written.
    #[cfg(feature = "std")]
    pub(crate) fn take_unwritten(&mut self) -> alloc::vec::Vec<crate::frame::Frame> {
        self.progress.clear();
        self.unwritten.take(self.written_total)
    }

    /// Keeps a written buffer that could hold a run, if nothing else holds it.
    #[cfg(feature = "std")]
    fn recycle(&mut self, written: Bytes) {
        if self.spare_run.is_some() {
            return;
        }
        if let Ok(mut buffer) = written.try_into_mut() {
            if buffer.try_reclaim(crate::session::run::RUN_LEN) {
                self.spare_run = Some(buffer);
            }
        }
    }

    /// The buffer kept by [`recycle`](Self::recycle), to hand to the send queue.
    #[cfg(feature = "std")]
    pub(crate) fn spare_run(&mut self) -> &mut Option<BytesMut> {
        &mut self.spare_run
    }

    /// Loads the next chunk of the first source segment if everything read of it was sent.
    #[cfg(feature = "std")]
    fn read_source_chunk(&mut self) -> std::io::Result<()> {
        use std::io::Read;

        if self.source_chunk_sent < self.source_chunk.len() {
            return Ok(());
        }
        let Some((file, remaining)) = self.segments.iter_mut().find_map(|segment| match segment {
            Segment::Source { reader, remaining } => Some((reader, *remaining)),
            Segment::Memory(_) => None,
        }) else {
            return Ok(());
        };
        let want = remaining.min(SOURCE_CHUNK_LEN as u64) as usize;
        self.source_chunk.resize(want, 0);
        self.source_chunk_sent = 0;
        let mut filled = 0;
        while filled < want {
            match file.read(&mut self.source_chunk[filled..]) {
                Ok(0) => {
                    self.source_chunk.clear();
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "a file being sent is shorter than announced",
                    ));
                }
                Ok(n) => filled += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.source_chunk.clear();
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::frame::{Frame, FrameBuilder};
    use crate::wire::Status;

    fn prepared(frame: Frame) -> OutgoingFrame {
        OutgoingFrame::prepare(frame).map_err(|_| ()).unwrap()
    }

    /// Takes everything, `chunk` bytes per write.
    fn drain(outbox: &mut Outbox, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !outbox.is_empty() {
            outbox.read_ahead().unwrap();
            let mut slices: [&[u8]; 8] = [&[]; 8];
            let filled = outbox.fill(&mut slices);
            let mut taken: Vec<u8> = slices[..filled].concat();
            taken.truncate(chunk);
            out.extend_from_slice(&taken);
            outbox.advance(taken.len());
        }
        out
    }

    #[test]
    fn frames_come_out_encoded_in_order_whatever_the_write_sizes() {
        let big = FrameBuilder::new(Status::DEFAULT)
            .file("big", vec![3u8; 3 * COPY_THRESHOLD])
            .message("after")
            .build();
        let small = Frame::message("tiny");
        let expected: Vec<u8> = [big.clone(), small.clone(), big.clone()]
            .iter()
            .flat_map(|frame| frame.encode_to_vec().unwrap())
            .collect();
        // Under Miri, write by write through 24 KiB would take minutes: a
        // size that cuts every frame part-way checks the same code.
        let chunks: &[usize] = if cfg!(miri) {
            &[1000, usize::MAX]
        } else {
            &[1, 7, 4096, usize::MAX]
        };
        for &chunk in chunks {
            let mut outbox = Outbox::default();
            for frame in [&big, &small, &big] {
                outbox.push(prepared(frame.clone()));
            }
            assert_eq!(outbox.pending_len(), expected.len() as u64);
            assert_eq!(outbox.memory_len(), expected.len());
            assert_eq!(drain(&mut outbox, chunk), expected, "chunk {chunk}");
            assert_eq!(outbox.memory_len(), 0);
        }
    }

    #[test]
    fn tracked_frames_cut_part_way_come_back_and_written_ones_do_not() {
        let mut outbox = Outbox::default();
        let mut run = BytesMut::new();
        for n in 0..3u8 {
            crate::session::run::encode_small(&Frame::message(vec![n; 10]), &mut run);
        }
        outbox.push_run(run.freeze(), 3);
        let with_file = FrameBuilder::new(Status::DEFAULT)
            .file("f", vec![9u8; 100])
            .build();
        outbox.push_tracked(prepared(with_file.clone()));
        // The first frame of the run and part of the second are written.
        outbox.advance(28 + 5);
        let back = outbox.take_unwritten();
        assert_eq!(
            back,
            [
                Frame::message(vec![1u8; 10]),
                Frame::message(vec![2u8; 10]),
                with_file
            ]
        );
    }
}
