//! The reference implementation's server on Tokio: greets every
//! connection with "Hello" and prints the files and message it receives.
//!
//! `cargo run -p tej-examples --example tokio_server [ADDR]`, then
//! `cargo run -p tej-examples --example tokio_client [ADDR]`.

use tej_tokio::{Connection, DisconnectReason, Frame, Handler, Server};

/// One per connection.
struct Greeter;

impl Handler for Greeter {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        println!("connected: {:?}", conn.peer_addr());
        let _ = conn.send(Frame::message("Hello"));
    }

    fn received(&mut self, _conn: &mut Connection<'_>, frame: Frame) {
        for file in &frame.files {
            println!("file: {} ({} bytes)", file.name, file.len());
        }
        if let Some(message) = &frame.message {
            println!("message: {}", String::from_utf8_lossy(message));
        }
    }

    fn disconnected(&mut self, reason: DisconnectReason) {
        println!("disconnected: {reason}");
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let server = Server::bind(addr).await?;
    println!("listening on {}", server.local_addr()?);
    server.serve(|| Greeter).await;
    Ok(())
}
