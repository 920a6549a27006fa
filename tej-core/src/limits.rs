//! What a peer may announce before the decoder refuses the frame.

use crate::error::LimitKind;

/// Bounds on what a peer may announce, checked the moment each length is read
/// and before anything is allocated for it.
///
/// Every length on the wire is a u64 chosen by the peer; none of them is ever
/// trusted to size an allocation.
///
/// # The policy: memory is bounded, disk is the receiver's choice
///
/// - **Names** are bounded by the wire itself (65,535 bytes) and accepted up
///   to that by default, as the reference implementation sends them.
/// - **Bytes held in memory** are bounded by default: a file received into
///   memory by [`max_file_size`](Self::max_file_size) (1 GiB), a message by
///   [`max_message_size`](Self::max_message_size) (64 MiB), and everything a
///   frame holds in memory (in-memory files plus its message) by
///   [`max_frame_size`](Self::max_frame_size) (1 GiB). A bare
///   [`Decoder`](crate::Decoder), an `Assembler` and a codec hold every file
///   in memory, so for them these bound every file.
/// - **Files that go elsewhere** (a session's handler chose a spool
///   directory, a writer or discard as the
///   [`FileTarget`](crate::FileTarget)) are streamed in constant memory and
///   have no size bound by default:
///   [`max_stored_file_size`](Self::max_stored_file_size) and
///   [`max_stored_frame_size`](Self::max_stored_frame_size) set one when
///   the disk must be protected too.
///
/// Build non-default limits from [`Limits::DEFAULT`] with the setters:
///
/// ```
/// use tej_core::Limits;
///
/// const SMALL: Limits = Limits::DEFAULT.max_file_count(16).max_name_len(255);
/// assert_eq!(SMALL.max_file_count, 16);
/// assert_eq!(SMALL.max_stored_file_size, u64::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Most files in one frame.
    pub max_file_count: u64,
    /// Longest file name, in bytes (at most 65535, what the wire can carry).
    pub max_name_len: u16,
    /// Largest single file received into memory, in bytes.
    pub max_file_size: u64,
    /// Largest message, in bytes.
    pub max_message_size: u64,
    /// Largest sum of in-memory file and message lengths in one frame, in bytes.
    pub max_frame_size: u64,
    /// Largest single file that does not go to memory (spooled, written
    /// elsewhere or discarded by a session's handler), in bytes.
    pub max_stored_file_size: u64,
    /// Largest sum of the lengths of a frame's files that do not go to memory.
    pub max_stored_frame_size: u64,
}

impl Limits {
    /// The defaults: 1,024 files, names up to the wire's 65,535 bytes,
    /// 1 GiB per in-memory file and per frame in memory, 64 MiB messages,
    /// and no bound on files that do not go to memory.
    pub const DEFAULT: Limits = Limits {
        max_file_count: 1024,
        max_name_len: u16::MAX,
        max_file_size: 1 << 30,
        max_message_size: 64 << 20,
        max_frame_size: 1 << 30,
        max_stored_file_size: u64::MAX,
        max_stored_frame_size: u64::MAX,
    };

    /// No bound beyond what the wire format itself allows. Only for peers you
    /// trust: with these, a peer decides how much memory an assembler uses.
    pub const UNLIMITED: Limits = Limits {
        max_file_count: u64::MAX,
        max_name_len: u16::MAX,
        max_file_size: u64::MAX,
        max_message_size: u64::MAX,
        max_frame_size: u64::MAX,
        max_stored_file_size: u64::MAX,
        max_stored_frame_size: u64::MAX,
    };

    setters! {
        max_file_count(count: u64);
        max_name_len(bytes: u16);
        max_file_size(bytes: u64);
        max_message_size(bytes: u64);
        max_frame_size(bytes: u64);
        max_stored_file_size(bytes: u64);
        max_stored_frame_size(bytes: u64);
    }

    /// The bound that applies to `kind`.
    pub const fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::FileCount => self.max_file_count,
            LimitKind::NameLength => self.max_name_len as u64,
            LimitKind::FileSize => self.max_file_size,
            LimitKind::MessageSize => self.max_message_size,
            LimitKind::FrameSize => self.max_frame_size,
            LimitKind::StoredFileSize => self.max_stored_file_size,
            LimitKind::StoredFrameSize => self.max_stored_frame_size,
        }
    }

    /// What a session's decoder enforces itself: file sizes up to the
    /// larger of the memory and stored bounds, frames unbounded, messages
    /// within both message and frame bounds. The session then checks each
    /// file against the bound of where its handler sends it.
    #[cfg(feature = "alloc")]
    pub(crate) const fn for_session_decoder(self) -> Limits {
        let file = if self.max_file_size > self.max_stored_file_size {
            self.max_file_size
        } else {
            self.max_stored_file_size
        };
        let message = if self.max_message_size < self.max_frame_size {
            self.max_message_size
        } else {
            self.max_frame_size
        };
        Limits {
            max_file_size: file,
            max_message_size: message,
            max_frame_size: u64::MAX,
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
