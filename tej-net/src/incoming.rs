//! The incoming half of a connection you await: frames as a `Stream`, each
//! frame's files one after another as `AsyncRead`s or by chunk, with the
//! consumer's pace pushed back to the socket.
//!
//! It is a view of the same [`Session`](tej_core::Session) a [`Handler`]
//! drives: a handler of this module's queues what arrives for the
//! consumer and offers the session only the room left in that queue
//! ([`Handler::poll_room`]). While the consumer does not read, the session
//! reads nothing from the socket, mid-body included, and the peer's writes
//! stall in TCP; the consumer's buffer `C` adds `C` plus one frame to the
//! connection's memory bound (`tej_core::session::memory`).

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_lite::{AsyncRead, Stream};
use tej_core::storage::{FileSink, StorageError};
use tej_core::{Connection, DisconnectReason, FileBody, FileTarget, Frame, Handler, Status};

/// What a connection buffers for its consumer by default: 256 KiB.
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// A frame's step, queued for the consumer in wire order.
enum Item {
    /// A frame without files, whole.
    Whole(Frame),
    /// A frame with files begins.
    Start { status: Status, file_count: u64 },
    /// One of its files begins.
    File { name: String, size: u64 },
    /// Bytes of that file.
    Data(Bytes),
    /// That file is complete.
    FileEnd,
    /// The frame is complete: its message.
    End(Option<Bytes>),
    /// The frame will never be complete (the connection ended part-way,
    /// or broke the protocol).
    Cut,
}

impl Item {
    /// What this item costs against the consumer's buffer: its own size
    /// (so that frames without a message count too) and the bytes of the
    /// peer's it holds.
    fn held(&self) -> usize {
        let bytes = match self {
            Item::Whole(frame) => frame.message.as_ref().map_or(0, Bytes::len),
            Item::File { name, .. } => name.len(),
            Item::Data(data) => data.len(),
            Item::End(message) => message.as_ref().map_or(0, Bytes::len),
            Item::Start { .. } | Item::FileEnd | Item::Cut => 0,
        };
        std::mem::size_of::<Item>() + bytes
    }
}

/// Both sides of the queue, behind one lock.
#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    /// Bytes held in `items`, against `capacity`.
    held: usize,
    capacity: usize,
    /// The session, waiting for room.
    session: Option<Waker>,
    /// The consumer, waiting for an item.
    consumer: Option<Waker>,
    /// A frame with files was started and neither ended nor cut.
    frame_open: bool,
    /// The consumer holds a frame with files whose end it has not taken.
    frame_in_hand: bool,
    /// The consumer took a file whose end it has not taken.
    reading_file: bool,
    /// The consumer gave up the file arriving: drop its bytes.
    skip_file: bool,
    /// The consumer moved past the frame arriving: drop its files' bytes.
    skip_frame: bool,
    /// Counts the frames the consumer was handed; a frame handle whose
    /// number is not the latest has been left behind.
    frames_taken: u64,
    /// Counts the files the consumer was handed, likewise.
    files_taken: u64,
    /// Why the connection ended, once it has.
    ended: Option<DisconnectReason>,
    /// A graceful shutdown stopped the input: no frame follows those queued.
    input_ended: bool,
    /// The ending was reported to the consumer.
    end_reported: bool,
}

impl State {
    fn push(&mut self, item: Item) {
        self.held += item.held();
        self.items.push_back(item);
        if let Some(waker) = self.consumer.take() {
            waker.wake();
        }
    }

    fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        self.held -= item.held();
        if let Some(waker) = self.session.take() {
            waker.wake();
        }
        Some(item)
    }

    /// Waits for the next item: registers the consumer.
    fn wait(&mut self, cx: &Context<'_>) {
        self.consumer = Some(cx.waker().clone());
    }

    /// Drops what is queued of the file the consumer took, up to and with
    /// its end; true once that end was found. Otherwise what is still to
    /// come of it is dropped as it arrives.
    fn drop_file(&mut self) -> bool {
        if !self.reading_file {
            return true;
        }
        loop {
            match self.items.front() {
                Some(Item::Data(_)) => {
                    self.pop();
                }
                Some(Item::FileEnd) => {
                    self.pop();
                    break;
                }
                // Cut: the file is over.
                Some(_) => break,
                None if self.ended.is_some() => break,
                None => {
                    self.skip_file = true;
                    return false;
                }
            }
        }
        self.reading_file = false;
        self.skip_file = false;
        true
    }

    /// Drops the rest of the frame the consumer holds, up to and with its
    /// end; true once that end was found. Otherwise what is still to come
    /// of it is dropped as it arrives.
    fn drop_frame(&mut self) -> bool {
        if !self.frame_in_hand {
            return true;
        }
        loop {
            match self.items.front() {
                Some(Item::End(_) | Item::Cut) => {
                    self.pop();
                    break;
                }
                // (Never: a frame ends before the next one starts.)
                Some(Item::Whole(_) | Item::Start { .. }) => break,
                Some(_) => {
                    self.pop();
                }
                None if self.ended.is_some() => break,
                None => {
                    self.skip_frame = true;
                    return false;
                }
            }
        }
        self.frame_in_hand = false;
        self.reading_file = false;
        self.skip_file = false;
        self.skip_frame = false;
        true
    }

    /// The error a reader of a frame gets when the connection ended first.
    fn ended_error(&self) -> io::Error {
        let reason = self
            .ended
            .as_ref()
            .map_or_else(|| "the connection ended".to_owned(), ToString::to_string);
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the frame was cut short: {reason}"),
        )
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The [`Handler`] behind [`Incoming`]: queues what arrives for the
/// consumer, within its buffer. Made in pairs by [`channel`].
pub(crate) struct StreamHandler {
    shared: Shared,
}

impl fmt::Debug for StreamHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("StreamHandler")
            .field("held", &state.held)
            .field("capacity", &state.capacity)
            .finish_non_exhaustive()
    }
}

/// A handler and the incoming half it feeds, buffering at most `capacity`
/// bytes of file bodies (and one whole frame beyond) for the consumer.
pub(crate) fn channel(capacity: usize) -> (StreamHandler, Incoming) {
    let shared = Shared::new(Mutex::new(State {
        capacity: capacity.max(1),
        ..State::default()
    }));
    let handler = StreamHandler {
        shared: Arc::clone(&shared),
    };
    let incoming = Incoming {
        shared,
        close: None,
    };
    (handler, incoming)
}

impl Handler for StreamHandler {
    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        let mut state = lock(&self.shared);
        if state.frame_open {
            state.frame_open = false;
            state.push(Item::End(frame.message));
        } else {
            state.push(Item::Whole(frame));
        }
    }

    fn frame_started(&mut self, status: Status, file_count: u64) {
        let mut state = lock(&self.shared);
        state.frame_open = true;
        state.push(Item::Start { status, file_count });
    }

    fn file_target(&mut self, name: &str, size: u64, _index: usize) -> FileTarget {
        let mut state = lock(&self.shared);
        state.push(Item::File {
            name: name.to_owned(),
            size,
        });
        FileTarget::Sink(Box::new(QueueSink {
            shared: Arc::clone(&self.shared),
            len: 0,
        }))
    }

    fn poll_room(&mut self, waker: &Waker) -> usize {
        let mut state = lock(&self.shared);
        let room = state.capacity.saturating_sub(state.held);
        if room == 0 {
            state.session = Some(waker.clone());
        }
        room
    }

    /// The connection stays open for the consumer's replies: it closes
    /// when the consumer is done (drops its [`Incoming`]).
    fn input_ended(&mut self, _conn: &mut Connection<'_>) {
        let mut state = lock(&self.shared);
        state.input_ended = true;
        if let Some(waker) = state.consumer.take() {
            waker.wake();
        }
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        let mut state = lock(&self.shared);
        if std::mem::take(&mut state.frame_open) {
            state.push(Item::Cut);
        }
        state.ended = Some(reason);
        if let Some(waker) = state.consumer.take() {
            waker.wake();
        }
    }
}

