//! The reference implementation's client on a raw mio event loop, with no
//! async runtime: sends a file and the message "Sending from client",
//! prints what arrives, and closes after the first frame (the server's
//! greeting): `tej_examples::reference::Printer`, the same handler on
//! every adapter.
//!
//! Start `cargo run -p tej-examples --example mio_server` first.

use tej_examples::reference::{self, Printer};
use tej_mio::Client;

fn main() -> std::io::Result<()> {
    // The connection's loop runs on a thread of its own.
    let client = Client::connect(reference::addr(), Printer)?;
    let reason = client.join()?;
    println!("disconnected: {reason}");
    Ok(())
}
