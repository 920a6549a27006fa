//! The reference implementation's client on Tokio: sends a file and
//! the message "Sending from client", prints what arrives, and closes after
//! the first frame (the server's greeting).
//!
//! Start `cargo run -p tej-examples --example tokio_server` first.

use tej_tokio::{Client, Connection, Frame, FrameBuilder, Handler, Status};

struct Printer;

impl Handler for Printer {
    fn connected(&mut self, conn: &mut Connection<'_>) {
        let frame = FrameBuilder::new(Status::DEFAULT)
            .file("file.txt", &b"hello world\n"[..])
            .message("Sending from client")
            .build();
        let _ = conn.send(frame);
    }

    fn received(&mut self, conn: &mut Connection<'_>, frame: Frame) {
        for file in &frame.files {
            println!("file: {} ({} bytes)", file.name, file.len());
        }
        if let Some(message) = &frame.message {
            println!("message: {}", String::from_utf8_lossy(message));
        }
        // Sends what is still queued, then closes.
        conn.close();
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let client = Client::connect(addr, Printer).await?;
    let reason = client.join().await?;
    println!("disconnected: {reason}");
    Ok(())
}
