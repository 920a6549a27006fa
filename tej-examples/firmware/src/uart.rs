//! UART0 of QEMU's `mps2-an386`: a CMSDK APB UART at `0x4000_4000`, wired
//! to QEMU's first `-serial`.
//!
//! The only `unsafe` in the firmware lives here: volatile reads and writes
//! of the UART's 32-bit registers. QEMU's model has a one-byte buffer each
//! way; while the receive buffer is full QEMU takes no more input from the
//! host, so polling loses no byte, however fast the host sends. The UART is
//! an [`embedded_io`] stream, for tej-core's endpoint.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

/// UART0's registers start here.
const BASE: usize = 0x4000_4000;
/// Data register: write a byte to send it, read to take the received byte.
const DATA: usize = 0x00;
/// State register: bit 0 TX buffer full, bit 1 RX buffer full.
const STATE: usize = 0x04;
/// Control register: bit 0 TX enable, bit 1 RX enable.
const CTRL: usize = 0x08;
/// Baud rate divider; QEMU transmits only once it is at least 16.
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;
const BAUDDIV_MIN: u32 = 16;

/// Whether the one [`Uart0`] has been handed out.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The board's UART0, enabled both ways. There is at most one, so whoever
/// holds it owns the registers.
pub struct Uart0 {
    _owned: (),
}

impl Uart0 {
    /// Enables UART0 and hands it out; `None` if it was already taken.
    pub fn take() -> Option<Uart0> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        let uart = Uart0 { _owned: () };
        uart.write_register(BAUDDIV, BAUDDIV_MIN);
        uart.write_register(CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE);
        // QEMU asks whether the UART can take input only when DATA is read
        // (or after up to a second of idling): a read now, while nothing
        // was received, tells it right away that input is enabled.
        let _ = uart.read_register(DATA);
        Some(uart)
    }

    fn read_register(&self, offset: usize) -> u32 {
        // SAFETY: `BASE + offset` is one of UART0's word-aligned registers,
        // always mapped on this board. A read has no side effect beyond the
        // device's own (reading DATA takes the received byte), and only the
        // one `Uart0` touches these registers.
        unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
    }

    fn write_register(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_register`; the values written are ones the
        // CMSDK UART defines for that register.
        unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
    }

    /// Waits until the transmit buffer is free; once it is, QEMU has
    /// handed the last byte to the host connection.
    pub fn flush(&mut self) {
        while self.read_register(STATE) & STATE_TX_FULL != 0 {
            core::hint::spin_loop();
        }
    }

    /// Sends `bytes`, one at a time as the transmit buffer frees.
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.flush();
            self.write_register(DATA, u32::from(byte));
        }
    }

    /// Takes the received byte, if there is one.
    pub fn try_read(&mut self) -> Option<u8> {
        if self.read_register(STATE) & STATE_RX_FULL == 0 {
            return None;
        }
        Some(self.read_register(DATA) as u8)
    }

    /// Waits for at least one byte, then takes those that follow without a
    /// wait, up to `buf.len()`; returns how many it stored. `buf` must not
    /// be empty.
    pub fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let mut len = 0;
        while len < buf.len() {
            match self.try_read() {
                Some(byte) => {
                    buf[len] = byte;
                    len += 1;
                }
                None if len > 0 => break,
                None => core::hint::spin_loop(),
            }
        }
        len
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Uart0 {
    /// Waits for at least one byte, then takes those that follow without a
    /// wait (as [`Uart0::read_some`]).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(self.read_some(buf))
    }
}

impl embedded_io::Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Uart0::flush(self);
        Ok(())
    }
}
