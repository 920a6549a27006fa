//! TEJ on a microcontroller: no allocator, no `std`, fixed buffers only.
//!
//! This crate uses `tej-core` with its default features off, which leaves
//! the parts that need no allocator: [`FrameRef`] encodes a whole frame
//! from borrowed parts into a caller's buffer, and the streaming
//! [`Decoder`] turns bytes, fed in any split (a UART's few bytes at a
//! time, say), into borrowed events. [`Receiver`] collects those events
//! into a [`ReceivedFrame`] of fixed-capacity `heapless` buffers.
//!
//! The decoder's [`LIMITS`] are sized to those buffers, so whatever would
//! not fit (too many files, a long name, a large file or message) is
//! refused as a [`DecodeError::LimitExceeded`] the moment its length is
//! read, before a single byte of it is stored.
//!
//! ```
//! use tej_embedded_example::{encode_sample, Receiver};
//!
//! let mut wire = [0u8; 128];
//! let len = encode_sample(&mut wire, "temp.bin", &[0x01, 0x2c]).unwrap();
//!
//! // Bytes arrive in small pieces; the receiver keeps its place.
//! let mut receiver = Receiver::new();
//! let mut frame = None;
//! for chunk in wire[..len].chunks(5) {
//!     let fed = receiver.feed(chunk).unwrap();
//!     assert_eq!(fed.consumed, chunk.len());
//!     frame = frame.or(fed.frame);
//! }
//! let frame = frame.unwrap();
//! assert_eq!(frame.files[0].name, "temp.bin");
//! assert_eq!(frame.files[0].data, [0x01, 0x2c]);
//! assert_eq!(frame.message.as_deref(), Some(&b"sample"[..]));
//! ```
//!
//! CI builds it for `thumbv7em-none-eabihf` (a Cortex-M4F):
//! `cargo build -p tej-embedded-example --target thumbv7em-none-eabihf`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use heapless::{String, Vec};
use tej_core::{DecodeError, Decoder, EncodeError, Event, FileRef, FrameRef, Limits, Status};

/// Most files in one received frame.
pub const MAX_FILES: usize = 4;
/// Longest file name received, in bytes.
pub const MAX_NAME_LEN: usize = 32;
/// Largest file received, in bytes.
pub const MAX_FILE_LEN: usize = 256;
/// Largest message received, in bytes.
pub const MAX_MESSAGE_LEN: usize = 256;

/// The limits that match the buffers of a [`ReceivedFrame`].
pub const LIMITS: Limits = Limits {
    max_file_count: MAX_FILES as u64,
    max_name_len: MAX_NAME_LEN as u16,
    max_file_size: MAX_FILE_LEN as u64,
    max_message_size: MAX_MESSAGE_LEN as u64,
    max_frame_size: (MAX_FILES * MAX_FILE_LEN + MAX_MESSAGE_LEN) as u64,
};

/// The status [`encode_sample`] sends.
pub const SAMPLE_STATUS: u8 = 1;

/// Why encoding or decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not valid TEJ, or announce more than [`LIMITS`] allow.
    Decode(DecodeError),
    /// The frame does not fit the output buffer, or a name is too long.
    Encode(EncodeError),
    /// A buffer is full. The limits make this unreachable; it is kept so
    /// that no capacity error is ever ignored.
    Capacity,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Decode(error) => write!(f, "cannot decode: {error}"),
            Error::Encode(error) => write!(f, "cannot encode: {error}"),
            Error::Capacity => f.write_str("a fixed buffer is full"),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Self {
        Error::Decode(error)
    }
}

impl From<EncodeError> for Error {
    fn from(error: EncodeError) -> Self {
        Error::Encode(error)
    }
}

/// Encodes a sensor sample as a frame with status [`SAMPLE_STATUS`], one
/// file `name` holding `data`, and the message `sample`, at the start of
/// `out`; returns the bytes written.
///
/// # Errors
///
/// [`Error::Encode`] when `out` is too small (nothing is sent half-done:
/// the length is checked before anything is written).
pub fn encode_sample(out: &mut [u8], name: &str, data: &[u8]) -> Result<usize, Error> {
    let files = [FileRef::new(name, data)];
    let status = Status::new(SAMPLE_STATUS).unwrap_or(Status::DEFAULT);
    let frame = FrameRef::new(status, &files, Some(b"sample"));
    Ok(frame.encode_into(out)?)
}

