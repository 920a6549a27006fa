//! TEJ on Tokio: a [`Server`], a [`Client`], a cross-task [`Sender`], and a
//! [`TejCodec`] for `Framed` streams.
//!
//! All protocol logic lives in [`tej_core`]'s [`Session`](tej_core::Session);
//! this crate moves bytes between a `TcpStream` and a session, arms its
//! timers and wakes it when a [`Sender`] queues a frame. The same
//! [`Handler`] runs unchanged on `tej-async-std` and `tej-mio`.
//!
//! The reference implementation's server and client, translated:
//!
//! ```no_run
//! use tej_tokio::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};
//!
//! /// Greets on connect and prints what arrives.
//! struct Printer;
//!
//! impl Handler for Printer {
//!     fn connected(&mut self, conn: &mut Connection<'_>) {
//!         let _ = conn.send(Frame::message("Hello"));
//!     }
//!
//!     fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
//!         for file in &frame.files {
//!             println!("file {} ({} bytes)", file.name, file.len());
//!         }
//!         if let Some(message) = &frame.message {
//!             println!("message: {}", String::from_utf8_lossy(message));
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = Server::bind("127.0.0.1:8000").await?;
//!     let shutdown = server.shutdown_handle();
//!     let serving = tokio::spawn(server.serve(|| Printer));
//!
//!     let client = Client::connect("127.0.0.1:8000", Printer).await?;
//!     let frame = FrameBuilder::new(Status::DEFAULT)
//!         .file("file.txt", &b"hello world\n"[..])
//!         .message("Sending from client")
//!         .build();
//!     client.sender().send(frame).await.expect("connection open");
//!     client.close();
//!     client.join().await?;
//!
//!     shutdown.shutdown();
//!     serving.await?;
//!     Ok(())
//! }
//! ```

mod acceptor;
mod client;
mod codec;
mod driver;
mod listener;
mod server;
#[cfg(feature = "tls")]
pub mod tls;

pub use acceptor::{Acceptor, Plain};
pub use client::Client;
pub use codec::{CodecError, TejCodec};
pub use driver::run_session;
pub use listener::Listener;
pub use server::Server;

pub use tej_core::{
    self, BufferedSender, Connection, DisconnectReason, File, FileTarget, Frame, FrameBuilder,
    Handler, Limits, SendError, Sender, SessionConfig, ShutdownHandle, Status,
};
