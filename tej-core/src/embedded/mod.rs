//! TEJ on the embedded-io traits, without an allocator: the endpoint a
//! firmware puts on its UART or its TCP socket (embassy-net's `TcpSocket`,
//! a smoltcp socket, a HAL's serial port).
//!
//! `blocking::Endpoint` runs over [`embedded_io::Read`] and
//! [`embedded_io::Write`] (feature `embedded-io`), `asynch::Endpoint`
//! over their `embedded_io_async` counterparts (feature `embedded-io-async`).
//! Both keep the session's rules:
//!
//! - **limits before storage**: the [`Decoder`] checks every length against
//!   the [`Limits`] the moment it is read, before a byte of what it announces
//!   is kept;
//! - **caller-provided buffers**: bytes are read into a buffer the caller
//!   lends (a `static`, so that its size shows in `.bss`); a whole frame can
//!   be collected into a [`FrameStore`] over another;
//! - **bodies streamed**: [`Event::FileData`] and [`Event::MessageData`]
//!   hand the caller slices of the receive buffer, piece by piece, so a file
//!   larger than the device's RAM passes through (hashed, written to flash);
//! - **frames sent from borrowed slices**: [`FrameRef`] goes out header by
//!   header and payload by payload, never copied into a frame-sized buffer;
//! - **pings answered**: a frame of status 2 is answered with an empty ping
//!   once it has been received whole (the caller still sees its events).
//!   Against a peer that answers pings too, turn it off on one side
//!   (`answer_pings(false)`), or the two would ping each other forever.
//!
//! Names are kept in the endpoint, up to [`NAME_CAPACITY`] bytes: the
//! endpoint lowers [`Limits::max_name_len`] to that if it is higher.

use core::fmt;

use crate::decode::{Found, NO_ALLOC_NAME_CAPACITY};
use crate::encode::{checked_name_len, frame_header, message_header};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Status, MIN_FRAME_LEN, PROTOCOL_VERSION};
use crate::{Decoder, Event, FileRef, FrameRef, Limits};

/// The parts of an endpoint that do no I/O, the same in `blocking` and
/// `asynch`: the struct (with the doc comment given) and its constructor,
/// settings and stream accessors. Each module adds the reads and writes,
/// blocking or awaited; `Read`, `Write`, `Inbox` and `Limits` are the
/// names in scope where it is invoked.
#[cfg(feature = "embedded-io")]
macro_rules! endpoint_common {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct Endpoint<'b, T> {
            io: T,
            inbox: Inbox<'b>,
        }

        impl<'b, T: Read + Write> Endpoint<'b, T> {
            /// An endpoint at the start of a connection over `io`, reading into
            /// `buffer` and enforcing `limits` (names at most
            /// [`NAME_CAPACITY`](super::NAME_CAPACITY) bytes).
            pub fn new(io: T, buffer: &'b mut [u8], limits: Limits) -> Self {
                Endpoint {
                    io,
                    inbox: Inbox::new(buffer, limits),
                }
            }

            /// Whether a ping (status 2) is answered with an empty ping once
            /// received; `true` unless set otherwise.
            #[must_use]
            pub fn answer_pings(mut self, answer: bool) -> Self {
                self.inbox.answer_pings = answer;
                self
            }

            /// The limits in force.
            pub fn limits(&self) -> &Limits {
                self.inbox.decoder.limits()
            }

            /// The stream.
            pub fn io(&self) -> &T {
                &self.io
            }

            /// The stream, to use beside the endpoint (bytes read from it directly
            /// are lost to the decoder).
            pub fn io_mut(&mut self) -> &mut T {
                &mut self.io
            }

            /// The stream back, for what follows the last frame (draining input
            /// after a refusal, closing).
            pub fn into_inner(self) -> T {
                self.io
            }
        }
    };
}

#[cfg(feature = "embedded-io-async")]
pub mod asynch;
#[cfg(feature = "embedded-io")]
pub mod blocking;
mod store;
#[cfg(test)]
mod tests;

pub use store::{FrameStore, StoreError};

/// Longest file name an endpoint receives, in bytes.
pub const NAME_CAPACITY: usize = NO_ALLOC_NAME_CAPACITY;

/// Why an endpoint stopped. After any of these but [`Error::Io`] from a
/// write, the stream cannot be resumed: close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The reader or writer failed.
    Io(E),
    /// The peer's bytes are not valid TEJ, or announce more than the limits allow.
    Decode(DecodeError),
    /// A frame to send cannot be encoded (a name over 65535 bytes).
    Encode(EncodeError),
    /// A [`FrameStore`] has no room for what the peer announced.
    Store(StoreError),
    /// The writer accepted no bytes: the connection can take no more.
    WriteZero,
    /// The receive buffer lent to the endpoint is empty.
    EmptyBuffer,
}

impl<E> From<DecodeError> for Error<E> {
    fn from(error: DecodeError) -> Self {
        Error::Decode(error)
    }
}

impl<E> From<EncodeError> for Error<E> {
    fn from(error: EncodeError) -> Self {
        Error::Encode(error)
    }
}

