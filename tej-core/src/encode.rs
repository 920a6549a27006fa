//! The encoder: headers into the caller's buffer, payloads by reference.
//!
//! A frame on the wire is a run of headers with payloads between them:
//!
//! ```text
//! [frame header] ([file header] [file data])* [message header] [message]
//! ```
//!
//! The `write_*_header` functions write one header into a caller's buffer,
//! so an adapter can hand header and payload to one vectored write without
//! copying the payload. [`FrameRef`] encodes a whole frame from borrowed
//! parts into a fixed buffer, with no allocator.

use crate::error::EncodeError;
use crate::wire::{
    Status, FILE_HEADER_FIXED_LEN, FRAME_HEADER_LEN, MAX_NAME_LEN, MESSAGE_HEADER_LEN,
};

/// A frame's header: status byte, version byte, u64 file count.
pub fn frame_header(status: Status, version: u8, file_count: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0; FRAME_HEADER_LEN];
    header[0] = status.to_wire_byte();
    header[1] = version;
    header[2..].copy_from_slice(&file_count.to_be_bytes());
    header
}

/// The message header: its u64 length (0 for "no message").
pub fn message_header(len: u64) -> [u8; MESSAGE_HEADER_LEN] {
    len.to_be_bytes()
}

/// Bytes a file header takes: u16 name length, the name, u64 data length.
pub const fn file_header_len(name: &str) -> usize {
    FILE_HEADER_FIXED_LEN + name.len()
}

/// Writes a file's header (u16 name length in **bytes**, the UTF-8 name,
/// u64 data length) at the start of `out`; returns the bytes written.
///
/// # Errors
///
/// [`EncodeError::NameTooLong`] for a name over 65535 bytes,
/// [`EncodeError::BufferTooSmall`] if `out` cannot hold the header.
pub fn write_file_header(out: &mut [u8], name: &str, data_len: u64) -> Result<usize, EncodeError> {
    let name_len = checked_name_len(name)?;
    let len = file_header_len(name);
    let out = buffer(out, len)?;
    out[..2].copy_from_slice(&name_len.to_be_bytes());
    out[2..2 + name.len()].copy_from_slice(name.as_bytes());
    out[2 + name.len()..].copy_from_slice(&data_len.to_be_bytes());
    Ok(len)
}

/// Writes a frame header at the start of `out`; returns the bytes written.
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] if `out` is shorter than 10 bytes.
pub fn write_frame_header(
    out: &mut [u8],
    status: Status,
    version: u8,
    file_count: u64,
) -> Result<usize, EncodeError> {
    let header = frame_header(status, version, file_count);
    buffer(out, header.len())?.copy_from_slice(&header);
    Ok(header.len())
}

/// Writes the message header at the start of `out`; returns the bytes written.
///
/// # Errors
///
/// [`EncodeError::BufferTooSmall`] if `out` is shorter than 8 bytes.
pub fn write_message_header(out: &mut [u8], len: u64) -> Result<usize, EncodeError> {
    let header = message_header(len);
    buffer(out, header.len())?.copy_from_slice(&header);
    Ok(header.len())
}

/// The wire's u16 name length, or [`EncodeError::NameTooLong`].
pub(crate) fn checked_name_len(name: &str) -> Result<u16, EncodeError> {
    if name.len() > MAX_NAME_LEN {
        return Err(EncodeError::NameTooLong { len: name.len() });
    }
    Ok(name.len() as u16)
}

fn buffer(out: &mut [u8], needed: usize) -> Result<&mut [u8], EncodeError> {
    let available = out.len();
    out.get_mut(..needed).ok_or(EncodeError::BufferTooSmall {
        needed: needed as u64,
        available,
    })
}

/// A file borrowed for encoding: its name and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRef<'a> {
    /// The file name, written with its UTF-8 byte length.
    pub name: &'a str,
    /// The file's bytes.
    pub data: &'a [u8],
}

impl<'a> FileRef<'a> {
    /// A file from its name and data.
    pub const fn new(name: &'a str, data: &'a [u8]) -> Self {
        FileRef { name, data }
    }
}

/// A frame borrowed for encoding, usable without an allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The custom status.
    pub status: Status,
    /// The protocol version byte.
    pub version: u8,
    /// The files, in order.
    pub files: &'a [FileRef<'a>],
    /// The message; `None` and an empty message both encode as length 0.
    pub message: Option<&'a [u8]>,
}

impl<'a> FrameRef<'a> {
    /// A version-1 frame.
    pub const fn new(status: Status, files: &'a [FileRef<'a>], message: Option<&'a [u8]>) -> Self {
        FrameRef {
            status,
            version: crate::wire::PROTOCOL_VERSION,
            files,
            message,
        }
    }

    /// A version-1 frame with status 0 carrying only `message`, as
    /// `Frame::message` makes one.
    pub const fn message(message: &'a [u8]) -> Self {
        FrameRef::new(Status::DEFAULT, &[], Some(message))
    }

    /// The exact number of bytes [`encode_into`](Self::encode_into) writes.
    pub fn encoded_len(&self) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|file| file_header_len(file.name) as u64 + file.data.len() as u64)
            .sum();
        let message = self.message.map_or(0, |message| message.len() as u64);
        (FRAME_HEADER_LEN + MESSAGE_HEADER_LEN) as u64 + files + message
    }

    /// Encodes the whole frame at the start of `out`; returns the bytes written.
    ///
    /// # Errors
    ///
    /// [`EncodeError::NameTooLong`] or [`EncodeError::BufferTooSmall`]; on
    /// error the buffer's contents are unspecified.
    pub fn encode_into(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        for file in self.files {
            checked_name_len(file.name)?;
        }
        let needed = self.encoded_len();
        if needed > out.len() as u64 {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        let mut written =
            write_frame_header(out, self.status, self.version, self.files.len() as u64)?;
        for file in self.files {
            written += write_file_header(&mut out[written..], file.name, file.data.len() as u64)?;
            out[written..written + file.data.len()].copy_from_slice(file.data);
            written += file.data.len();
        }
        let message = self.message.unwrap_or_default();
        written += write_message_header(&mut out[written..], message.len() as u64)?;
        out[written..written + message.len()].copy_from_slice(message);
        Ok(written + message.len())
    }
}
