//! The resumable streaming decoder.
//!
//! [`Decoder::decode`] takes whatever bytes the caller has, consumes what it
//! can and returns at most one [`Event`]. File and message payloads come back
//! as slices of the caller's input, never copied. The only bytes the decoder
//! keeps between calls are a fixed field split across two reads (at most 8
//! bytes, in a `heapless` scratch buffer) and the current file name (at most
//! [`Limits::max_name_len`] bytes). Lengths are checked against [`Limits`]
//! as soon as they are read.

use nom::number::streaming::{be_u16, be_u64, be_u8};
use nom::IResult;

// Concrete instances of nom's generic parsers for byte slices.
fn parse_u8(input: &[u8]) -> IResult<&[u8], u8> {
    be_u8(input)
}
fn parse_u16(input: &[u8]) -> IResult<&[u8], u16> {
    be_u16(input)
}
fn parse_u64(input: &[u8]) -> IResult<&[u8], u64> {
    be_u64(input)
}

use crate::error::{DecodeError, Field, LimitKind};
use crate::limits::Limits;
use crate::wire::{Status, MIN_FRAME_LEN};

/// Longest name the decoder can hold without an allocator. Longer names are
/// refused with [`LimitKind::NameLength`] when the `alloc` feature is off.
pub const NO_ALLOC_NAME_CAPACITY: usize = 256;

#[cfg(feature = "alloc")]
type NameBuffer = alloc::vec::Vec<u8>;
#[cfg(not(feature = "alloc"))]
type NameBuffer = heapless::Vec<u8, NO_ALLOC_NAME_CAPACITY>;

/// The widest fixed field on the wire: a u64.
const SCRATCH_CAPACITY: usize = 8;

/// One step of a frame, in wire order.
///
/// A frame decodes as `FrameStart`, then per file `FileStart`, any number of
/// `FileData` and `FileEnd`, then `MessageStart`, any number of
/// `MessageData`, and `FrameEnd`. `FileData` and `MessageData` are never
/// empty; a zero-length file or message has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A frame's header.
    FrameStart {
        /// The custom status.
        status: Status,
        /// The protocol version byte, as sent.
        version: u8,
        /// How many files follow.
        file_count: u64,
    },
    /// A file's header: its name and the length of its data.
    FileStart {
        /// The name, validated UTF-8. Not a path to trust.
        name: &'a str,
        /// The data length in bytes.
        size: u64,
    },
    /// A piece of the current file's data: a slice of the caller's input.
    FileData(&'a [u8]),
    /// The current file's data is complete.
    FileEnd,
    /// The message header. A size of 0 means "no message".
    MessageStart {
        /// The message length in bytes.
        size: u64,
    },
    /// A piece of the message: a slice of the caller's input.
    MessageData(&'a [u8]),
    /// The frame is complete.
    FrameEnd,
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes to discard"]
pub struct Decoded<'a> {
    /// How many bytes of the input were used; discard them before the next call.
    pub consumed: usize,
    /// The event, if one completed. When `None`, the whole input was consumed
    /// and the decoder needs more bytes.
    pub event: Option<Event<'a>>,
}

/// A whole frame without files, from [`Decoder::decode_message_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "`consumed` says how many input bytes to discard"]
pub struct MessageFrame<'a> {
    /// How many bytes of the input the frame took.
    pub consumed: usize,
    /// The custom status.
    pub status: Status,
    /// The protocol version byte, as sent.
    pub version: u8,
    /// The message, a slice of the caller's input; empty for "no message".
    pub message: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Status,
    Version { status: Status },
    FileCount { status: Status, version: u8 },
    NameLength,
    Name { len: u16 },
    FileSize,
    FileData,
    FileEnd,
    MessageLength,
    MessageData,
    FrameEnd,
    Failed(DecodeError),
}

/// An event found by [`Decoder::step`], before it borrows anything: its
/// payloads are places in the input, its name the decoder's. The embedded
/// endpoints keep one too, across a read, with places in their buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found {
    FrameStart {
        status: Status,
        version: u8,
        file_count: u64,
    },
    FileStart {
        size: u64,
    },
    FileData {
        start: usize,
        len: usize,
    },
    FileEnd,
    MessageStart {
        size: u64,
    },
    MessageData {
        start: usize,
        len: usize,
    },
    FrameEnd,
}

