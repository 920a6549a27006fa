//! The reference implementation's server on async-std: greets every
//! connection with "Hello" and prints the files and message it receives
//! (`tej_examples::reference::Greeter`, the same handler on every adapter).
//!
//! `cargo run -p tej-examples --example async_std_server [ADDR]`, then
//! `cargo run -p tej-examples --example async_std_client [ADDR]`.

use tej_async_std::Server;
use tej_examples::reference::{self, Greeter};

fn main() -> std::io::Result<()> {
    async_std::task::block_on(async {
        let server = Server::bind(reference::addr()).await?;
        println!("listening on {}", server.local_addr()?);
        server.serve(|| Greeter).await;
        Ok(())
    })
}
