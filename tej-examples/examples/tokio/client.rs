//! The reference implementation's client on Tokio: sends a file and
//! the message "Sending from client", prints what arrives, and closes after
//! the first frame (the server's greeting): `tej_examples::reference::Printer`,
//! the same handler on every adapter.
//!
//! Start `cargo run -p tej-examples --example tokio_server` first.

use tej_examples::reference::{self, Printer};
use tej_tokio::Client;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let client = Client::connect(reference::addr(), Printer).await?;
    let reason = client.join().await?;
    println!("disconnected: {reason}");
    Ok(())
}