/// A file's bytes, into the consumer's queue.
struct QueueSink {
    shared: Shared,
    len: u64,
}

impl QueueSink {
    /// Queues `len` bytes of the file unless the consumer skips them.
    fn queue(&mut self, len: usize, data: impl FnOnce() -> Bytes) {
        self.len += len as u64;
        let mut state = lock(&self.shared);
        if !state.skip_file && !state.skip_frame {
            state.push(Item::Data(data()));
        }
    }
}

impl FileSink for QueueSink {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.queue(data.len(), || Bytes::copy_from_slice(data));
        Ok(())
    }

    /// Queues the slice of the read buffer as it is: no copy.
    fn write_bytes(&mut self, data: Bytes) -> Result<(), StorageError> {
        self.queue(data.len(), || data);
        Ok(())
    }

    fn finish(&mut self) -> Result<FileBody, StorageError> {
        let mut state = lock(&self.shared);
        if state.skip_frame {
            state.push(Item::FileEnd);
        } else if state.skip_file {
            // The consumer dropped this file: nothing of it is queued.
            state.skip_file = false;
            state.reading_file = false;
        } else {
            state.push(Item::FileEnd);
        }
        Ok(FileBody::Delivered { len: self.len })
    }

    fn abandon(&mut self) {
        let mut state = lock(&self.shared);
        if std::mem::take(&mut state.frame_open) {
            state.push(Item::Cut);
        }
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// The frames a connection receives, in order: a [`Stream`] of
/// [`IncomingFrame`]s (`next().await` with `futures_lite::StreamExt` or
/// `futures::StreamExt`).
///
/// The stream ends (`None`) when the connection has ended, or when a
/// graceful shutdown stopped its input at a frame boundary (the connection
/// then stays open for what is sent until this is dropped); if it ended
/// abnormally (a protocol error, a timeout, an I/O error), the last item is
/// `Err` with the reason. Pings are answered by the session and not
/// yielded. Moving on to the next frame skips what is left of the one
/// before, unread.
///
/// **Dropping it closes the connection gracefully**: what was queued is
/// still sent. Frames go out through the connection's
/// [`Sender`](tej_core::Sender).
pub struct Incoming {
    shared: Shared,
    /// Closed on drop: the consumer is done with the connection.
    close: Option<tej_core::Sender>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("Incoming")
            .field("held", &state.held)
            .field("ended", &state.ended)
            .finish_non_exhaustive()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(sender) = self.close.take() {
            sender.close();
        }
    }
}

impl Incoming {
    /// Closes `sender`'s connection when dropped: the consumer is done.
    pub(crate) fn closing(mut self, sender: tej_core::Sender) -> Self {
        self.close = Some(sender);
        self
    }

