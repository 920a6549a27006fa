//! The TEJ v1 wire format: constants and the validated [`Status`].
//!
//! One frame, all integers big-endian, no padding:
//!
//! | field            | size        |
//! |------------------|-------------|
//! | status byte      | 1 (top bit 1, low 7 bits the custom status) |
//! | protocol version | 1           |
//! | file count       | u64         |
//! | per file: name length (u16), name (UTF-8), data length (u64), data | |
//! | message length   | u64 (0 means "no message") |
//! | message          | bytes       |

use crate::error::InvalidStatus;

/// The bit that must be set in every frame's first byte.
pub const STATUS_BIT: u8 = 0b1000_0000;
/// The low seven bits of the first byte: the custom status.
pub const CUSTOM_STATUS_MASK: u8 = 0b0111_1111;
/// The protocol version this crate writes by default. Any version is accepted on receipt.
pub const PROTOCOL_VERSION: u8 = 1;
/// Status byte, version byte and the u64 file count.
pub const FRAME_HEADER_LEN: usize = 1 + 1 + 8;
/// The u16 name length and the u64 data length around a file's name.
pub const FILE_HEADER_FIXED_LEN: usize = 2 + 8;
/// The u64 message length.
pub const MESSAGE_HEADER_LEN: usize = 8;
/// The smallest possible frame: no files and no message.
pub const MIN_FRAME_LEN: usize = FRAME_HEADER_LEN + MESSAGE_HEADER_LEN;
/// The longest file name the wire can carry, in bytes.
pub const MAX_NAME_LEN: usize = u16::MAX as usize;

/// A frame's custom status: a value in `0..=127`.
///
/// Construction validates the range, so a `Status` always fits the seven
/// bits the wire has for it; nothing is silently masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Status(u8);

impl Status {
    /// Status 0, what frames carry unless told otherwise.
    pub const DEFAULT: Status = Status(0);
    /// Status 2: the reference implementation's ping.
    pub const PING: Status = Status(2);
    /// The largest custom status, 127.
    pub const MAX: Status = Status(CUSTOM_STATUS_MASK);

    /// A status from its value, or [`InvalidStatus`] if it is above 127.
    pub const fn new(value: u8) -> Result<Status, InvalidStatus> {
        if value > CUSTOM_STATUS_MASK {
            Err(InvalidStatus { value })
        } else {
            Ok(Status(value))
        }
    }

    /// The value, in `0..=127`.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether this is the reference's ping status (2).
    pub const fn is_ping(self) -> bool {
        self.0 == Self::PING.0
    }

    /// The first byte of a frame with this status: the status bit set.
    pub const fn to_wire_byte(self) -> u8 {
        STATUS_BIT | self.0
    }

    /// The status carried by a frame's first byte, or `None` if the status bit is clear.
    pub const fn from_wire_byte(byte: u8) -> Option<Status> {
        if byte & STATUS_BIT == 0 {
            None
        } else {
            Some(Status(byte & CUSTOM_STATUS_MASK))
        }
    }
}

impl TryFrom<u8> for Status {
    type Error = InvalidStatus;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Status::new(value)
    }
}

impl From<Status> for u8 {
    fn from(status: Status) -> u8 {
        status.get()
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}
