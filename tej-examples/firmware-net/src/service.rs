//! What the firmware does on one connection, over any embedded-io-async
//! stream: greet, then answer every frame with the size and SHA-256 of each
//! file and of the message, hashed as the bytes stream through.

use core::fmt::Write as _;

use embedded_io_async::{Read, Write};
use heapless::String;
use sha2::{Digest, Sha256};
use tej_core::embedded::asynch::Endpoint;
use tej_core::embedded::Error;
use tej_core::{Event, FrameRef, Limits, Status};

/// Most files in one frame.
pub const MAX_FILES: u64 = 8;
/// Longest file name, in bytes.
pub const MAX_NAME_LEN: u16 = 64;
/// Largest file, in bytes: it streams through, so RAM does not bound it.
pub const MAX_FILE_LEN: u64 = 16 << 20;
/// Largest message, in bytes.
pub const MAX_MESSAGE_LEN: u64 = 4 << 10;

/// What the decoder lets through.
pub const LIMITS: Limits = Limits::DEFAULT
    .max_file_count(MAX_FILES)
    .max_name_len(MAX_NAME_LEN)
    .max_file_size(MAX_FILE_LEN)
    .max_message_size(MAX_MESSAGE_LEN)
    .max_frame_size(MAX_FILES * MAX_FILE_LEN + MAX_MESSAGE_LEN);

// The statuses of tej-firmware's echo: quit, bye, ready, refused.
pub use tej_embedded_example::{BYE, QUIT, READY, REFUSED};
/// The answer to every other frame: a line per file and one for the
/// message (the status of tej-firmware's echo).
pub const ANSWER: Status = tej_embedded_example::ECHO;

const READY_MESSAGE: &[u8] = b"tej-firmware-net ready";
const BYE_MESSAGE: &[u8] = b"tej-firmware-net bye";

/// One line: name, tab, size up to 8 digits, tab, 64 hex digits, newline.
const LINE_LEN: usize = MAX_NAME_LEN as usize + 1 + 8 + 1 + 64 + 1;
/// The answer's message: a line per file and the message's line.
const REPORT_LEN: usize = (MAX_FILES as usize + 1) * LINE_LEN;
/// Longest [`REFUSED`] message: room for any error's text.
const REFUSAL_LEN: usize = 192;

/// How a connection ended.
pub enum Outcome<E> {
    /// The peer closed its side between frames.
    Closed,
    /// A [`QUIT`] frame was answered with [`BYE`].
    Quit,
    /// The input was refused with a [`REFUSED`] frame naming this error.
    Refused(Error<E>),
    /// The connection failed.
    Failed(Error<E>),
}

/// What is being hashed: a file's name and size, or the message's size.
struct Hashing {
    name: String<{ MAX_NAME_LEN as usize }>,
    size: u64,
    hasher: Sha256,
}

/// Serves one connection over `endpoint` until it ends.
pub async fn serve<S: Read + Write>(endpoint: &mut Endpoint<'_, S>) -> (Outcome<S::Error>, u32) {
    let mut frames = 0;
    if let Err(error) = send(endpoint, READY, READY_MESSAGE).await {
        return (Outcome::Failed(error), frames);
    }
    let mut report: String<REPORT_LEN> = String::new();
    let mut hashing = Hashing {
        name: String::new(),
        size: 0,
        hasher: Sha256::new(),
    };
    let mut frame_status = Status::DEFAULT;
    loop {
        let event = match endpoint.next_event().await {
            Ok(Some(event)) => event,
            Ok(None) => return (Outcome::Closed, frames),
            Err(error @ Error::Decode(_)) => {
                let _ = refuse(endpoint, &error).await;
                return (Outcome::Refused(error), frames);
            }
            Err(error) => return (Outcome::Failed(error), frames),
        };
        match event {
            Event::FrameStart { status, .. } => {
                frame_status = status;
                report.clear();
            }
            Event::FileStart { name, size } => {
                hashing.name.clear();
                // Cannot fail: the limits keep names within the capacity.
                let _ = hashing.name.push_str(name);
                hashing.size = size;
                hashing.hasher = Sha256::new();
            }
            Event::MessageStart { size } => {
                hashing.name.clear();
                let _ = hashing.name.push_str("message");
                hashing.size = size;
                hashing.hasher = Sha256::new();
            }
            Event::FileData(piece) | Event::MessageData(piece) => hashing.hasher.update(piece),
            Event::FileEnd => line(&mut report, &mut hashing),
            Event::FrameEnd => {
                line(&mut report, &mut hashing);
                frames += 1;
                let sent = match frame_status {
                    // The endpoint answered the ping.
                    Status::PING => Ok(()),
                    QUIT => {
                        let sent = send(endpoint, BYE, BYE_MESSAGE).await;
                        return match sent.and(endpoint.flush().await) {
                            Ok(()) => (Outcome::Quit, frames),
                            Err(error) => (Outcome::Failed(error), frames),
                        };
                    }
                    _ => send(endpoint, ANSWER, report.as_bytes()).await,
                };
                if let Err(error) = sent {
                    return (Outcome::Failed(error), frames);
                }
            }
        }
    }
}

/// Appends `NAME<TAB>SIZE<TAB>SHA256HEX\n` for what `hashing` finished.
fn line<const N: usize>(report: &mut String<N>, hashing: &mut Hashing) {
    let digest = core::mem::take(&mut hashing.hasher).finalize();
    // Cannot overflow: the report has room for the most lines the limits allow.
    let _ = write!(report, "{}\t{}\t", hashing.name, hashing.size);
    for byte in digest.iter() {
        let _ = write!(report, "{byte:02x}");
    }
    let _ = report.push('\n');
}

async fn send<S: Read + Write>(
    endpoint: &mut Endpoint<'_, S>,
    status: Status,
    message: &[u8],
) -> Result<(), Error<S::Error>> {
    endpoint
        .send(&FrameRef::new(status, &[], Some(message)))
        .await
}

/// Sends the [`REFUSED`] frame naming `error`, and waits until it is out.
async fn refuse<S: Read + Write>(
    endpoint: &mut Endpoint<'_, S>,
    error: &Error<S::Error>,
) -> Result<(), Error<S::Error>>
where
    S::Error: core::fmt::Display,
{
    let mut text: String<REFUSAL_LEN> = String::new();
    // Cut short only if an error's text outgrew the buffer.
    let _ = write!(text, "refused: {error}");
    send(endpoint, REFUSED, text.as_bytes()).await?;
    endpoint.flush().await
}
