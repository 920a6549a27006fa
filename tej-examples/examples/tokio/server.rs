//! The reference implementation's server on Tokio: greets every
//! connection with "Hello" and prints the files and message it receives
//! (`tej_examples::reference::Greeter`, the same handler on every adapter).
//!
//! `cargo run -p tej-examples --example tokio_server [ADDR]`, then
//! `cargo run -p tej-examples --example tokio_client [ADDR]`.

use tej_examples::reference::{self, Greeter};
use tej_tokio::Server;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let server = Server::bind(reference::addr()).await?;
    println!("listening on {}", server.local_addr()?);
    server.serve(|| Greeter).await;
    Ok(())
}
