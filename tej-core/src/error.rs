//! Typed errors: what was wrong, and where in the stream.

/// A status value outside `0..=127`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidStatus {
    /// The rejected value.
    pub value: u8,
}

impl core::fmt::Display for InvalidStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let InvalidStatus { value } = self;
        write!(f, "custom status {value} is out of range (0..=127)")
    }
}

impl core::error::Error for InvalidStatus {}

/// The field of a frame, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The first byte: status bit and custom status.
    Status,
    /// The protocol version byte.
    Version,
    /// The u64 file count.
    FileCount,
    /// A file's u16 name length.
    NameLength,
    /// A file's name bytes.
    Name,
    /// A file's u64 data length.
    FileSize,
    /// A file's data.
    FileData,
    /// The u64 message length.
    MessageLength,
    /// The message bytes.
    Message,
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Field::Status => "status byte",
            Field::Version => "protocol version",
            Field::FileCount => "file count",
            Field::NameLength => "file name length",
            Field::Name => "file name",
            Field::FileSize => "file size",
            Field::FileData => "file data",
            Field::MessageLength => "message length",
            Field::Message => "message",
        })
    }
}

/// Which of the [`Limits`](crate::Limits) a peer exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// `max_file_count`.
    FileCount,
    /// `max_name_len`.
    NameLength,
    /// `max_file_size`.
    FileSize,
    /// `max_message_size`.
    MessageSize,
    /// `max_frame_size`.
    FrameSize,
    /// `max_stored_file_size`.
    StoredFileSize,
    /// `max_stored_frame_size`.
    StoredFrameSize,
}

impl core::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LimitKind::FileCount => "file count",
            LimitKind::NameLength => "file name length",
            LimitKind::FileSize => "file size",
            LimitKind::MessageSize => "message size",
            LimitKind::FrameSize => "frame size in memory",
            LimitKind::StoredFileSize => "stored file size",
            LimitKind::StoredFrameSize => "stored frame size",
        })
    }
}

/// Why a byte stream is not valid TEJ. Every variant carries `offset`: the
/// position in the stream (counted from the decoder's first byte) where the
/// offending field starts.
///
/// After an error the decoder is poisoned and returns the same error again:
/// the stream cannot be resynchronised, so the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte of a frame has its top bit clear.
    StatusBitClear {
        /// The byte that was read.
        byte: u8,
        /// Where it is in the stream.
        offset: u64,
    },
    /// A file name is not valid UTF-8 (the reference implementation writes
    /// non-ASCII names with a character count, which ends here).
    InvalidFileName {
        /// The file's index in its frame, from 0.
        file_index: u64,
        /// How many bytes of the name are valid UTF-8.
        valid_up_to: usize,
        /// Where the name starts in the stream.
        offset: u64,
    },
    /// A length is above the configured limit.
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// What the peer announced (for frame size: the running total).
        value: u64,
        /// The limit in force.
        max: u64,
        /// Where the length field starts in the stream.
        offset: u64,
    },
    /// The stream ended inside a frame.
    UnexpectedEof {
        /// The field that was being read.
        field: Field,
        /// How many bytes the stream had in all.
        offset: u64,
    },
}

impl core::error::Error for DecodeError {}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::StatusBitClear { byte, offset } => write!(f, "status bit is 0 in first byte {byte:#04x} of a frame at offset {offset}"),
            DecodeError::InvalidFileName { file_index, valid_up_to, offset } => write!(f, "file {file_index} has a name that is not UTF-8 (valid up to byte {valid_up_to}) at offset {offset}"),
            DecodeError::LimitExceeded { limit, value, max, offset } => write!(f, "{limit} {value} exceeds the limit of {max} at offset {offset}"),
            DecodeError::UnexpectedEof { field, offset } => write!(f, "stream ended inside the {field} at offset {offset}"),
        }
    }
}

impl DecodeError {
    /// Where in the stream the problem is.
    pub const fn offset(&self) -> u64 {
        match *self {
            DecodeError::StatusBitClear { offset, .. }
            | DecodeError::InvalidFileName { offset, .. }
            | DecodeError::LimitExceeded { offset, .. }
            | DecodeError::UnexpectedEof { offset, .. } => offset,
        }
    }
}

/// Why a frame or header could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// A file name longer than the wire's 65535 bytes.
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: u64,
        /// Bytes the buffer has.
        available: usize,
    },
    /// A file's body is not in memory: a file on disk can be streamed by a
    /// session; a body that was delivered elsewhere on receipt cannot be sent.
    BodyNotInMemory,
}

impl core::error::Error for EncodeError {}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::NameTooLong { len } => {
                write!(f, "file name is {len} bytes; the wire allows at most 65535")
            }
            EncodeError::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer holds {available} bytes but {needed} are needed"
            ),
            EncodeError::BodyNotInMemory => write!(
                f,
                "a file body is not in memory; only a session can stream a file on disk"
            ),
        }
    }
}