impl Found {
    /// The event, its payload `input[start..start + len]` and a file's
    /// name `name` (validated as UTF-8 when it completed).
    #[inline(always)]
    pub(crate) fn event<'a>(self, name: &'a [u8], input: &'a [u8]) -> Event<'a> {
        match self {
            Found::FrameStart {
                status,
                version,
                file_count,
            } => Event::FrameStart {
                status,
                version,
                file_count,
            },
            Found::FileStart { size } => Event::FileStart {
                name: core::str::from_utf8(name).unwrap_or_default(),
                size,
            },
            Found::FileData { start, len } => Event::FileData(&input[start..start + len]),
            Found::FileEnd => Event::FileEnd,
            Found::MessageStart { size } => Event::MessageStart { size },
            Found::MessageData { start, len } => Event::MessageData(&input[start..start + len]),
            Found::FrameEnd => Event::FrameEnd,
        }
    }
}

/// A resumable TEJ decoder for one byte stream (one direction of a connection).
///
/// Feed it bytes with [`decode`](Self::decode) in any split; at the end of
/// the stream, [`finish`](Self::finish) tells whether it ended between frames.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    state: State,
    scratch: heapless::Vec<u8, SCRATCH_CAPACITY>,
    name: NameBuffer,
    /// Stream bytes consumed before the current call.
    stream_offset: u64,
    /// Files of the current frame not yet started.
    files_left: u64,
    /// Index of the current file within its frame.
    file_index: u64,
    /// Payload bytes of the current file or message not yet delivered.
    payload_left: u64,
    /// Sum of the file and message lengths announced in the current frame.
    frame_payload: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder at the start of a stream, enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            state: State::Status,
            scratch: heapless::Vec::new(),
            name: NameBuffer::new(),
            stream_offset: 0,
            files_left: 0,
            file_index: 0,
            payload_left: 0,
            frame_payload: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Total bytes consumed since the stream began.
    pub fn stream_offset(&self) -> u64 {
        self.stream_offset
    }

    /// Bytes of the file or message body being received that are still to
    /// come; 0 outside a body. A reader may read up to this many bytes
    /// knowing they are all payload.
    pub fn body_remaining(&self) -> u64 {
        match self.state {
            State::FileData | State::MessageData => self.payload_left,
            _ => 0,
        }
    }

    /// Whether the decoder sits between frames with nothing buffered: the
    /// stream may end here.
    pub fn is_between_frames(&self) -> bool {
        self.state == State::Status && self.scratch.is_empty()
    }

    /// Call at the end of the stream: `Ok` if it ended between frames,
    /// otherwise [`DecodeError::UnexpectedEof`] naming the unfinished field.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let field = match self.state {
            State::Failed(error) => return Err(error),
            State::Status if self.scratch.is_empty() => return Ok(()),
            State::Status => Field::Status,
            State::Version { .. } => Field::Version,
            State::FileCount { .. } => Field::FileCount,
            State::NameLength => Field::NameLength,
            State::Name { .. } => Field::Name,
            State::FileSize => Field::FileSize,
            // A pending end event means every byte arrived but the caller
            // stopped collecting events before the frame ended.
            State::FileData | State::FileEnd => Field::FileData,
            State::MessageLength => Field::MessageLength,
            State::MessageData | State::FrameEnd => Field::Message,
        };
        Err(DecodeError::UnexpectedEof {
            field,
            offset: self.stream_offset,
        })
    }

    /// Consumes bytes from `input` until one event completes or the input
    /// runs out.
    ///
    /// Returns how many bytes were consumed and the event, if any. Call again
    /// with the unconsumed rest (and more bytes as they arrive). Events that
    /// need no input (`FileEnd`, `FrameEnd`) are returned even for an empty
    /// `input`, so a caller loops until `event` is `None`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the stream breaks the protocol or a limit; the
    /// decoder then returns that error on every later call.
    #[inline(always)]
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        let mut pos = 0;
        let step = self.step(input, &mut pos);
        self.stream_offset += pos as u64;
        let found = match step {
            Ok(found) => found,
            Err(error) => {
                self.state = State::Failed(error);
                return Err(error);
            }
        };
        let event = found.map(|found| found.event(&self.name, input));
        Ok(Decoded {
            consumed: pos,
            event,
        })
    }

    /// Decodes a whole frame in one step when the decoder sits between frames
    /// and `input` starts with a complete frame that has no files and is
    /// within the limits: the common case of many small messages, without
    /// the four events [`decode`](Self::decode) would return for it.
    ///
    /// `None` consumes nothing and changes nothing: hand the input to
    /// [`decode`](Self::decode), which also reports any error in it.
    ///
    /// ```
    /// use tej_core::{Decoder, Frame, Limits};
    ///
    /// let wire = Frame::message("Hello").encode_to_vec().unwrap();
    /// let mut decoder = Decoder::new(Limits::default());
    /// let frame = decoder.decode_message_frame(&wire).unwrap();
    /// assert_eq!((frame.consumed, frame.message), (wire.len(), &b"Hello"[..]));
    /// assert!(decoder.decode_message_frame(&wire[..5]).is_none());
    /// ```
    #[inline]
    pub fn decode_message_frame<'a>(&mut self, input: &'a [u8]) -> Option<MessageFrame<'a>> {
        if self.state != State::Status || !self.scratch.is_empty() {
            return None;
        }
        let header: &[u8; MIN_FRAME_LEN] = input.get(..MIN_FRAME_LEN)?.try_into().ok()?;
        let status = Status::from_wire_byte(header[0])?;
        let mut file_count = [0u8; 8];
        file_count.copy_from_slice(&header[2..10]);
        if file_count != [0; 8] {
            return None;
        }
        let mut message_len = [0u8; 8];
        message_len.copy_from_slice(&header[10..]);
        let message_len = u64::from_be_bytes(message_len);
        if message_len > self.limits.max_message_size.min(self.limits.max_frame_size) {
            return None;
        }
        let end = MIN_FRAME_LEN.checked_add(usize::try_from(message_len).ok()?)?;
        let message = input.get(MIN_FRAME_LEN..end)?;
        self.stream_offset += end as u64;
        self.frame_payload = message_len;
        Some(MessageFrame {
            consumed: end,
            status,
            version: header[1],
            message,
        })
    }

    /// Advances the state machine over `input[*pos..]` until an event is found
    /// or the input is used up.
    fn step(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<Found>, DecodeError> {
        loop {
            match self.state {
                State::Failed(error) => return Err(error),
                State::Status => {
                    let Some(byte) = self.read_field(input, pos, parse_u8) else {
                        return Ok(None);
                    };
                    let status =
                        Status::from_wire_byte(byte).ok_or(DecodeError::StatusBitClear {
                            byte,
                            offset: self.field_offset(*pos, 1),
                        })?;
                    self.state = State::Version { status };
                }
                State::Version { status } => {
                    let Some(version) = self.read_field(input, pos, parse_u8) else {
                        return Ok(None);
                    };
                    self.state = State::FileCount { status, version };
                }
                State::FileCount { status, version } => {
                    let Some(file_count) = self.read_field(input, pos, parse_u64) else {
                        return Ok(None);
                    };
                    self.check(LimitKind::FileCount, file_count, *pos, 8)?;
                    self.files_left = file_count;
                    self.file_index = 0;
                    self.frame_payload = 0;
                    self.state = self.after_files_started();
                    return Ok(Some(Found::FrameStart {
                        status,
                        version,
                        file_count,
                    }));
                }
                State::NameLength => {
                    let Some(len) = self.read_field(input, pos, parse_u16) else {
                        return Ok(None);
                    };
                    self.check(LimitKind::NameLength, u64::from(len), *pos, 2)?;
                    if usize::from(len) > self.name_capacity() {
                        return Err(DecodeError::LimitExceeded {
                            limit: LimitKind::NameLength,
                            value: u64::from(len),
                            max: self.name_capacity() as u64,
                            offset: self.field_offset(*pos, 2),
                        });
                    }
                    self.name.clear();
                    self.state = State::Name { len };
                }
                State::Name { len } => {
                    let missing = usize::from(len) - self.name.len();
                    let take = missing.min(input.len() - *pos);
                    self.append_to_name(&input[*pos..*pos + take]);
                    *pos += take;
                    if self.name.len() < usize::from(len) {
                        return Ok(None);
                    }
                    if let Err(utf8) = core::str::from_utf8(&self.name) {
                        return Err(DecodeError::InvalidFileName {
                            file_index: self.file_index,
                            valid_up_to: utf8.valid_up_to(),
                            offset: self.field_offset(*pos, usize::from(len)),
                        });
                    }
                    self.state = State::FileSize;
                }
                State::FileSize => {
                    let payload = (LimitKind::FileSize, State::FileData, State::FileEnd);
                    let Some(size) = self.payload_length(input, pos, payload)? else {
                        return Ok(None);
                    };
                    self.files_left -= 1;
                    return Ok(Some(Found::FileStart { size }));
                }
                State::FileData => {
                    let piece = self.take_payload(input, pos, State::FileEnd);
                    return Ok(piece.map(|(start, len)| Found::FileData { start, len }));
                }
                State::FileEnd => {
                    self.file_index += 1;
                    self.state = self.after_files_started();
                    return Ok(Some(Found::FileEnd));
                }
                State::MessageLength => {
                    let payload = (LimitKind::MessageSize, State::MessageData, State::FrameEnd);
                    let Some(size) = self.payload_length(input, pos, payload)? else {
                        return Ok(None);
                    };
                    return Ok(Some(Found::MessageStart { size }));
                }
                State::MessageData => {
                    let piece = self.take_payload(input, pos, State::FrameEnd);
                    return Ok(piece.map(|(start, len)| Found::MessageData { start, len }));
                }
                State::FrameEnd => {
                    self.state = State::Status;
                    return Ok(Some(Found::FrameEnd));
                }
            }
        }
    }

    /// Reads one fixed-width field with a nom streaming parser, straight from
    /// the input when it is all there, through the scratch buffer when it is
    /// split across calls. `None`: the input ran out first (and was kept).
    #[inline(always)]
    fn read_field<T>(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        parse: impl Fn(&[u8]) -> IResult<&[u8], T>,
    ) -> Option<T> {
        let available = &input[*pos..];
        if self.scratch.is_empty() {
            if let Ok((rest, value)) = parse(available) {
                *pos += available.len() - rest.len();
                return Some(value);
            }
            // Incomplete: fewer bytes than the field's width, so they fit.
            let _ = self.scratch.extend_from_slice(available);
            *pos = input.len();
            return None;
        }
        // The field's width is what the parser asks for beyond the scratch.
        let needed = match parse(&self.scratch) {
            Err(nom::Err::Incomplete(nom::Needed::Size(more))) => more.get(),
            _ => 1,
        };
        let take = needed.min(available.len());
        let _ = self.scratch.extend_from_slice(&available[..take]);
        *pos += take;
        let value = parse(&self.scratch).ok().map(|(_, value)| value);
        if value.is_some() {
            self.scratch.clear();
        }
        value
    }

    /// Reads the 8-byte length of a file or the message and checks it
    /// against the limit `kind` and the frame's; then expects that many
    /// payload bytes, in state `data`, or none, going to state `end`.
    /// `None` while the length is incomplete.
    #[inline(always)]
    fn payload_length(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        (kind, data, end): (LimitKind, State, State),
    ) -> Result<Option<u64>, DecodeError> {
        let Some(size) = self.read_field(input, pos, parse_u64) else {
            return Ok(None);
        };
        self.check(kind, size, *pos, 8)?;
        self.add_to_frame(size, *pos)?;
        self.payload_left = size;
        self.state = if size == 0 { end } else { data };
        Ok(Some(size))
    }

    /// Delivers as much of the current payload as `input` holds (its start
    /// and length in `input`; `None` for no bytes), going to state `end`
    /// once the payload is all in.
    #[inline(always)]
    fn take_payload(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        end: State,
    ) -> Option<(usize, usize)> {
        let start = *pos;
        let available = (input.len() - start) as u64;
        let len = self.payload_left.min(available) as usize;
        self.payload_left -= len as u64;
        *pos += len;
        if self.payload_left == 0 {
            self.state = end;
        }
        (len > 0).then_some((start, len))
    }

    fn after_files_started(&self) -> State {
        if self.files_left > 0 {
            State::NameLength
        } else {
            State::MessageLength
        }
    }

    /// Stream offset of a field of `width` bytes that ends at `pos` of this call's input.
    fn field_offset(&self, pos: usize, width: usize) -> u64 {
        (self.stream_offset + pos as u64).saturating_sub(width as u64)
    }

    fn check(
        &self,
        limit: LimitKind,
        value: u64,
        pos: usize,
        width: usize,
    ) -> Result<(), DecodeError> {
        let max = self.limits.get(limit);
        if value > max {
            return Err(DecodeError::LimitExceeded {
                limit,
                value,
                max,
                offset: self.field_offset(pos, width),
            });
        }
        Ok(())
    }

    fn add_to_frame(&mut self, len: u64, pos: usize) -> Result<(), DecodeError> {
        let total = self.frame_payload.saturating_add(len);
        self.check(LimitKind::FrameSize, total, pos, 8)?;
        self.frame_payload = total;
        Ok(())
    }

    fn append_to_name(&mut self, bytes: &[u8]) {
        #[cfg(feature = "alloc")]
        self.name.extend_from_slice(bytes);
        // Cannot fail: the name length was checked against the capacity.
        #[cfg(not(feature = "alloc"))]
        let _ = self.name.extend_from_slice(bytes);
    }

    fn name_capacity(&self) -> usize {
        #[cfg(feature = "alloc")]
        {
            crate::wire::MAX_NAME_LEN
        }
        #[cfg(not(feature = "alloc"))]
        {
            NO_ALLOC_NAME_CAPACITY
        }
    }
}
