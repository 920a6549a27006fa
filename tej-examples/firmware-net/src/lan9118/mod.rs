//! A driver for the SMSC LAN9118 Ethernet controller, polled, as smoltcp's
//! [`Device`]. Packets go in and out through the chip's FIFO ports a 32-bit
//! word at a time; the MAC's own registers through its CSR command port.
//! References: the LAN9118 datasheet and QEMU's model (`hw/net/lan9118.c`).

mod regs;

use regs::Registers;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// The largest Ethernet frame without its FCS.
const MAX_FRAME: usize = 1514;
/// Room for a frame and its 4-byte FCS, as whole words.
const PACKET_BUFFER: usize = 1520;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1 << 0;
const PMT_CTRL_READY: u32 = 1 << 0;
const TX_CFG_TX_ON: u32 = 1 << 1;
/// Transmit statuses may overrun: nobody reads them.
const TX_CFG_TXSAO: u32 = 1 << 2;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const RX_STATUS_ERROR: u32 = 1 << 15;
/// Transmit command A: the buffer is the first and the last segment of a packet.
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

/// MAC control register and its enables.
const MAC_CR: u32 = 1;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_FDPX: u32 = 1 << 20;
/// The MAC address, bytes 4 and 5 (ADDRH) and 0 to 3 (ADDRL).
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;

/// Most polls of a busy bit before the chip is taken for dead.
const BUSY_POLLS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// Its registers were already handed out.
    Taken,
    /// BYTE_TEST did not read `0x8765_4321`: no LAN9118 there.
    NotFound(u32),
    /// A reset or a MAC register access did not complete.
    Timeout,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Taken => f.write_str("the LAN9118 was already taken"),
            InitError::NotFound(value) => write!(f, "no LAN9118: BYTE_TEST reads {value:#010x}"),
            InitError::Timeout => f.write_str("the LAN9118 did not answer in time"),
        }
    }
}

/// The controller, up and running both ways.
pub struct Lan9118 {
    regs: Registers,
    mac: [u8; 6],
    rx: [u8; PACKET_BUFFER],
    tx: [u8; PACKET_BUFFER],
    /// Packets whose receive status flagged an error.
    pub rx_errors: u32,
}

impl Lan9118 {
    /// Resets the controller and enables transmit and receive with the MAC
    /// address it holds (QEMU's `-nic` sets it).
    pub fn take() -> Result<Lan9118, InitError> {
        let mut regs = Registers::take().ok_or(InitError::Taken)?;
        let byte_test = regs.read(regs::BYTE_TEST);
        if byte_test != BYTE_TEST_VALUE {
            return Err(InitError::NotFound(byte_test));
        }
        regs.write(regs::HW_CFG, HW_CFG_SRST);
        wait(|| regs.read(regs::HW_CFG) & HW_CFG_SRST == 0)?;
        wait(|| regs.read(regs::PMT_CTRL) & PMT_CTRL_READY != 0)?;
        regs.write(regs::INT_EN, 0);
        regs.write(regs::IRQ_CFG, 0);
        let mut chip = Lan9118 {
            regs,
            mac: [0; 6],
            rx: [0; PACKET_BUFFER],
            tx: [0; PACKET_BUFFER],
            rx_errors: 0,
        };
        let low = chip.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = chip.mac_read(MAC_ADDRH)?.to_le_bytes();
        chip.mac = [low[0], low[1], low[2], low[3], high[0], high[1]];
        // Packet data from the first byte of the FIFO, no end padding.
        chip.regs.write(regs::RX_CFG, 0);
        chip.regs.write(regs::TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        chip.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX)?;
        Ok(chip)
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The chip's ID and revision.
    pub fn id(&self) -> u32 {
        self.regs.read(regs::ID_REV)
    }

    /// The free-running 25 MHz counter, some entropy for TCP's initial
    /// sequence numbers.
    pub fn free_run(&self) -> u32 {
        self.regs.read(regs::FREE_RUN)
    }

    fn mac_read(&mut self, register: u32) -> Result<u32, InitError> {
        let regs = &mut self.regs;
        wait(|| regs.read(regs::MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        regs.write(regs::MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | register);
        wait(|| regs.read(regs::MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        Ok(regs.read(regs::MAC_CSR_DATA))
    }

    fn mac_write(&mut self, register: u32, value: u32) -> Result<(), InitError> {
        let regs = &mut self.regs;
        wait(|| regs.read(regs::MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        regs.write(regs::MAC_CSR_DATA, value);
        regs.write(regs::MAC_CSR_CMD, MAC_CSR_BUSY | register);
        wait(|| regs.read(regs::MAC_CSR_CMD) & MAC_CSR_BUSY == 0)
    }

    /// Takes the next received packet into the receive buffer; its length
    /// without the FCS, or `None` if none is waiting or it was dropped.
    fn receive_packet(&mut self) -> Option<usize> {
        if (self.regs.read(regs::RX_FIFO_INF) >> 16) & 0xff == 0 {
            return None;
        }
        let status = self.regs.read(regs::RX_STATUS_FIFO);
        let len = ((status >> 16) & 0x3fff) as usize;
        // Every word of the packet leaves the FIFO, kept or not.
        let words = len.div_ceil(4);
        let keep = status & RX_STATUS_ERROR == 0 && (14 + 4..=MAX_FRAME + 4).contains(&len);
        for i in 0..words {
            let word = self.regs.read(regs::RX_DATA_FIFO).to_le_bytes();
            if keep {
                self.rx[4 * i..4 * i + 4].copy_from_slice(&word);
            }
        }
        if !keep {
            self.rx_errors = self.rx_errors.wrapping_add(1);
            return None;
        }
        Some(len - 4)
    }

    /// Whether the transmit data FIFO has room for a whole frame.
    fn can_transmit(&self) -> bool {
        (self.regs.read(regs::TX_FIFO_INF) & 0xffff) as usize >= MAX_FRAME + 8
    }
}

/// Polls `done` until it holds, a bounded number of times.
fn wait(mut done: impl FnMut() -> bool) -> Result<(), InitError> {
    for _ in 0..BUSY_POLLS {
        if done() {
            return Ok(());
        }
    }
    Err(InitError::Timeout)
}

/// Writes one whole packet into the transmit FIFO: command A (the buffer
/// length, first and last segment), command B (the packet length), then the
/// data, little-endian words.
fn transmit_packet(regs: &mut Registers, packet: &[u8]) {
    let len = packet.len() as u32;
    regs.write(regs::TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
    regs.write(regs::TX_DATA_FIFO, len);
    for chunk in packet.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        regs.write(regs::TX_DATA_FIFO, u32::from_le_bytes(word));
    }
}

/// A received packet, in the driver's receive buffer.
pub struct Rx<'a>(&'a [u8]);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Room to build a packet, sent when consumed.
pub struct Tx<'a> {
    regs: &'a mut Registers,
    buffer: &'a mut [u8; PACKET_BUFFER],
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MAX_FRAME);
        let packet = &mut self.buffer[..len];
        let result = f(packet);
        transmit_packet(self.regs, packet);
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        if !self.can_transmit() {
            return None;
        }
        let len = self.receive_packet()?;
        let Lan9118 { regs, rx, tx, .. } = self;
        Some((Rx(&rx[..len]), Tx { regs, buffer: tx }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if !self.can_transmit() {
            return None;
        }
        Some(Tx {
            regs: &mut self.regs,
            buffer: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = MAX_FRAME;
        capabilities
    }
}
