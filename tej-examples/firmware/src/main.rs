//! `tej-firmware`: TEJ on a Cortex-M4 in QEMU (`mps2-an386`), speaking to
//! the host over UART0.
//!
//! At boot it sends a frame of status 5 (`tej-firmware ready`). Every frame
//! it receives is answered with status 6 and the same files and message; a
//! frame of status 3 with status 4, then a successful semihosting exit. A
//! frame beyond the limits (4 files of 1 KiB, names of 64 bytes, a 1 KiB
//! message) is refused the moment its length is read: a frame of status 7
//! names the error, then the firmware exits with a failure status.
//!
//! The protocol work is `tej-embedded-example`'s [`Echo`], which runs on
//! `tej-core` with its default features off: no allocator, fixed buffers.
//! People read what it does through semihosting (QEMU's standard output).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod uart;

use core::mem::size_of;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use tej_core::Decoder;
use tej_embedded_example::{Echo, Exit, ReceivedFrame};

/// Bytes taken from the UART per call into the decoder, at most.
const CHUNK: usize = 16;

#[entry]
fn main() -> ! {
    // `#[entry]` hands this out as a `&'static mut`: the frame buffers sit
    // in `.bss`, not on the stack.
    static mut FRAME: ReceivedFrame = ReceivedFrame::new();

    let Some(mut uart) = uart::Uart0::take() else {
        exit(debug::EXIT_FAILURE);
    };
    hprintln!(
        "tej-firmware: frame buffers {} bytes, decoder {} bytes",
        size_of::<ReceivedFrame>(),
        size_of::<Decoder>()
    );
    let mut echo = Echo::new(FRAME);
    echo.greet(|bytes| uart.write_all(bytes));
    hprintln!("tej-firmware: ready");

    let mut echoed = 0;
    let mut chunk = [0u8; CHUNK];
    loop {
        let len = uart.read_some(&mut chunk);
        let step = echo.feed(&chunk[..len], |bytes| uart.write_all(bytes));
        if step.echoed > 0 {
            echoed += step.echoed;
            let frame = echo.frame();
            hprintln!(
                "tej-firmware: echoed frame {}: status {}, {} files, message of {} bytes",
                echoed,
                frame.status.get(),
                frame.files.len(),
                frame.message.len()
            );
        }
        match step.exit {
            None => {}
            Some(Exit::Success) => {
                uart.flush();
                hprintln!("tej-firmware: bye after {} frames", echoed);
                exit(debug::EXIT_SUCCESS);
            }
            Some(Exit::Failure(error)) => {
                uart.flush();
                hprintln!("tej-firmware: refused: {}", error);
                exit(debug::EXIT_FAILURE);
            }
        }
    }
}

/// Ends the program through semihosting: QEMU exits with 0 for
/// [`debug::EXIT_SUCCESS`], non-zero otherwise.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    // Without a debugger (semihosting off) there is nowhere to go.
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("tej-firmware: {}", info);
    exit(debug::EXIT_FAILURE)
}
