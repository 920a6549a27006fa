//! TEJ on a microcontroller: the echo that `tej-firmware` runs, with no
//! allocator, no `std` and fixed buffers only.
//!
//! This crate uses `tej-core` with its default features off, which leaves
//! the parts that need no allocator: the streaming [`Decoder`], which turns
//! bytes fed in any split (a UART's few bytes at a time) into borrowed
//! events, and the header encoder. On top of them:
//!
//! - [`Receiver`] collects the decoder's events into a [`ReceivedFrame`] of
//!   fixed-capacity `heapless` buffers that the caller owns (a `static` on
//!   the firmware, so its size shows in `.bss`);
//! - [`write_frame`] sends a frame piece by piece, headers through a small
//!   stack buffer and payloads straight from where they are, so an answer
//!   needs no second frame-sized buffer;
//! - [`Echo`] is the firmware's whole behaviour, without any I/O: a
//!   [`READY`] frame at boot, an [`ECHO`] of every frame received, [`BYE`]
//!   and a clean exit after a [`QUIT`], and a [`REFUSED`] frame naming the
//!   error, then a failing exit, for anything else.
//!
//! The decoder's [`LIMITS`] are sized to the buffers, so whatever would not
//! fit (too many files, a long name, a large file or message) is refused as
//! a [`DecodeError::LimitExceeded`] the moment its length is read, before a
//! single byte of it is stored.
//!
//! ```
//! use tej_core::{FileRef, FrameRef, Status};
//! use tej_embedded_example::{write_frame, Echo, Exit, ReceivedFrame, ECHO};
//!
//! let files = [FileRef::new("temp.bin", &[0x01, 0x2c])];
//! let mut wire = Vec::new();
//! let frame = FrameRef::new(Status::DEFAULT, &files, Some(b"sample"));
//! write_frame(&frame, |piece| wire.extend_from_slice(piece)).unwrap();
//!
//! // Bytes arrive in small pieces; the echo keeps its place and answers
//! // once the frame is complete.
//! let mut buffers = ReceivedFrame::new();
//! let mut echo = Echo::new(&mut buffers);
//! let mut answer = Vec::new();
//! for chunk in wire.chunks(5) {
//!     let step = echo.feed(chunk, |piece| answer.extend_from_slice(piece));
//!     assert_eq!((step.consumed, step.exit), (chunk.len(), None::<Exit>));
//! }
//! let echoed = FrameRef::new(ECHO, &files, Some(b"sample"));
//! let mut expected = Vec::new();
//! write_frame(&echoed, |piece| expected.extend_from_slice(piece)).unwrap();
//! assert_eq!(answer, expected);
//! ```
//!
//! `tej-examples/firmware` runs it on a Cortex-M4 (QEMU's `mps2-an386`)
//! over UART0; this crate's own tests run it on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt::Write as _;

use heapless::{String, Vec};
use tej_core::encode::{frame_header, message_header, write_file_header};
use tej_core::wire::FILE_HEADER_FIXED_LEN;
use tej_core::{DecodeError, Decoder, EncodeError, Event, FileRef, FrameRef, Limits, Status};

/// Most files in one received frame.
pub const MAX_FILES: usize = 4;
/// Longest file name received, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest file received, in bytes.
pub const MAX_FILE_LEN: usize = 1024;
/// Largest message received, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The limits that match the buffers of a [`ReceivedFrame`].
pub const LIMITS: Limits = Limits::DEFAULT
    .max_file_count(MAX_FILES as u64)
    .max_name_len(MAX_NAME_LEN as u16)
    .max_file_size(MAX_FILE_LEN as u64)
    .max_message_size(MAX_MESSAGE_LEN as u64)
    .max_frame_size((MAX_FILES * MAX_FILE_LEN + MAX_MESSAGE_LEN) as u64);

/// A status from a literal, checked at compile time.
const fn status(value: u8) -> Status {
    match Status::new(value) {
        Ok(status) => status,
        Err(_) => panic!("custom status out of range"),
    }
}