    /// Why the connection ended, once it has.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        lock(&self.shared).ended.clone()
    }

    /// The next frame; `None` once the connection has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a frame is taken only when this returns it.
    pub async fn next_frame(&mut self) -> Option<Result<IncomingFrame, DisconnectReason>> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Polls for the next frame, as [`Stream::poll_next`].
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<IncomingFrame, DisconnectReason>>> {
        let mut state = lock(&self.shared);
        if !state.drop_frame() {
            state.wait(cx);
            return Poll::Pending;
        }
        loop {
            match state.items.front() {
                Some(Item::Whole(_)) => {
                    let Some(Item::Whole(frame)) = state.pop() else {
                        unreachable!("the front was a whole frame");
                    };
                    state.frames_taken += 1;
                    let handle = IncomingFrame {
                        shared: Arc::clone(&self.shared),
                        number: state.frames_taken,
                        status: frame.status,
                        file_count: 0,
                        whole: Some(frame.message),
                    };
                    return Poll::Ready(Some(Ok(handle)));
                }
                Some(Item::Start { .. }) => {
                    let Some(Item::Start { status, file_count }) = state.pop() else {
                        unreachable!("the front was a frame's start");
                    };
                    state.frames_taken += 1;
                    state.frame_in_hand = true;
                    let handle = IncomingFrame {
                        shared: Arc::clone(&self.shared),
                        number: state.frames_taken,
                        status,
                        file_count,
                        whole: None,
                    };
                    return Poll::Ready(Some(Ok(handle)));
                }
                // The rest of a frame left behind.
                Some(_) => {
                    state.pop();
                }
                // A graceful shutdown: the frames before it were all given.
                None if state.input_ended => return Poll::Ready(None),
                None => {
                    let Some(reason) = state.ended.clone() else {
                        state.wait(cx);
                        return Poll::Pending;
                    };
                    if state.end_reported || is_clean(&reason) {
                        return Poll::Ready(None);
                    }
                    state.end_reported = true;
                    return Poll::Ready(Some(Err(reason)));
                }
            }
        }
    }
}

/// Whether a connection ending this way is an ordinary end, not an error.
fn is_clean(reason: &DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::PeerClosed | DisconnectReason::LocalClose
    )
}

impl Stream for Incoming {
    type Item = Result<IncomingFrame, DisconnectReason>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_frame(cx)
    }
}

/// One frame as it arrives: its status at once, then its files one after
/// another ([`next_file`](Self::next_file)), then its message
/// ([`message`](Self::message)). Nothing of it is held whole in memory
/// unless asked ([`into_frame`](Self::into_frame)).
///
/// A file not read to its end is skipped when the next one is asked for,
/// and the message skips any files left; a frame handle outlived by the
/// next frame taken from [`Incoming`] has nothing more to give.
pub struct IncomingFrame {
    shared: Shared,
    /// Which frame this is, counted by the consumer.
    number: u64,
    status: Status,
    file_count: u64,
    /// A frame without files: its message, until taken.
    whole: Option<Option<Bytes>>,
}

impl fmt::Debug for IncomingFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingFrame")
            .field("status", &self.status)
            .field("file_count", &self.file_count)
            .finish_non_exhaustive()
    }
}

impl IncomingFrame {
    /// The frame's status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether it is a ping (status 2). Pings are answered by the session
    /// and not yielded, so this is false for every frame [`Incoming`] gives.
    pub fn is_ping(&self) -> bool {
        self.status.is_ping()
    }

    /// How many files the frame announced.
    pub fn file_count(&self) -> u64 {
        self.file_count
    }

    /// Whether this frame is still the consumer's: the next one was not taken.
    fn is_current(&self, state: &State) -> bool {
        state.frames_taken == self.number
    }

    /// The next file of the frame, once its header arrived; `None` after
    /// the last. The file before it is skipped if not read to its end.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the connection ended before the frame was whole;
    /// `InvalidInput` if the next frame was taken from [`Incoming`] already.
    pub async fn next_file(&mut self) -> io::Result<Option<IncomingFile>> {
        poll_fn(|cx| self.poll_next_file(cx)).await
    }