/// A received file, in fixed buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    /// The name as sent.
    pub name: String<MAX_NAME_LEN>,
    /// The content.
    pub data: Vec<u8, MAX_FILE_LEN>,
}

/// A received frame, in fixed buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// The custom status.
    pub status: Status,
    /// The protocol version byte.
    pub version: u8,
    /// The files, in wire order.
    pub files: Vec<ReceivedFile, MAX_FILES>,
    /// The message; `None` when its length is 0 ("no message").
    pub message: Option<Vec<u8, MAX_MESSAGE_LEN>>,
}

/// What one [`Receiver::feed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes were used"]
pub struct Fed {
    /// How many input bytes were used. Fewer than given only when a frame
    /// completed: feed the rest again.
    pub consumed: usize,
    /// The frame that completed, if any.
    pub frame: Option<ReceivedFrame>,
}

/// Collects the decoder's events into [`ReceivedFrame`]s, one stream of
/// bytes (one direction of a connection) per receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    decoder: Decoder,
    frame: Option<ReceivedFrame>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

impl Receiver {
    /// A receiver at the start of a stream, enforcing [`LIMITS`].
    pub fn new() -> Receiver {
        Receiver {
            decoder: Decoder::new(LIMITS),
            frame: None,
        }
    }

    /// Takes bytes as they arrive; returns how many were used and the frame
    /// they completed, if any. Stops after a frame, so that each frame is
    /// handed over as soon as it is complete.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for bytes that are not TEJ or exceed [`LIMITS`];
    /// the stream cannot be resynchronised and every later call fails too.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, Error> {
        let Receiver { decoder, frame } = self;
        let mut consumed = 0;
        loop {
            let decoded = decoder.decode(&input[consumed..])?;
            consumed += decoded.consumed;
            let Some(event) = decoded.event else {
                return Ok(Fed {
                    consumed,
                    frame: None,
                });
            };
            match event {
                Event::FrameStart {
                    status, version, ..
                } => {
                    *frame = Some(ReceivedFrame {
                        status,
                        version,
                        files: Vec::new(),
                        message: None,
                    });
                }
                Event::FileStart { name, .. } => {
                    let mut file = ReceivedFile {
                        name: String::new(),
                        data: Vec::new(),
                    };
                    file.name.push_str(name).map_err(|_| Error::Capacity)?;
                    current(frame)?
                        .files
                        .push(file)
                        .map_err(|_| Error::Capacity)?;
                }
                Event::FileData(data) => {
                    current(frame)?
                        .files
                        .last_mut()
                        .ok_or(Error::Capacity)?
                        .data
                        .extend_from_slice(data)
                        .map_err(|_| Error::Capacity)?;
                }
                Event::FileEnd => {}
                Event::MessageStart { size } => {
                    current(frame)?.message = (size > 0).then(Vec::new);
                }
                Event::MessageData(data) => {
                    current(frame)?
                        .message
                        .as_mut()
                        .ok_or(Error::Capacity)?
                        .extend_from_slice(data)
                        .map_err(|_| Error::Capacity)?;
                }
                Event::FrameEnd => {
                    return Ok(Fed {
                        consumed,
                        frame: frame.take(),
                    });
                }
            }
        }
    }

    /// Call when the stream ends: `Ok` if it ended between frames.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] with [`DecodeError::UnexpectedEof`] when a frame
    /// was cut short.
    pub fn finish(&self) -> Result<(), Error> {
        Ok(self.decoder.finish()?)
    }
}

