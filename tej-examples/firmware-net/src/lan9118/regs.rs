//! The LAN9118's registers at `0x4020_0000` on `mps2-an386`: the only
//! `unsafe` of the driver, volatile 32-bit reads and writes.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

/// Where the controller's registers start on this board.
const BASE: usize = 0x4020_0000;

/// Receive data FIFO port.
pub const RX_DATA_FIFO: usize = 0x00;
/// Transmit data FIFO port (command words, then data).
pub const TX_DATA_FIFO: usize = 0x20;
/// Receive status FIFO port: one word per received packet.
pub const RX_STATUS_FIFO: usize = 0x40;
/// Chip ID and revision.
pub const ID_REV: usize = 0x50;
/// Interrupt configuration.
pub const IRQ_CFG: usize = 0x54;
/// Interrupt enables.
pub const INT_EN: usize = 0x5c;
/// Reads `0x8765_4321` whatever the bus's byte order.
pub const BYTE_TEST: usize = 0x64;
/// Receive configuration (offset and end alignment of packet data).
pub const RX_CFG: usize = 0x6c;
/// Transmit configuration.
pub const TX_CFG: usize = 0x70;
/// Hardware configuration; bit 0 soft-resets the chip.
pub const HW_CFG: usize = 0x74;
/// Receive FIFO information: bits 23:16 count the waiting packets.
pub const RX_FIFO_INF: usize = 0x7c;
/// Transmit FIFO information: bits 15:0 are the free bytes of the data FIFO.
pub const TX_FIFO_INF: usize = 0x80;
/// Power management; bit 0 says the chip is ready.
pub const PMT_CTRL: usize = 0x84;
/// Free-running counter at 25 MHz.
pub const FREE_RUN: usize = 0x9c;
/// Command port of the MAC's own registers.
pub const MAC_CSR_CMD: usize = 0xa4;
/// Data port of the MAC's own registers.
pub const MAC_CSR_DATA: usize = 0xa8;

/// Whether the one [`Registers`] has been handed out.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The controller's register block. There is at most one, so whoever holds
/// it owns the registers.
pub struct Registers {
    _owned: (),
}

impl Registers {
    /// The register block; `None` if it was already taken.
    pub fn take() -> Option<Registers> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Registers { _owned: () })
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read(&self, offset: usize) -> u32 {
        debug_assert!(offset < 0x100 && offset.is_multiple_of(4));
        // SAFETY: `BASE + offset` is one of the controller's word-aligned
        // registers, always mapped on this board; only the one `Registers`
        // touches them. A read's only side effect is the device's own
        // (popping a FIFO word).
        unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
    }

    /// Writes `value` to the 32-bit register at `offset`.
    pub fn write(&mut self, offset: usize, value: u32) {
        debug_assert!(offset < 0x100 && offset.is_multiple_of(4));
        // SAFETY: as in `read`; the values written are ones the LAN9118
        // defines for that register.
        unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
    }
}
