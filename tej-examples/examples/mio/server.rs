//! The reference implementation's server on a raw mio event loop, with no
//! async runtime: greets every connection with "Hello" and prints the
//! files and message it receives (`tej_examples::reference::Greeter`, the
//! same handler on every adapter).
//!
//! `cargo run -p tej-examples --example mio_server [ADDR]`, then
//! `cargo run -p tej-examples --example mio_client [ADDR]`.

use tej_examples::reference::{self, Greeter};
use tej_mio::Server;

fn main() -> std::io::Result<()> {
    let server = Server::bind(reference::addr())?;
    println!("listening on {}", server.local_addr()?);
    // Runs every connection on this thread until shut down.
    server.run(|| Greeter)
}
