//! The reference implementation's client on async-std: sends a file and
//! the message "Sending from client", prints what arrives, and closes after
//! the first frame (the server's greeting): `tej_examples::reference::Printer`,
//! the same handler on every adapter.
//!
//! Start `cargo run -p tej-examples --example async_std_server` first.

use tej_async_std::Client;
use tej_examples::reference::{self, Printer};

fn main() -> std::io::Result<()> {
    async_std::task::block_on(async {
        let client = Client::connect(reference::addr(), Printer).await?;
        let reason = client.join().await?;
        println!("disconnected: {reason}");
        Ok(())
    })
}
