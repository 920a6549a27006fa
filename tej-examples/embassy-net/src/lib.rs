//! What a firmware author writes to serve TEJ on embassy-net:
//! `tej-core`'s async endpoint ([`Endpoint`]) on an
//! [`embassy_net::tcp::TcpSocket`], which implements
//! `embedded_io_async::{Read, Write}`. No allocator: the socket's buffers and
//! the endpoint's are `static`s, in `.bss`, and files of any size stream
//! through them.
//!
//! Compiled for `thumbv7em-none-eabihf` in CI; `tej-core`'s doc example
//! (`tej_core::embedded::asynch`) shows the same lines. The firmware brings
//! the rest, as for any embassy-net program: the driver and the
//! [`Stack`] over it (with a medium feature such as `medium-ethernet`), a
//! time driver for embassy-time and a critical-section implementation
//! (its HAL, or cortex-m's `critical-section-single-core`). Then it spawns
//! [`run`] once the stack is up:
//!
//! ```ignore
//! #[embassy_executor::task]
//! async fn tej(stack: embassy_net::Stack<'static>) -> ! {
//!     tej_embassy_net::run(stack).await
//! }
//! ```
#![no_std]

use embassy_net::tcp::TcpSocket;
use embassy_net::Stack;
use embassy_time::Duration;
use static_cell::ConstStaticCell;
use tej_core::embedded::asynch::Endpoint;
use tej_core::embedded::Error;
use tej_core::{Event, FrameRef, Limits, Status};

/// The TCP port served.
pub const PORT: u16 = 7000;

// 10 KiB of RAM for the connection: the socket's receive and send buffers,
// and the endpoint's.
static RX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
static TX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
static BUFFER: ConstStaticCell<[u8; 2048]> = ConstStaticCell::new([0; 2048]);

/// Serves TEJ on port [`PORT`] of `stack`, one connection at a time, for
/// ever; the firmware spawns it once the stack is up.
///
/// # Panics
///
/// When called a second time: its buffers are taken (for two connections
/// at once, two such functions, each with its own `static`s).
pub async fn run(stack: Stack<'_>) -> ! {
    let (rx, tx, buffer) = (RX.take(), TX.take(), BUFFER.take());
    loop {
        let mut socket = TcpSocket::new(stack, rx, tx);
        // A peer silent this long is dropped, so that the next can connect.
        socket.set_timeout(Some(Duration::from_secs(30)));
        if socket.accept(PORT).await.is_ok() {
            // Ends when the peer closes, sends what is not TEJ or goes away.
            let _ = serve(&mut socket, buffer).await;
        }
        socket.close();
        let _ = socket.flush().await;
    }
}

/// Answers every frame with the number of file bytes it carried.
async fn serve<S>(socket: S, buffer: &mut [u8]) -> Result<(), Error<S::Error>>
where
    S: embedded_io_async::Read + embedded_io_async::Write,
{
    let limits = Limits::DEFAULT.max_file_count(8).max_name_len(64);
    let mut endpoint = Endpoint::new(socket, buffer, limits);
    let mut received = 0u64;
    while let Some(event) = endpoint.next_event().await? {
        match event {
            Event::FileData(piece) => received += piece.len() as u64,
            Event::FrameEnd => {
                let mut text = [0u8; 20];
                let text = decimal(received, &mut text);
                let answer = FrameRef::new(Status::DEFAULT, &[], Some(text));
                endpoint.send(&answer).await?;
                received = 0;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `n` in decimal ASCII, at the end of `out`.
fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[at..];
        }
    }
}
