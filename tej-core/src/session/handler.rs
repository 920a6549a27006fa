//! The callbacks every adapter calls.

use crate::assemble::FileTarget;
use crate::frame::{Frame, FrameView};
use crate::session::connection::Connection;
use crate::session::error::DisconnectReason;
use crate::wire::Status;

/// The callbacks of one connection, with the reference implementation's
/// semantics: [`connected`](Self::connected) once, then
/// [`received`](Self::received) or [`ping_received`](Self::ping_received)
/// for every frame in arrival order, then
/// [`disconnected`](Self::disconnected) exactly once, whatever ends the
/// connection.
///
/// Every method has a default that does nothing, so a handler implements
/// only what it needs. The same handler runs unchanged on every adapter.
///
/// # Where callbacks run
///
/// On the task or thread that drives the connection: a Tokio or async-std
/// task (a runtime worker thread), the mio loop's thread (shared by every
/// connection of that loop). A callback that blocks holds up its
/// connection, and on mio every connection of the loop. Received files
/// that a [`file_target`](Self::file_target) sends to a sink
/// ([`FileTarget::Sink`], such as a spool directory) are written there
/// too, a read at a time; so are files sent from a source, read in 256 KiB
/// chunks. [`Session::does_file_io`](crate::Session::does_file_io) says
/// when a step may block on such I/O: tej-tokio then runs it in
/// `block_in_place` on the multi-thread runtime, so a disk that stalls on
/// write-back holds up that connection only. On the other adapters it runs
/// in place; where other connections must never wait on a disk, serve
/// uploads from a runtime of their own.
///
/// ```
/// use tej_core::{Connection, Frame, Handler};
///
/// /// Answers every frame with the names of its files.
/// struct Echo;
///
/// impl Handler for Echo {
///     fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
///         let names: Vec<&str> = frame.files.iter().map(|file| file.name.as_str()).collect();
///         let _ = conn.send(Frame::message(names.join(",")));
///     }
/// }
/// ```
pub trait Handler {
    /// The connection is open. Called once, first.
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let _ = conn;
    }

    /// A frame arrived (any status but 2).
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let _ = (conn, frame);
    }

    /// A frame without files arrived whole in one read (any status but 2),
    /// lent for this call. Return `None` once taken; a frame handed back
    /// (`Some(frame)`, what the default does) is made an owned [`Frame`]
    /// (its message a slice of the buffer read into, not a copy) and given
    /// to [`received`](Self::received).
    ///
    /// Override it to take small frames without that: a handler that reads
    /// a message where it lies (counts, parses, copies the few bytes it
    /// keeps) saves a reference-count update or an allocation per frame,
    /// which is most of what a small frame costs. Frames with files, and
    /// frames split between reads, still come to `received`; either way
    /// frames arrive in order, each once.
    ///
    /// ```
    /// use tej_core::{Connection, Frame, FrameView, Handler};
    ///
    /// /// Adds up the numbers its peer sends, one decimal per message.
    /// #[derive(Default)]
    /// struct Sum(u64);
    ///
    /// impl Sum {
    ///     fn add(&mut self, message: Option<&[u8]>) {
    ///         let text = message.and_then(|bytes| std::str::from_utf8(bytes).ok());
    ///         self.0 += text.and_then(|text| text.parse::<u64>().ok()).unwrap_or(0);
    ///     }
    /// }
    ///
    /// impl Handler for Sum {
    ///     fn received_view<'a>(
    ///         &mut self,
    ///         _conn: &mut Connection<'_>,
    ///         frame: FrameView<'a>,
    ///     ) -> Option<FrameView<'a>> {
    ///         self.add(frame.message());
    ///         None
    ///     }
    ///     fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
    ///         self.add(frame.message.as_deref());
    ///     }
    /// }
    /// ```
    fn received_view<'a>(
        &mut self,
        conn: &mut Connection<'_>,
        frame: FrameView<'a>,
    ) -> Option<FrameView<'a>> {
        let _ = conn;
        Some(frame)
    }

    /// A ping (status 2) arrived.
    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        let _ = (conn, frame);
    }

    /// The connection ended. Called exactly once, last.
    fn disconnected(&mut self, reason: DisconnectReason) {
        let _ = reason;
    }

    /// A file's header arrived: choose where its bytes go. The default keeps
    /// it in memory. `index` is the file's position in its frame.
    fn file_target(&mut self, name: &str, size: u64, index: usize) -> FileTarget {
        let _ = (name, size, index);
        FileTarget::Memory
    }

    /// The header of a frame with files arrived (`file_count` of them,
    /// at least one): called before the first
    /// [`file_target`](Self::file_target) of the frame, so that a handler
    /// streaming files on knows the frame's status first. Frames without
    /// files go straight to [`received`](Self::received).
    fn frame_started(&mut self, status: Status, file_count: u64) {
        let _ = (status, file_count);
    }

    /// The session reads no more: a graceful shutdown
    /// ([`Session::shutdown`](crate::Session::shutdown)) reached a frame
    /// boundary. Called once. The default closes the connection once what
    /// is queued is sent; a handler whose work on the frames received goes
    /// on elsewhere (an async consumer) closes it when that work is done,
    /// through a [`Sender`](crate::Sender), and until then the session only
    /// writes, its idle, stall and frame deadlines standing still.
    fn input_ended(&mut self, conn: &mut Connection<'_>) {
        conn.close();
    }

    /// How many more bytes of input the handler takes now: the consumer's
    /// backpressure. The session gives file bodies at most this many bytes
    /// at a time; at 0 it takes no input at all, mid-body included, until
    /// `waker` is woken (register it, and wake it once room frees), and
    /// while it waits no idle, stall or frame deadline runs: the peer is
    /// not the one late. A whole frame without files is delivered while
    /// any room is left, so what a handler buffers stays under its room
    /// plus one frame. The default never pushes back.
    fn poll_room(&mut self, waker: &core::task::Waker) -> usize {
        let _ = waker;
        usize::MAX
    }
}

impl<H: Handler + ?Sized> Handler for alloc::boxed::Box<H> {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        (**self).connected(conn);
    }
    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        (**self).received(conn, frame);
    }
    fn received_view<'a>(
        &mut self,
        conn: &mut Connection<'_>,
        frame: FrameView<'a>,
    ) -> Option<FrameView<'a>> {
        (**self).received_view(conn, frame)
    }
    fn ping_received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        (**self).ping_received(conn, frame);
    }
    fn disconnected(&mut self, reason: DisconnectReason) {
        (**self).disconnected(reason);
    }
    fn file_target(&mut self, name: &str, size: u64, index: usize) -> FileTarget {
        (**self).file_target(name, size, index)
    }
    fn frame_started(&mut self, status: Status, file_count: u64) {
        (**self).frame_started(status, file_count);
    }
    fn poll_room(&mut self, waker: &core::task::Waker) -> usize {
        (**self).poll_room(waker)
    }
    fn input_ended(&mut self, conn: &mut Connection<'_>) {
        (**self).input_ended(conn);
    }
}