impl<E> From<StoreError> for Error<E> {
    fn from(error: StoreError) -> Self {
        Error::Store(error)
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(error) => write!(f, "I/O error: {error}"),
            Error::Decode(error) => write!(f, "cannot decode: {error}"),
            Error::Encode(error) => write!(f, "cannot encode: {error}"),
            Error::Store(error) => write!(f, "cannot store: {error}"),
            Error::WriteZero => f.write_str("the connection takes no more bytes"),
            Error::EmptyBuffer => f.write_str("the receive buffer is empty"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

/// The empty ping sent in answer to a ping.
const PING: [u8; MIN_FRAME_LEN] = {
    let mut frame = [0u8; MIN_FRAME_LEN];
    frame[0] = Status::PING.to_wire_byte();
    frame[1] = PROTOCOL_VERSION;
    frame
};

/// The receiving half both endpoints share, free of I/O: the decoder, the
/// caller's buffer and the bytes in it not yet decoded.
#[derive(Debug)]
struct Inbox<'b> {
    decoder: Decoder,
    buffer: &'b mut [u8],
    /// Undecoded bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The current file's name, copied out of the decoder's borrow.
    name: heapless::String<NAME_CAPACITY>,
    answer_pings: bool,
    /// Whether the frame being received is a ping.
    in_ping: bool,
}

impl<'b> Inbox<'b> {
    fn new(buffer: &'b mut [u8], limits: Limits) -> Self {
        let name_len = if limits.max_name_len as usize > NAME_CAPACITY {
            NAME_CAPACITY as u16
        } else {
            limits.max_name_len
        };
        Inbox {
            decoder: Decoder::new(limits.max_name_len(name_len)),
            buffer,
            start: 0,
            end: 0,
            name: heapless::String::new(),
            answer_pings: true,
            in_ping: false,
        }
    }

    /// Decodes the buffered bytes up to the next event; `None` when they
    /// are all used and the decoder needs more.
    fn step(&mut self) -> Result<Option<Found>, DecodeError> {
        let at = self.start;
        let decoded = self.decoder.decode(&self.buffer[at..self.end])?;
        let consumed = decoded.consumed;
        // A payload is the last `len` bytes the call consumed; `Found`
        // keeps its place in the buffer, not a borrow, so that a caller can
        // read more input before `event` rebuilds the slice.
        let payload = |len: usize| at + consumed - len;
        let found = decoded.event.map(|event| match event {
            Event::FrameStart {
                status,
                version,
                file_count,
            } => Found::FrameStart {
                status,
                version,
                file_count,
            },
            Event::FileStart { name, size } => {
                self.name.clear();
                // Cannot fail: the name length limit is at most the capacity.
                let _ = self.name.push_str(name);
                Found::FileStart { size }
            }
            Event::FileData(data) => Found::FileData {
                start: payload(data.len()),
                len: data.len(),
            },
            Event::FileEnd => Found::FileEnd,
            Event::MessageStart { size } => Found::MessageStart { size },
            Event::MessageData(data) => Found::MessageData {
                start: payload(data.len()),
                len: data.len(),
            },
            Event::FrameEnd => Found::FrameEnd,
        });
        self.start += consumed;
        if found.is_none() {
            // The decoder used every byte; the next read starts the buffer anew.
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        Ok(found)
    }

    /// Whether `found` completes a ping that must be answered.
    fn owes_ping(&mut self, found: Found) -> bool {
        match found {
            Found::FrameStart { status, .. } => {
                self.in_ping = status.is_ping();
                false
            }
            Found::FrameEnd => core::mem::take(&mut self.in_ping) && self.answer_pings,
            _ => false,
        }
    }

    /// The event `found` stands for, borrowing the buffer and the name.
    fn event(&self, found: Found) -> Event<'_> {
        found.event(self.name.as_bytes(), self.buffer)
    }

    /// Where the next read goes: the free end of the buffer.
    fn space<E>(&mut self) -> Result<&mut [u8], Error<E>> {
        match &mut self.buffer[self.end..] {
            [] => Err(Error::EmptyBuffer),
            space => Ok(space),
        }
    }

    /// Takes `len` bytes just read into [`space`](Self::space).
    fn filled(&mut self, len: usize) {
        self.end = (self.end + len).min(self.buffer.len());
    }
}

/// One piece of a frame on the wire: a header written here, or a payload
/// borrowed from the frame.
enum Piece<'f> {
    Header([u8; 10], usize),
    Bytes(&'f [u8]),
}

impl Piece<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Header(header, len) => &header[..*len],
            Piece::Bytes(bytes) => bytes,
        }
    }
}

/// Checks that every name of `frame` fits the wire, so that nothing is sent
/// half-done.
fn check_names(frame: &FrameRef<'_>) -> Result<(), EncodeError> {
    frame
        .files
        .iter()
        .try_for_each(|file| checked_name_len(file.name).map(drop))
}

/// The `index`th piece of `frame`, in wire order; `None` past the end.
/// Names must have been checked with [`check_names`].
fn piece<'f>(frame: &FrameRef<'f>, index: usize) -> Option<Piece<'f>> {
    let header = |bytes: &[u8]| {
        let mut header = [0u8; 10];
        header[..bytes.len()].copy_from_slice(bytes);
        Piece::Header(header, bytes.len())
    };
    if index == 0 {
        return Some(header(&frame_header(
            frame.status,
            frame.version,
            frame.files.len() as u64,
        )));
    }
    let index = index - 1;
    let files = frame.files.len();
    if let Some(&FileRef { name, data }) = frame.files.get(index / 4) {
        return Some(match index % 4 {
            0 => header(&(name.len() as u16).to_be_bytes()),
            1 => Piece::Bytes(name.as_bytes()),
            2 => header(&(data.len() as u64).to_be_bytes()),
            _ => Piece::Bytes(data),
        });
    }
    let message = frame.message.unwrap_or_default();
    match index - 4 * files {
        0 => Some(header(&message_header(message.len() as u64))),
        1 => Some(Piece::Bytes(message)),
        _ => None,
    }
}
