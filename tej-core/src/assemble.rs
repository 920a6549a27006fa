//! Whole frames from the decoder's events.

use alloc::string::String;
use alloc::vec::Vec;

use crate::decode::{Decoder, Event};
use crate::error::DecodeError;
use crate::frame::{File, FileBody, Frame};
use crate::limits::Limits;
use crate::wire::Status;

/// The most a buffer is reserved ahead of the bytes that fill it. Beyond
/// this the buffer grows only as data actually arrives, so a peer that
/// announces a large length and sends nothing costs little.
const MAX_RESERVE_AHEAD: u64 = 1 << 20;

/// What one call to [`Assembler::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes to discard"]
pub struct Assembled {
    /// How many bytes of the input were used.
    pub consumed: usize,
    /// A frame, if one completed. When `None`, all input was consumed.
    pub frame: Option<Frame>,
}

/// Decodes a byte stream into whole in-memory [`Frame`]s under [`Limits`].
///
/// A zero-length message is reported as `None` ("no message"), as the
/// reference implementation does. Memory held for a frame in progress never
/// exceeds what the peer has actually sent plus [`Limits::max_frame_size`]
/// bounded reservations.
///
/// ```
/// use tej_core::{Assembler, Frame, Limits};
///
/// let wire = Frame::message("Hello").encode_to_vec().unwrap();
/// let mut assembler = Assembler::new(Limits::default());
/// let assembled = assembler.decode(&wire).unwrap();
/// assert_eq!(assembled.consumed, wire.len());
/// assert_eq!(assembled.frame.unwrap().message.as_deref(), Some(&b"Hello"[..]));
/// ```
#[derive(Debug, Clone)]
pub struct Assembler {
    decoder: Decoder,
    partial: PartialFrame,
}

/// The frame being assembled.
#[derive(Debug, Clone, Default)]
struct PartialFrame {
    frame: Option<Frame>,
    file: Option<(String, Vec<u8>)>,
    message: Vec<u8>,
}

impl Assembler {
    /// An assembler at the start of a stream, enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Assembler {
            decoder: Decoder::new(limits),
            partial: PartialFrame::default(),
        }
    }

    /// The underlying decoder, for its position and limits.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Consumes `input` until a frame completes or the input runs out.
    ///
    /// # Errors
    ///
    /// The decoder's [`DecodeError`]; the stream is then unusable.
    pub fn decode(&mut self, input: &[u8]) -> Result<Assembled, DecodeError> {
        let mut consumed = 0;
        loop {
            let decoded = self.decoder.decode(&input[consumed..])?;
            consumed += decoded.consumed;
            let Some(event) = decoded.event else {
                return Ok(Assembled {
                    consumed,
                    frame: None,
                });
            };
            if let Some(frame) = self.partial.apply(event) {
                return Ok(Assembled {
                    consumed,
                    frame: Some(frame),
                });
            }
        }
    }

    /// Call at the end of the stream: `Ok` if it ended between frames.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedEof`] if a frame was cut short.
    pub fn finish(&self) -> Result<(), DecodeError> {
        self.decoder.finish()
    }
}

impl PartialFrame {
    /// Takes one event; returns the frame it completes, if any.
    fn apply(&mut self, event: Event<'_>) -> Option<Frame> {
        let PartialFrame {
            frame,
            file,
            message,
        } = self;
        match event {
            Event::FrameStart {
                status,
                version,
                file_count,
            } => {
                let mut started = Frame::new(status);
                started.version = version;
                started.files = Vec::with_capacity(bounded_reservation(file_count, 64));
                *frame = Some(started);
            }
            Event::FileStart { name, size } => {
                *file = Some((
                    String::from(name),
                    Vec::with_capacity(bounded_reservation(size, MAX_RESERVE_AHEAD)),
                ));
            }
            Event::FileData(data) => {
                if let Some((_, buffer)) = file {
                    buffer.extend_from_slice(data);
                }
            }
            Event::FileEnd => {
                if let (Some(frame), Some((name, data))) = (frame.as_mut(), file.take()) {
                    frame.files.push(File {
                        name,
                        body: FileBody::Memory(data.into()),
                    });
                }
            }
            Event::MessageStart { size } => {
                *message = Vec::with_capacity(bounded_reservation(size, MAX_RESERVE_AHEAD));
            }
            Event::MessageData(data) => message.extend_from_slice(data),
            Event::FrameEnd => {
                let mut done = frame.take().unwrap_or_else(|| Frame::new(Status::DEFAULT));
                let body = core::mem::take(message);
                done.message = (!body.is_empty()).then(|| body.into());
                return Some(done);
            }
        }
        None
    }
}

fn bounded_reservation(announced: u64, cap: u64) -> usize {
    announced.min(cap) as usize
}
