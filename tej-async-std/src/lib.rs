//! TEJ on async-std and smol: a [`Server`], a [`Client`], a cross-task
//! [`Sender`], and [`run_session`] for any `futures-io` stream.
//!
//! All protocol logic lives in [`tej_core`]'s [`Session`](tej_core::Session);
//! this crate moves bytes between a stream and a session, arms its timers
//! and wakes it when a [`Sender`] queues a frame. The API is the one of
//! `tej-tokio`, name for name, and the same [`Handler`] runs unchanged on
//! `tej-tokio` and `tej-mio`.
//!
//! The driver is written against the [`futures-io`](futures_io)
//! `AsyncRead`/`AsyncWrite` traits and times with [`async_io::Timer`], so it
//! runs on smol as well as on async-std (which is discontinued upstream in
//! favour of smol): [`run_session`] takes smol's `TcpStream` or
//! `Async<std::net::TcpStream>` as readily as async-std's. [`Server`] and
//! [`Client`] use async-std's sockets and spawn their connection tasks with
//! `async_std::task::spawn`; they work inside `smol::block_on` too.
//!
//! The reference implementation's server and client, translated:
//!
//! ```no_run
//! use tej_async_std::{Client, Connection, Frame, FrameBuilder, Handler, Server, Status};
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
//! fn main() -> std::io::Result<()> {
//!     async_std::task::block_on(async {
//!         let server = Server::bind("127.0.0.1:8000").await?;
//!         let shutdown = server.shutdown_handle();
//!         let serving = async_std::task::spawn(server.serve(|| Printer));
//!
//!         let client = Client::connect("127.0.0.1:8000", Printer).await?;
//!         let frame = FrameBuilder::new(Status::DEFAULT)
//!             .file("file.txt", &b"hello world\n"[..])
//!             .message("Sending from client")
//!             .build();
//!         client.sender().send(frame).await.expect("connection open");
//!         client.close();
//!         client.join().await?;
//!
//!         shutdown.shutdown();
//!         serving.await;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! On smol, drive one connection yourself with [`run_session`]:
//!
//! ```no_run
//! use tej_async_std::{run_session, Handler, SessionConfig, ShutdownHandle};
//! use tej_async_std::tej_core::Session;
//!
//! struct Quiet;
//! impl Handler for Quiet {}
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let stream = smol::net::TcpStream::connect("127.0.0.1:8000").await?;
//!         let session = Session::new(Quiet, SessionConfig::default());
//!         let sender = session.sender();
//!         let shutdown = ShutdownHandle::new();
//!         let connection = smol::spawn(run_session(stream, session, shutdown.clone()));
//!         sender.send(tej_async_std::Frame::message("hi")).await.expect("open");
//!         sender.close();
//!         connection.await;
//!         Ok(())
//!     })
//! }
//! ```

mod client;
mod driver;
mod server;
mod shutdown;

pub use client::Client;
pub use driver::run_session;
pub use server::Server;
pub use shutdown::ShutdownHandle;

pub use tej_core::{
    self, BufferedSender, Connection, DisconnectReason, File, FileTarget, Frame, FrameBuilder,
    Handler, Limits, SendError, Sender, SessionConfig, Status,
};

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
