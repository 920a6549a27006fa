//! Frames checked and made ready to send: names validated, file sources opened.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::encode::checked_name_len;
use crate::error::EncodeError;
use crate::frame::{FileBody, Frame};
use crate::session::error::SendError;
use crate::wire::{Status, FILE_HEADER_FIXED_LEN, MIN_FRAME_LEN};

/// What a queued frame costs against a send bound for each file from a
/// source: its bytes are not in memory, but an open source is a resource.
#[cfg(feature = "std")]
const SOURCE_FILE_COST: usize = 64 * 1024;

/// Why a frame could not be prepared for sending.
#[derive(Debug)]
pub(crate) enum PrepareError {
    Encode(EncodeError),
    #[cfg(feature = "std")]
    Open(std::io::Error),
}

impl PrepareError {
    /// The error to give the caller, with the frame that was not sent.
    pub(crate) fn into_send_error(self, frame: Frame) -> SendError {
        match self {
            PrepareError::Encode(error) => SendError::Invalid(error, frame),
            #[cfg(feature = "std")]
            PrepareError::Open(error) => SendError::File(error, frame),
        }
    }
}

pub(crate) enum OutgoingBody {
    Memory(Bytes),
    #[cfg(feature = "std")]
    Source {
        reader: alloc::boxed::Box<dyn std::io::Read + Send>,
        source: alloc::sync::Arc<dyn crate::storage::FileSource>,
    },
}

impl OutgoingBody {
    pub(crate) fn len(&self) -> u64 {
        match self {
            OutgoingBody::Memory(data) => data.len() as u64,
            #[cfg(feature = "std")]
            OutgoingBody::Source { source, .. } => source.len(),
        }
    }
}

pub(crate) struct OutgoingFile {
    pub(crate) name: String,
    pub(crate) body: OutgoingBody,
}

/// A frame that can be written without further checks.
pub(crate) struct OutgoingFrame {
    pub(crate) status: Status,
    pub(crate) version: u8,
    pub(crate) files: Vec<OutgoingFile>,
    pub(crate) message: Option<Bytes>,
    /// Who watches this frame's bytes leave, for `send_tracked`.
    #[cfg(feature = "std")]
    pub(crate) progress: Option<crate::session::progress::Tracker>,
}

impl OutgoingFrame {
    /// Validates `frame` and opens its file sources. On error the frame is
    /// handed back untouched, so nothing the caller gave is lost.
    pub(crate) fn prepare(frame: Frame) -> Result<OutgoingFrame, (PrepareError, Frame)> {
        for file in &frame.files {
            if let Err(error) = checked_name_len(&file.name) {
                return Err((PrepareError::Encode(error), frame));
            }
            if let FileBody::Delivered { .. } = file.body {
                return Err((PrepareError::Encode(EncodeError::BodyNotInMemory), frame));
            }
        }
        #[cfg(feature = "std")]
        let mut opened = Vec::new();
        #[cfg(feature = "std")]
        for file in &frame.files {
            if let FileBody::Source(source) = &file.body {
                match source.open() {
                    Ok(handle) => opened.push(handle),
                    Err(error) => return Err((PrepareError::Open(error), frame)),
                }
            }
        }
        #[cfg(feature = "std")]
        let mut opened = opened.into_iter();
        let files = frame
            .files
            .into_iter()
            .map(|file| {
                let body = match file.body {
                    FileBody::Memory(data) => OutgoingBody::Memory(data),
                    #[cfg(feature = "std")]
                    FileBody::Source(source) => match opened.next() {
                        Some(reader) => OutgoingBody::Source { reader, source },
                        None => OutgoingBody::Memory(Bytes::new()),
                    },
                    // Refused above.
                    FileBody::Delivered { .. } => OutgoingBody::Memory(Bytes::new()),
                };
                OutgoingFile {
                    name: file.name,
                    body,
                }
            })
            .collect();
        Ok(OutgoingFrame {
            status: frame.status,
            version: frame.version,
            files,
            message: frame.message,
            #[cfg(feature = "std")]
            progress: None,
        })
    }

    /// A copy of the frame as the caller gave it: payloads and sources shared.
    #[cfg(feature = "std")]
    pub(crate) fn to_frame(&self) -> Frame {
        let files = self
            .files
            .iter()
            .map(|file| crate::frame::File {
                name: file.name.clone(),
                body: match &file.body {
                    OutgoingBody::Memory(data) => FileBody::Memory(data.clone()),
                    OutgoingBody::Source { source, .. } => FileBody::Source(source.clone()),
                },
            })
            .collect();
        Frame {
            status: self.status,
            version: self.version,
            files,
            message: self.message.clone(),
        }
    }

    /// The frame again, for handing back what could not be sent.
    #[cfg(feature = "std")]
    pub(crate) fn into_frame(self) -> Frame {
        let files = self
            .files
            .into_iter()
            .map(|file| crate::frame::File {
                name: file.name,
                body: match file.body {
                    OutgoingBody::Memory(data) => FileBody::Memory(data),
                    #[cfg(feature = "std")]
                    OutgoingBody::Source { source, .. } => FileBody::Source(source),
                },
            })
            .collect();
        Frame {
            status: self.status,
            version: self.version,
            files,
            message: self.message,
        }
    }

    /// The frame's length with each file's body counted as `body_len` says.
    fn len_with(&self, body_len: impl Fn(&OutgoingBody) -> u64) -> u64 {
        let files: u64 = self
            .files
            .iter()
            .map(|file| (FILE_HEADER_FIXED_LEN + file.name.len()) as u64 + body_len(&file.body))
            .sum();
        MIN_FRAME_LEN as u64
            + files
            + self
                .message
                .as_ref()
                .map_or(0, |message| message.len() as u64)
    }

    /// Bytes on the wire.
    pub(crate) fn encoded_len(&self) -> u64 {
        self.len_with(OutgoingBody::len)
    }

    /// What the frame costs against a send bound: its bytes in memory, a
    /// file from a source [`SOURCE_FILE_COST`] (an open source, not its bytes).
    #[cfg(feature = "std")]
    pub(crate) fn memory_cost(&self) -> usize {
        let cost = self.len_with(|body| match body {
            OutgoingBody::Memory(data) => data.len() as u64,
            OutgoingBody::Source { .. } => SOURCE_FILE_COST as u64,
        });
        // Within memory: what is not a source is held in it.
        cost as usize
    }
}