    fn poll_next_file(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<IncomingFile>>> {
        if self.whole.is_some() {
            return Poll::Ready(Ok(None));
        }
        let mut state = lock(&self.shared);
        if !self.is_current(&state) {
            return Poll::Ready(Err(left_behind()));
        }
        if !state.drop_file() {
            state.wait(cx);
            return Poll::Pending;
        }
        match state.items.front() {
            Some(Item::File { .. }) => {
                let Some(Item::File { name, size }) = state.pop() else {
                    unreachable!("the front was a file");
                };
                state.reading_file = true;
                state.files_taken += 1;
                Poll::Ready(Ok(Some(IncomingFile {
                    shared: Arc::clone(&self.shared),
                    number: state.files_taken,
                    name,
                    size,
                    chunk: Bytes::new(),
                    done: false,
                })))
            }
            Some(Item::End(_)) => Poll::Ready(Ok(None)),
            Some(Item::Cut) => Poll::Ready(Err(state.ended_error())),
            // Nothing else can be at the front between two files.
            Some(_) => Poll::Ready(Err(left_behind())),
            None if state.ended.is_some() => Poll::Ready(Err(state.ended_error())),
            None => {
                state.wait(cx);
                Poll::Pending
            }
        }
    }

    /// The frame's message (`None`: it had none), once the whole frame
    /// arrived; files not read are skipped.
    ///
    /// # Errors
    ///
    /// As [`next_file`](Self::next_file).
    pub async fn message(mut self) -> io::Result<Option<Bytes>> {
        if let Some(message) = self.whole.take() {
            return Ok(message);
        }
        poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if !self.is_current(&state) {
                return Poll::Ready(Err(left_behind()));
            }
            loop {
                // Files left unread are skipped, what is still to come of
                // them dropped as it arrives.
                if !state.drop_file() {
                    state.wait(cx);
                    return Poll::Pending;
                }
                match state.items.front() {
                    Some(Item::End(_)) => {
                        let Some(Item::End(message)) = state.pop() else {
                            unreachable!("the front was the frame's end");
                        };
                        state.frame_in_hand = false;
                        return Poll::Ready(Ok(message));
                    }
                    Some(Item::Cut) => return Poll::Ready(Err(state.ended_error())),
                    Some(Item::Whole(_) | Item::Start { .. }) => {
                        return Poll::Ready(Err(left_behind()))
                    }
                    Some(Item::File { .. }) => {
                        state.pop();
                        state.reading_file = true;
                    }
                    Some(Item::Data(_) | Item::FileEnd) => {
                        state.pop();
                    }
                    None if state.ended.is_some() => return Poll::Ready(Err(state.ended_error())),
                    None => {
                        state.wait(cx);
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    /// The whole frame in memory, files and message: for frames known to
    /// be small.
    ///
    /// # Errors
    ///
    /// As [`next_file`](Self::next_file).
    pub async fn into_frame(mut self) -> io::Result<Frame> {
        let mut frame = Frame::new(self.status);
        while let Some(mut file) = self.next_file().await? {
            let mut body = Vec::with_capacity(file.size.min(1 << 20) as usize);
            while let Some(chunk) = file.read_chunk().await? {
                body.extend_from_slice(&chunk);
            }
            frame
                .files
                .push(tej_core::File::new(std::mem::take(&mut file.name), body));
        }
        frame.message = self.message().await?;
        Ok(frame)
    }
}

fn left_behind() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "this was left behind: the consumer took what comes after it",
    )
}

/// One incoming file's body, as it arrives: [`AsyncRead`] (futures-io's;
/// Tokio's too with tej-net's `tokio` feature, on by tej-tokio) or chunk
/// by chunk with [`read_chunk`](Self::read_chunk).
///
/// Reading it frees room for the session to read on; dropping it before
/// its end skips the rest of its bytes.
pub struct IncomingFile {
    shared: Shared,
    /// Which file this is, counted by the consumer.
    number: u64,
    name: String,
    size: u64,
    /// What is left of the chunk being read.
    chunk: Bytes,
    /// The body's end was reached.
    done: bool,
}

impl fmt::Debug for IncomingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingFile")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Drop for IncomingFile {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Skip the rest: what is queued goes now, what is to come as it arrives.
        let mut state = lock(&self.shared);
        if state.files_taken == self.number {
            state.drop_file();
        }
    }
}

impl IncomingFile {
    /// The file's name as sent: not a path to trust.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body's length, as announced.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next bytes of the body as they arrived, or `None` at its end.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the connection ended before the file was whole.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: bytes are taken only when this returns them.
    pub async fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Polls for the next bytes of the body, as [`read_chunk`](Self::read_chunk).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if !self.chunk.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.chunk))));
        }
        if self.done {
            return Poll::Ready(Ok(None));
        }
        let mut state = lock(&self.shared);
        if state.files_taken != self.number || !state.reading_file {
            return Poll::Ready(Err(left_behind()));
        }
        match state.items.front() {
            Some(Item::Data(_)) => {
                let Some(Item::Data(data)) = state.pop() else {
                    unreachable!("the front was data");
                };
                Poll::Ready(Ok(Some(data)))
            }
            Some(Item::FileEnd) => {
                state.pop();
                state.reading_file = false;
                self.done = true;
                Poll::Ready(Ok(None))
            }
            Some(Item::Cut) => Poll::Ready(Err(state.ended_error())),
            Some(_) => Poll::Ready(Err(left_behind())),
            None if state.ended.is_some() => Poll::Ready(Err(state.ended_error())),
            None => {
                state.wait(cx);
                Poll::Pending
            }
        }
    }

    /// Copies what is ready into `buf`, as `AsyncRead::poll_read`.
    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.chunk.is_empty() {
            match self.poll_chunk(cx) {
                Poll::Ready(Ok(Some(chunk))) => self.chunk = chunk,
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for IncomingFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_into(cx, buf)
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for IncomingFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_read_into(cx, buf.initialize_unfilled()) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The same frames through a [`Handler`] and through the stream face
    //! give the same results, in any split of the input and with a buffer
    //! small enough that the session waits for the consumer.

    use std::sync::mpsc;
    use std::task::Wake;
    use std::thread::{self, Thread};
    use std::time::Duration;

    use futures_lite::future::block_on;
    use proptest::prelude::*;
    use tej_core::{File, Session, SessionConfig};

    use super::*;

    /// Keeps every frame whole in memory: the callback face.
    struct Keep(mpsc::Sender<Frame>);

    impl Handler for Keep {
        fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
            let _ = self.0.send(frame);
        }
    }

    /// Wakes the thread that feeds the session.
    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Feeds `wire` to `session` in `splits` (as shared buffers or not),
    /// waiting for room when it has none.
    fn feed<H: Handler>(session: &mut Session<H>, wire: &[u8], splits: &[usize], shared: bool) {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        session.start(Duration::ZERO);
        let mut offset = 0;
        let mut cuts = splits.iter().cycle();
        while offset < wire.len() {
            session.poll_room(&waker, Duration::ZERO);
            if !session.wants_read() {
                thread::park_timeout(Duration::from_millis(50));
                continue;
            }
            let end = (offset + cuts.next().copied().unwrap_or(1).max(1)).min(wire.len());
            offset += if shared {
                session.handle_bytes(&Bytes::copy_from_slice(&wire[offset..end]), Duration::ZERO)
            } else {
                session.handle_input(&wire[offset..end], Duration::ZERO)
            };
        }
        session.handle_eof(Duration::ZERO);
    }

    /// Every frame read through the stream face, whole.
    async fn collect(mut incoming: Incoming) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = incoming.next_frame().await {
            let frame = frame.expect("a clean end");
            frames.push(frame.into_frame().await.expect("a whole frame"));
        }
        frames
    }

    /// A frame as comparable parts: status, files' names and bodies, message.
    type Parts = (u8, Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

    fn parts(frame: &Frame) -> Parts {
        let files = frame
            .files
            .iter()
            .map(|file| {
                let body = file.data().map(|data| data.to_vec()).unwrap_or_default();
                (file.name.clone(), body)
            })
            .collect();
        (
            frame.status.get(),
            files,
            frame.message.as_ref().map(|message| message.to_vec()),
        )
    }

    fn frame_strategy() -> impl Strategy<Value = Frame> {
        let file = (
            "[a-z]{1,8}",
            proptest::collection::vec(any::<u8>(), 0..3000),
        );
        (
            0u8..=127,
            proptest::collection::vec(file, 0..4),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..2000)),
        )
            .prop_filter("pings are not yielded", |(status, _, _)| *status != 2)
            .prop_map(|(status, files, message)| {
                let mut frame = Frame::new(Status::new(status).expect("a status"));
                for (name, body) in files {
                    frame.files.push(File::new(name, body));
                }
                frame.message = message.map(Bytes::from);
                frame
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_stream_and_the_handler_see_the_same_frames(
            frames in proptest::collection::vec(frame_strategy(), 1..6),
            splits in proptest::collection::vec(1usize..5000, 1..8),
            buffer in 1usize..4096,
            shared in any::<bool>(),
        ) {
            let mut wire = Vec::new();
            for frame in &frames {
                wire.extend(frame.encode_to_vec().expect("encodable"));
            }

            let (kept, through_handler) = mpsc::channel();
            let mut session = Session::new(Keep(kept), SessionConfig::default());
            feed(&mut session, &wire, &splits, shared);
            drop(session);
            let by_handler: Vec<_> = through_handler.iter().map(|frame| parts(&frame)).collect();

            let (handler, incoming) = channel(buffer);
            let consumer = thread::spawn(move || block_on(collect(incoming)));
            let mut session = Session::new(handler, SessionConfig::default());
            feed(&mut session, &wire, &splits, shared);
            drop(session);
            let by_stream: Vec<_> = consumer.join().expect("the consumer").iter().map(parts).collect();

            let sent: Vec<_> = frames.iter().map(parts).collect();
            prop_assert_eq!(&by_handler, &sent);
            prop_assert_eq!(&by_stream, &sent);
        }
    }

    #[test]
    fn frames_without_a_message_count_against_the_buffer() {
        let frame = Frame::new(Status::new(1).expect("a status"));
        let one = frame.encode_to_vec().expect("encodable");
        let wire: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * 10_000)
            .collect();
        let (handler, incoming) = channel(4096);
        let mut session = Session::new(handler, SessionConfig::default());
        session.start(Duration::ZERO);
        session.poll_room(Waker::noop(), Duration::ZERO);
        let used = session.handle_input(&wire, Duration::ZERO);
        let queued = lock(&incoming.shared).items.len();
        // Without a consumer, the session stops once the buffer is spent.
        assert!(used < wire.len(), "took all {used} bytes");
        assert!(
            queued <= 4096 / std::mem::size_of::<Item>() + 1,
            "{queued} frames queued"
        );
        assert_eq!(used, queued * one.len());
    }

    #[test]
    fn chunks_and_messages_are_slices_of_a_shared_input() {
        let frame = tej_core::FrameBuilder::new(Status::new(1).expect("a status"))
            .file("a.bin", vec![7u8; 100_000])
            .message("done")
            .build();
        let wire = Bytes::from(frame.encode_to_vec().expect("encodable"));
        let within = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        let inside = |data: &Bytes| {
            let start = data.as_ptr() as usize;
            within.contains(&start) && start + data.len() <= within.end
        };
        let (handler, mut incoming) = channel(1 << 20);
        let mut session = Session::new(handler, SessionConfig::default());
        session.start(Duration::ZERO);
        session.poll_room(Waker::noop(), Duration::ZERO);
        assert_eq!(session.handle_bytes(&wire, Duration::ZERO), wire.len());
        block_on(async {
            let mut frame = incoming
                .next_frame()
                .await
                .expect("a frame")
                .expect("whole");
            let mut file = frame.next_file().await.expect("read").expect("a file");
            let mut len = 0;
            while let Some(chunk) = file.read_chunk().await.expect("a chunk") {
                assert!(inside(&chunk), "a chunk copied out of the input");
                assert!(chunk.iter().all(|&byte| byte == 7));
                len += chunk.len();
            }
            assert_eq!(len, 100_000);
            drop(file);
            assert!(frame.next_file().await.expect("read").is_none());
            let message = frame.message().await.expect("read").expect("a message");
            assert_eq!(&message[..], b"done");
            assert!(inside(&message), "the message copied out of the input");
        });
    }
}