/// The frame being received; the decoder always starts one first.
fn current(frame: &mut Option<ReceivedFrame>) -> Result<&mut ReceivedFrame, Error> {
    frame.as_mut().ok_or(Error::Capacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tej_core::LimitKind;

    /// Feeds `wire` in pieces of `chunk` bytes; returns every frame.
    fn receive_all(wire: &[u8], chunk: usize) -> std::vec::Vec<ReceivedFrame> {
        let mut receiver = Receiver::new();
        let mut frames = std::vec::Vec::new();
        for mut piece in wire.chunks(chunk) {
            loop {
                let fed = receiver.feed(piece).unwrap();
                piece = &piece[fed.consumed..];
                frames.extend(fed.frame);
                if piece.is_empty() {
                    break;
                }
            }
        }
        receiver.finish().unwrap();
        frames
    }

    #[test]
    fn a_sample_round_trips_in_every_split() {
        let mut wire = [0u8; 128];
        let data: [u8; 40] = core::array::from_fn(|i| (i * 7) as u8);
        let len = encode_sample(&mut wire, "sample.bin", &data).unwrap();
        assert_eq!(
            len,
            18 + 10 + "sample.bin".len() + data.len() + "sample".len()
        );
        for chunk in 1..=len {
            let frames = receive_all(&wire[..len], chunk);
            assert_eq!(frames.len(), 1, "chunk {chunk}");
            let frame = &frames[0];
            assert_eq!(frame.status.get(), SAMPLE_STATUS);
            assert_eq!(frame.version, 1);
            assert_eq!(frame.files.len(), 1);
            assert_eq!(frame.files[0].name, "sample.bin");
            assert_eq!(frame.files[0].data, data);
            assert_eq!(frame.message.as_deref(), Some(&b"sample"[..]));
        }
    }

    #[test]
    fn frames_back_to_back_and_no_message() {
        let files = [FileRef::new("a", b"1"), FileRef::new("", b"")];
        let first = FrameRef::new(Status::DEFAULT, &files, None);
        let second = FrameRef::new(Status::PING, &[], Some(b""));
        let mut wire = [0u8; 96];
        let mut len = first.encode_into(&mut wire).unwrap();
        len += second.encode_into(&mut wire[len..]).unwrap();
        for chunk in [1, 3, len] {
            let frames = receive_all(&wire[..len], chunk);
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0].files.len(), 2);
            assert_eq!(frames[0].files[1].name, "");
            assert!(frames[0].files[1].data.is_empty());
            assert_eq!(frames[0].message, None);
            assert!(frames[1].status.is_ping());
            assert_eq!(frames[1].message, None, "length 0 is no message");
        }
    }

    #[test]
    fn what_does_not_fit_is_refused_before_it_is_stored() {
        let long_name = "n".repeat(MAX_NAME_LEN + 1);
        let big = [0u8; MAX_FILE_LEN + 1];
        let named = [FileRef::new(&long_name, b"")];
        let large = [FileRef::new("big", &big)];
        let five: [FileRef<'_>; 5] = core::array::from_fn(|_| FileRef::new("f", b""));
        let cases: [(FrameRef<'_>, LimitKind); 3] = [
            (
                FrameRef::new(Status::DEFAULT, &named, None),
                LimitKind::NameLength,
            ),
            (
                FrameRef::new(Status::DEFAULT, &large, None),
                LimitKind::FileSize,
            ),
            (
                FrameRef::new(Status::DEFAULT, &five, None),
                LimitKind::FileCount,
            ),
        ];
        for (frame, kind) in cases {
            let mut wire = [0u8; 512];
            let len = frame.encode_into(&mut wire).unwrap();
            let mut receiver = Receiver::new();
            match receiver.feed(&wire[..len]) {
                Err(Error::Decode(DecodeError::LimitExceeded { limit, .. })) => {
                    assert_eq!(limit, kind);
                }
                other => panic!("{kind:?}: {other:?}"),
            }
            // The stream is poisoned: the same error again.
            assert!(matches!(receiver.feed(&[]), Err(Error::Decode(_))));
        }
    }

    #[test]
    fn errors_are_typed() {
        let mut small = [0u8; 20];
        assert!(matches!(
            encode_sample(&mut small, "x", b"too much for twenty bytes"),
            Err(Error::Encode(EncodeError::BufferTooSmall { .. }))
        ));
        let mut receiver = Receiver::new();
        assert!(matches!(
            receiver.feed(&[0x00]),
            Err(Error::Decode(DecodeError::StatusBitClear { byte: 0, .. }))
        ));
        let mut receiver = Receiver::new();
        let fed = receiver.feed(&[0x80, 0x01, 0x00]).unwrap();
        assert_eq!((fed.consumed, fed.frame), (3, None));
        assert!(matches!(
            receiver.finish(),
            Err(Error::Decode(DecodeError::UnexpectedEof { .. }))
        ));
    }
}
