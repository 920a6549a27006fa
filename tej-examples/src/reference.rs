//! The reference implementation's handlers, which the per-adapter examples
//! (`examples/{tokio,async_std,mio}/{server,client}.rs`) share: a handler
//! is tej-core's [`Handler`], the same on every adapter, so each example
//! shows only what differs, how its adapter binds, connects and runs.

use tej_core::{Connection, DisconnectReason, Frame, FrameBuilder, Handler, Status};

/// The address to serve on or connect to: the first command-line
/// argument, `127.0.0.1:8000` without one.
pub fn addr() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into())
}

/// The server's handler, one per connection: greets the connection with
/// "Hello" and prints the files and message of each frame it receives.
#[derive(Debug)]
pub struct Greeter;

impl Handler for Greeter {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        println!("connected: {:?}", conn.peer_addr());
        let _ = conn.send(Frame::message("Hello"));
    }

    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        print_frame(&frame);
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        println!("disconnected: {reason}");
    }
}

/// The client's handler: sends a file and the message "Sending from
/// client", prints what arrives, and closes after the first frame (the
/// server's greeting).
#[derive(Debug)]
pub struct Printer;

impl Handler for Printer {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("file.txt", &b"hello world\n"[..])
            .message("Sending from client")
            .build();
        let _ = conn.send(frame);
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        print_frame(&frame);
        // Sends what is still queued, then closes.
        conn.close();
    }
}

/// Prints a frame's files (name and size) and its message.
fn print_frame(frame: &Frame) {
    for file in &frame.files {
        println!("file: {} ({} bytes)", file.name, file.len());
    }
    if let Some(message) = &frame.message {
        println!("message: {}", String::from_utf8_lossy(message));
    }
}