/// A frame of this status asks the echo to answer [`BYE`] and stop.
pub const QUIT: Status = status(3);
/// The answer to [`QUIT`], sent just before a successful exit.
pub const BYE: Status = status(4);
/// The frame sent at boot: the echo is listening.
pub const READY: Status = status(5);
/// The answer to every other frame: the same files and message.
pub const ECHO: Status = status(6);
/// Sent when the input cannot be taken; its message names the error.
pub const REFUSED: Status = status(7);

/// The message of the [`READY`] frame.
pub const READY_MESSAGE: &[u8] = b"tej-firmware ready";
/// The message of the [`BYE`] frame.
pub const BYE_MESSAGE: &[u8] = b"tej-firmware bye";

/// Why receiving or answering failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not valid TEJ, or announce more than [`LIMITS`] allow.
    Decode(DecodeError),
    /// A frame could not be encoded: a name longer than [`MAX_NAME_LEN`].
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

/// The largest file header [`write_frame`] sends: u16 name length, a name
/// of [`MAX_NAME_LEN`] bytes, u64 data length.
pub const MAX_FILE_HEADER_LEN: usize = FILE_HEADER_FIXED_LEN + MAX_NAME_LEN;

/// Sends `frame` to `sink` piece by piece: each header from a small stack
/// buffer, each file's data and the message straight from where they are.
/// The pieces, concatenated, are exactly [`FrameRef::encode_into`]'s bytes.
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] for a name longer than [`MAX_NAME_LEN`]
/// bytes; every name is checked before `sink` sees a byte, so nothing is
/// sent half-done.
pub fn write_frame(frame: &FrameRef<'_>, mut sink: impl FnMut(&[u8])) -> Result<(), EncodeError> {
    let mut header = [0u8; MAX_FILE_HEADER_LEN];
    for file in frame.files {
        let needed = FILE_HEADER_FIXED_LEN + file.name.len();
        if needed > header.len() {
            return Err(EncodeError::BufferTooSmall {
                needed: needed as u64,
                available: header.len(),
            });
        }
    }
    sink(&frame_header(
        frame.status,
        frame.version,
        frame.files.len() as u64,
    ));
    for file in frame.files {
        let len = write_file_header(&mut header, file.name, file.data.len() as u64)?;
        sink(&header[..len]);
        sink(file.data);
    }
    let message = frame.message.unwrap_or_default();
    sink(&message_header(message.len() as u64));
    sink(message);
    Ok(())
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
    /// The message; empty for "no message" (on the wire, length 0).
    pub message: Vec<u8, MAX_MESSAGE_LEN>,
}

impl Default for ReceivedFrame {
    fn default() -> Self {
        ReceivedFrame::new()
    }
}

impl ReceivedFrame {
    /// Empty buffers, all zero bytes; `const`, so that they can live in a
    /// `static` in `.bss` (no initial image in flash).
    pub const fn new() -> ReceivedFrame {
        ReceivedFrame {
            status: Status::DEFAULT,
            version: 0,
            files: Vec::new(),
            message: Vec::new(),
        }
    }

    /// Sends this frame's files and message under `status` (version 1)
    /// through [`write_frame`].
    ///
    /// # Errors
    ///
    /// As [`write_frame`]; a frame filled by a [`Receiver`] always fits.
    pub fn write_as(&self, status: Status, sink: impl FnMut(&[u8])) -> Result<(), EncodeError> {
        let files: Vec<FileRef<'_>, MAX_FILES> = self
            .files
            .iter()
            .map(|file| FileRef::new(&file.name, &file.data))
            .collect();
        let message = (!self.message.is_empty()).then_some(&self.message[..]);
        write_frame(&FrameRef::new(status, &files, message), sink)
    }
}

/// What one [`Receiver::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes were used"]
pub struct Fed {
    /// How many input bytes were used. Fewer than given only when a frame
    /// completed: feed the rest again.
    pub consumed: usize,
    /// Whether a frame completed; [`Receiver::frame`] holds it until the
    /// next call.
    pub complete: bool,
}

/// Collects the decoder's events into a [`ReceivedFrame`] the caller owns,
/// one stream of bytes (one direction of a connection) per receiver.
#[derive(Debug)]
pub struct Receiver<'a> {
    decoder: Decoder,
    frame: &'a mut ReceivedFrame,
}

