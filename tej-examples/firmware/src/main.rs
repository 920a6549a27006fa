//! `tej-firmware`: TEJ on a Cortex-M4 in QEMU (`mps2-an386`), speaking to
//! the host over UART0.
//!
//! At boot it sends a frame of status 5 (`tej-firmware ready`). Every frame
//! it receives is answered with status 6 and the same files and message; a
//! ping (status 2) with a ping; a frame of status 3 with status 4, then a
//! successful semihosting exit. A frame beyond the limits (4 files of 1 KiB,
//! names of 64 bytes, a 1 KiB message) is refused the moment its length is
//! read: a frame of status 7 names the error; the firmware then reads what
//! the host still sends until it has been quiet for [`QUIET_MS`] (QEMU
//! exiting with input unread would reset the connection and lose the
//! refusal), and exits with a failure status.
//!
//! The protocol work is `tej-embedded-example`'s [`run`], on `tej-core`'s
//! blocking embedded-io endpoint over the UART: no allocator, fixed
//! buffers. People read what it does through semihosting (QEMU's standard
//! output).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod uart;

use core::mem::size_of;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use tej_core::embedded::blocking::Endpoint;
use tej_core::embedded::FrameStore;
use tej_embedded_example::{run, Exit, LIMITS, MAX_FILES, STORAGE};

/// Bytes taken from the UART per read, at most.
const CHUNK: usize = 16;
/// The host is done sending once nothing has come for this long.
const QUIET_MS: u32 = 200;
/// The core clock of `mps2-an386`.
const CORE_HZ: u32 = 25_000_000;

#[entry]
fn main() -> ! {
    // `#[entry]` hands these out as `&'static mut`: the buffers sit in
    // `.bss`, not on the stack.
    static mut STORE: [u8; STORAGE] = [0; STORAGE];
    static mut BUFFER: [u8; CHUNK] = [0; CHUNK];

    let (Some(uart), Some(core)) = (uart::Uart0::take(), cortex_m::Peripherals::take()) else {
        exit(debug::EXIT_FAILURE);
    };
    hprintln!(
        "tej-firmware: frame buffers {} + {} bytes, endpoint {} bytes",
        STORAGE,
        CHUNK,
        size_of::<Endpoint<'static, uart::Uart0>>()
    );
    let mut store = FrameStore::<MAX_FILES>::new(STORE);
    let mut endpoint = Endpoint::new(uart, BUFFER, LIMITS);
    hprintln!("tej-firmware: ready");

    let mut echoed = 0;
    let ran = run(&mut endpoint, &mut store, |frame| {
        echoed += 1;
        hprintln!(
            "tej-firmware: echoed frame {}: status {}, {} files, message of {} bytes",
            echoed,
            frame.status().get(),
            frame.file_count(),
            frame.message().unwrap_or_default().len()
        );
    });
    match ran.how {
        Exit::Success => {
            hprintln!("tej-firmware: bye after {} frames", ran.frames);
            exit(debug::EXIT_SUCCESS);
        }
        Exit::Refused(error) => {
            let dropped = drain(endpoint.io_mut(), core.SYST);
            hprintln!("tej-firmware: refused: {}", error);
            hprintln!("tej-firmware: {} bytes read after the refusal", dropped);
            exit(debug::EXIT_FAILURE);
        }
        Exit::Closed => {
            hprintln!("tej-firmware: the input ended");
            exit(debug::EXIT_FAILURE);
        }
        Exit::Failed(error) => {
            hprintln!("tej-firmware: failed: {}", error);
            exit(debug::EXIT_FAILURE);
        }
    }
}

/// Reads and drops what arrives until nothing has for [`QUIET_MS`], timed
/// by SysTick wrapping every 10 ms; returns how many bytes it dropped.
fn drain(uart: &mut uart::Uart0, mut syst: SYST) -> usize {
    const TICK_MS: u32 = 10;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 * TICK_MS - 1);
    syst.clear_current();
    syst.enable_counter();
    let mut dropped = 0;
    let mut quiet_ticks = 0;
    while quiet_ticks < QUIET_MS / TICK_MS {
        if uart.try_read().is_some() {
            dropped += 1;
            quiet_ticks = 0;
        } else if syst.has_wrapped() {
            quiet_ticks += 1;
        }
    }
    dropped
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
