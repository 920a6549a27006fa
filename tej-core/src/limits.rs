//! What a peer may announce before the decoder refuses the frame.

use crate::error::LimitKind;

/// Bounds on what a peer may announce, checked the moment each length is read
/// and before anything is allocated for it.
///
/// Every length on the wire is a u64 chosen by the peer; none of them is ever
/// trusted to size an allocation. The defaults suit a server that holds whole
/// frames in memory; raise `max_file_size` when files are streamed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most files in one frame.
    pub max_file_count: u64,
    /// Longest file name, in bytes (at most 65535, what the wire can carry).
    pub max_name_len: u16,
    /// Largest single file, in bytes.
    pub max_file_size: u64,
    /// Largest message, in bytes.
    pub max_message_size: u64,
    /// Largest sum of all file and message lengths in one frame, in bytes.
    pub max_frame_size: u64,
}

impl Limits {
    /// The defaults: 1,024 files, 1,024-byte names, 1 GiB per file and per
    /// frame, 64 MiB messages.
    pub const DEFAULT: Limits = Limits {
        max_file_count: 1024,
        max_name_len: 1024,
        max_file_size: 1 << 30,
        max_message_size: 64 << 20,
        max_frame_size: 1 << 30,
    };

    /// No bound beyond what the wire format itself allows. Only for peers you
    /// trust: with these, a peer decides how much memory an assembler uses.
    pub const UNLIMITED: Limits = Limits {
        max_file_count: u64::MAX,
        max_name_len: u16::MAX,
        max_file_size: u64::MAX,
        max_message_size: u64::MAX,
        max_frame_size: u64::MAX,
    };

    /// The bound that applies to `kind`.
    pub const fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::FileCount => self.max_file_count,
            LimitKind::NameLength => self.max_name_len as u64,
            LimitKind::FileSize => self.max_file_size,
            LimitKind::MessageSize => self.max_message_size,
            LimitKind::FrameSize => self.max_frame_size,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