impl<'a> Receiver<'a> {
    /// A receiver at the start of a stream, enforcing [`LIMITS`] and
    /// filling `frame`.
    pub fn new(frame: &'a mut ReceivedFrame) -> Receiver<'a> {
        Receiver {
            decoder: Decoder::new(LIMITS),
            frame,
        }
    }

    /// The frame being received, or the one that just completed.
    pub fn frame(&self) -> &ReceivedFrame {
        self.frame
    }

    /// Takes bytes as they arrive; returns how many were used and whether
    /// they completed a frame. Stops after a frame, so that each frame is
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
                    complete: false,
                });
            };
            match event {
                Event::FrameStart {
                    status, version, ..
                } => {
                    frame.status = status;
                    frame.version = version;
                    frame.files.clear();
                    frame.message.clear();
                }
                Event::FileStart { name, .. } => {
                    let mut file = ReceivedFile {
                        name: String::new(),
                        data: Vec::new(),
                    };
                    file.name.push_str(name).map_err(|_| Error::Capacity)?;
                    frame.files.push(file).map_err(|_| Error::Capacity)?;
                }
                Event::FileData(data) => {
                    frame
                        .files
                        .last_mut()
                        .ok_or(Error::Capacity)?
                        .data
                        .extend_from_slice(data)
                        .map_err(|_| Error::Capacity)?;
                }
                Event::FileEnd | Event::MessageStart { .. } => {}
                Event::MessageData(data) => {
                    frame
                        .message
                        .extend_from_slice(data)
                        .map_err(|_| Error::Capacity)?;
                }
                Event::FrameEnd => {
                    return Ok(Fed {
                        consumed,
                        complete: true,
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

/// How the echo ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A [`QUIT`] frame was answered with [`BYE`].
    Success,
    /// The input was refused with a [`REFUSED`] frame naming this error.
    Failure(Error),
}

/// What one [`Echo::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "stop when `exit` is set"]
pub struct Step {
    /// How many input bytes were used: all of them unless the echo ended.
    pub consumed: usize,
    /// Set when the echo is over; later input is not looked at.
    pub exit: Option<Exit>,
    /// How many frames this call answered with [`ECHO`].
    pub echoed: usize,
}

/// Longest [`REFUSED`] message: room for any error's text.
pub const MAX_REFUSAL_LEN: usize = 192;

/// The firmware's behaviour without I/O: bytes in, answers out through a
/// sink, and when to stop.
#[derive(Debug)]
pub struct Echo<'a> {
    receiver: Receiver<'a>,
}

impl<'a> Echo<'a> {
    /// An echo at the start of a stream, receiving into `frame`.
    pub fn new(frame: &'a mut ReceivedFrame) -> Echo<'a> {
        Echo {
            receiver: Receiver::new(frame),
        }
    }

    /// The frame being received, or the last one answered.
    pub fn frame(&self) -> &ReceivedFrame {
        self.receiver.frame()
    }

    /// Sends the [`READY`] frame, with [`READY_MESSAGE`].
    pub fn greet(&self, sink: impl FnMut(&[u8])) {
        send(READY, READY_MESSAGE, sink);
    }

    /// Takes bytes as they arrive and answers every frame they complete:
    /// [`ECHO`] with the same files and message, or [`BYE`] for a [`QUIT`]
    /// (then [`Exit::Success`]). Input that is not TEJ or exceeds
    /// [`LIMITS`] is answered with [`REFUSED`], whose message names the
    /// error (then [`Exit::Failure`]).
    pub fn feed(&mut self, input: &[u8], mut sink: impl FnMut(&[u8])) -> Step {
        let mut consumed = 0;
        let mut echoed = 0;
        loop {
            let fed = match self.receiver.feed(&input[consumed..]) {
                Ok(fed) => fed,
                Err(error) => return refuse(error, input.len(), echoed, sink),
            };
            consumed += fed.consumed;
            if !fed.complete {
                return Step {
                    consumed,
                    exit: None,
                    echoed,
                };
            }
            let frame = self.receiver.frame();
            if frame.status == QUIT {
                send(BYE, BYE_MESSAGE, sink);
                return Step {
                    consumed,
                    exit: Some(Exit::Success),
                    echoed,
                };
            }
            if let Err(error) = frame.write_as(ECHO, &mut sink) {
                return refuse(error.into(), input.len(), echoed, sink);
            }
            echoed += 1;
        }
    }
}

/// Sends a frame with no files and `message`.
fn send(status: Status, message: &[u8], sink: impl FnMut(&[u8])) {
    // Without files nothing can fail.
    let _ = write_frame(&FrameRef::new(status, &[], Some(message)), sink);
}

/// Sends the [`REFUSED`] frame for `error` and ends the echo.
fn refuse(error: Error, consumed: usize, echoed: usize, sink: impl FnMut(&[u8])) -> Step {
    let mut text: String<MAX_REFUSAL_LEN> = String::new();
    // Cut short only if an error's text outgrew the buffer.
    let _ = write!(text, "refused: {error}");
    send(REFUSED, text.as_bytes(), sink);
    Step {
        consumed,
        exit: Some(Exit::Failure(error)),
        echoed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tej_core::LimitKind;

    /// A frame's encoding, through [`write_frame`].
    fn wire(frame: &FrameRef<'_>) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        write_frame(frame, |piece| out.extend_from_slice(piece)).unwrap();
        out
    }

    /// Feeds `input` in pieces of `chunk` bytes to a new echo; returns the
    /// answers, the exit and how many frames were echoed.
    fn run(input: &[u8], chunk: usize) -> (std::vec::Vec<u8>, Option<Exit>, usize) {
        let mut buffers = ReceivedFrame::new();
        let mut echo = Echo::new(&mut buffers);
        let mut out = std::vec::Vec::new();
        let mut echoed = 0;
        for piece in input.chunks(chunk) {
            let step = echo.feed(piece, |bytes| out.extend_from_slice(bytes));
            echoed += step.echoed;
            if step.exit.is_some() {
                return (out, step.exit, echoed);
            }
            assert_eq!(step.consumed, piece.len());
        }
        (out, None, echoed)
    }

    #[test]
    fn write_frame_matches_encode_into() {
        let name = "n".repeat(MAX_NAME_LEN);
        let data: std::vec::Vec<u8> = (0..=255).collect();
        let files = [
            FileRef::new("a", b"1"),
            FileRef::new(&name, &data),
            FileRef::new("é", b""),
        ];
        for message in [None, Some(&b""[..]), Some(&b"hi"[..])] {
            let frame = FrameRef::new(Status::MAX, &files, message);
            let mut expected = [0u8; 512];
            let len = frame.encode_into(&mut expected).unwrap();
            assert_eq!(wire(&frame), &expected[..len]);
        }
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let files = [FileRef::new(&long, b"")];
        let mut sent = 0;
        let result = write_frame(&FrameRef::new(Status::DEFAULT, &files, None), |_| sent += 1);
        assert!(matches!(result, Err(EncodeError::BufferTooSmall { .. })));
        assert_eq!(sent, 0, "nothing is sent half-done");
    }

    #[test]
    fn greets_with_ready() {
        let mut buffers = ReceivedFrame::new();
        let echo = Echo::new(&mut buffers);
        let mut out = std::vec::Vec::new();
        echo.greet(|bytes| out.extend_from_slice(bytes));
        assert_eq!(
            out,
            wire(&FrameRef::new(READY, &[], Some(b"tej-firmware ready")))
        );
    }

    #[test]
    fn echoes_every_frame_in_every_split_then_quits() {
        let big = [0xa5u8; MAX_FILE_LEN];
        let name = "é".repeat(MAX_NAME_LEN / 2);
        let message = [b'm'; MAX_MESSAGE_LEN];
        let full = [
            FileRef::new(&name, &big),
            FileRef::new("b", &big),
            FileRef::new("", b""),
            FileRef::new("d", &big[..7]),
        ];
        let one = [FileRef::new("a.txt", b"hello")];
        let frames = [
            FrameRef::new(Status::DEFAULT, &[], None),
            FrameRef::new(Status::PING, &one, Some(b"ping")),
            FrameRef::new(REFUSED, &full, Some(&message)),
            FrameRef::new(Status::MAX, &one, None),
        ];
        let mut input = std::vec::Vec::new();
        let mut expected = std::vec::Vec::new();
        for frame in &frames {
            input.extend(wire(frame));
            expected.extend(wire(&FrameRef::new(ECHO, frame.files, frame.message)));
        }
        input.extend(wire(&FrameRef::new(QUIT, &one, Some(b"stop"))));
        expected.extend(wire(&FrameRef::new(BYE, &[], Some(BYE_MESSAGE))));
        // Bytes after the quit are never looked at.
        input.extend(wire(&FrameRef::new(Status::DEFAULT, &[], None)));
        for chunk in [1, 2, 3, 7, 64, 1000, input.len()] {
            let (out, exit, echoed) = run(&input, chunk);
            assert_eq!(exit, Some(Exit::Success), "chunk {chunk}");
            assert_eq!(echoed, frames.len(), "chunk {chunk}");
            assert!(out == expected, "chunk {chunk}: answers differ");
        }
    }

    #[test]
    fn what_does_not_fit_is_refused_before_it_is_stored() {
        let long_name = "n".repeat(MAX_NAME_LEN + 1);
        let big = [0u8; MAX_FILE_LEN + 1];
        let message = [0u8; MAX_MESSAGE_LEN + 1];
        let named = [FileRef::new(&long_name, b"")];
        let large = [FileRef::new("big", &big)];
        let five: [FileRef<'_>; 5] = core::array::from_fn(|_| FileRef::new("f", b""));
        let cases = [
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
            (
                FrameRef::new(Status::DEFAULT, &[], Some(&message)),
                LimitKind::MessageSize,
            ),
        ];
        for (frame, kind) in cases {
            let mut bytes = [0u8; 2048];
            let len = frame.encode_into(&mut bytes).unwrap();
            // Only the bytes up to the refused length: the rest is not needed.
            let header = match kind {
                LimitKind::NameLength => 10 + 2,
                LimitKind::FileSize => 10 + 2 + 3 + 8,
                LimitKind::FileCount => 10,
                _ => 10 + 8,
            };
            assert!(header < len);
            let mut buffers = ReceivedFrame::new();
            let mut echo = Echo::new(&mut buffers);
            let mut out = std::vec::Vec::new();
            let step = echo.feed(&bytes[..header], |piece| out.extend_from_slice(piece));
            let Some(Exit::Failure(Error::Decode(DecodeError::LimitExceeded { limit, .. }))) =
                step.exit
            else {
                panic!("{kind:?}: {step:?}");
            };
            assert_eq!(limit, kind);
            assert_eq!(buffers.files.iter().map(|f| f.data.len()).sum::<usize>(), 0);
            let text = std::format!("refused: cannot decode: {kind} ");
            assert_eq!(out[0], 0x80 | 7, "{kind:?}");
            assert!(
                std::string::String::from_utf8_lossy(&out[18..]).starts_with(&text),
                "{kind:?}: {:?}",
                std::string::String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn refusal_names_the_error() {
        let (out, exit, echoed) = run(&[0x00, 0x01], 1);
        assert_eq!(echoed, 0);
        assert!(matches!(
            exit,
            Some(Exit::Failure(Error::Decode(DecodeError::StatusBitClear {
                byte: 0,
                ..
            })))
        ));
        let text =
            b"refused: cannot decode: status bit is 0 in first byte 0x00 of a frame at offset 0";
        assert_eq!(out, wire(&FrameRef::new(REFUSED, &[], Some(text))));
    }

    #[test]
    fn receiver_reports_a_cut_frame() {
        let mut buffers = ReceivedFrame::new();
        let mut receiver = Receiver::new(&mut buffers);
        let fed = receiver.feed(&[0x80, 0x01, 0x00]).unwrap();
        assert_eq!((fed.consumed, fed.complete), (3, false));
        assert!(matches!(
            receiver.finish(),
            Err(Error::Decode(DecodeError::UnexpectedEof { .. }))
        ));
        let mut buffers = ReceivedFrame::new();
        let receiver = Receiver::new(&mut buffers);
        assert_eq!(receiver.finish(), Ok(()));
    }
}
