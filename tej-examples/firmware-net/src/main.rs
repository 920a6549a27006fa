//! `tej-firmware-net`: TEJ over TCP/IP on a Cortex-M4 in QEMU
//! (`mps2-an386`), smoltcp over the board's LAN9118 Ethernet controller.
//!
//! The guest is 10.0.2.15/24 behind QEMU's user-mode network (gateway
//! 10.0.2.2) and listens on TCP port 7000, serving up to [`SLOTS`]
//! connections at once. Each new connection gets a status-5 frame
//! (`tej-firmware-net ready`); every frame is answered with status 6 and a
//! message of one line per file, `NAME<TAB>SIZE<TAB>SHA256HEX`, then one for
//! the message, `message<TAB>SIZE<TAB>SHA256HEX`. Files stream through the
//! socket's and the endpoint's 4 KiB buffers and are hashed on the way, so a
//! file of 16 MiB needs no more RAM than one of 16 bytes. A ping (status 2)
//! is answered with a ping; status 3 with status 4, then a successful
//! semihosting exit. A frame beyond the limits (8 files, names of 64 bytes,
//! files of 16 MiB, a message of 4 KiB) is refused with status 7 naming the
//! error; the firmware then reads what the peer still sends until it goes
//! quiet, so that the refusal is not lost to a reset, and closes that
//! connection only.
//!
//! The protocol work is `tej-core`'s async embedded-io endpoint; no
//! allocator. People read what it does through semihosting (QEMU's
//! standard output).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod clock;
mod lan9118;
mod net;
mod service;

use core::cell::RefCell;
use core::convert::Infallible;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Address};
use tej_core::embedded::asynch::Endpoint;

use lan9118::Lan9118;
use net::{Net, Socket};
use service::Outcome;

/// Connections served at once: two, and one more listening so that a new
/// connection is taken while another is being closed.
const SLOTS: usize = 3;
/// The TCP port.
const PORT: u16 = 7000;
/// Bytes of each socket's receive and send buffers, and of the endpoint's.
const BUFFER: usize = 4096;
/// A refused peer counts as done once it has sent nothing for this long.
const QUIET_MS: u32 = 300;
/// The longest a refused or closing peer is waited for.
const LINGER_MS: u32 = 10_000;

/// The buffers of one connection, in `.bss`.
struct Buffers {
    rx: [u8; BUFFER],
    tx: [u8; BUFFER],
    endpoint: [u8; BUFFER],
}

impl Buffers {
    const EMPTY: Buffers = Buffers {
        rx: [0; BUFFER],
        tx: [0; BUFFER],
        endpoint: [0; BUFFER],
    };
}

#[entry]
fn main() -> ! {
    // `#[entry]` hands these out as `&'static mut`: they sit in `.bss`.
    static mut BUFFERS: [Buffers; SLOTS] = [Buffers::EMPTY; SLOTS];
    static mut STORAGE: [SocketStorage<'static>; SLOTS] = [SocketStorage::EMPTY; SLOTS];

    let Some(core) = cortex_m::Peripherals::take() else {
        exit(debug::EXIT_FAILURE);
    };
    clock::start(core.SYST);
    let mut device = match Lan9118::take() {
        Ok(device) => device,
        Err(error) => {
            hprintln!("tej-firmware-net: {}", error);
            exit(debug::EXIT_FAILURE);
        }
    };
    let mac = device.mac();
    let mut config = Config::new(EthernetAddress(mac).into());
    config.random_seed = u64::from(device.free_run()) << 32
        | u64::from(u32::from_le_bytes([mac[2], mac[3], mac[4], mac[5]]));
    let mut iface = Interface::new(config, &mut device, clock::now());
    iface.update_ip_addrs(|addresses| {
        let _ = addresses.push(IpCidr::new(Ipv4Address::new(10, 0, 2, 15).into(), 24));
    });
    let _ = iface
        .routes_mut()
        .add_default_ipv4_route(Ipv4Address::new(10, 0, 2, 2));

    let mut sockets = SocketSet::new(&mut STORAGE[..]);
    let [first, second, third] = BUFFERS;
    let mut add = |buffers: &'static mut Buffers| {
        let rx = tcp::SocketBuffer::new(&mut buffers.rx[..]);
        let tx = tcp::SocketBuffer::new(&mut buffers.tx[..]);
        let mut socket = tcp::Socket::new(rx, tx);
        // Acknowledge at once: with a 4 KiB window, a delayed ACK stalls the sender.
        socket.set_ack_delay(None);
        (sockets.add(socket), &mut buffers.endpoint)
    };
    let slots = [add(first), add(second), add(third)];
    hprintln!(
        "tej-firmware-net: LAN9118 {:#010x}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, 10.0.2.15:{}, {} slots of {} bytes",
        device.id(),
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
        PORT,
        SLOTS,
        core::mem::size_of::<Buffers>()
    );

    let net = RefCell::new(Net {
        iface,
        device,
        sockets,
    });
    let [(h0, b0), (h1, b1), (h2, b2)] = slots;
    let t0 = pin!(connection(&net, 0, h0, b0));
    let t1 = pin!(connection(&net, 1, h1, b1));
    let t2 = pin!(connection(&net, 2, h2, b2));
    hprintln!(
        "tej-firmware-net: connection tasks {} x {} bytes on the stack",
        SLOTS,
        core::mem::size_of_val(&*t0)
    );
    let mut tasks = [t0, t1, t2];
    let mut cx = Context::from_waker(Waker::noop());
    hprintln!("tej-firmware-net: listening");
    loop {
        net.borrow_mut().poll();
        for task in &mut tasks {
            if let Poll::Ready(never) = task.as_mut().poll(&mut cx) {
                match never {}
            }
        }
    }
}

/// Serves connection after connection on one socket, forever.
async fn connection(
    net: &RefCell<Net>,
    slot: usize,
    handle: SocketHandle,
    buffer: &mut [u8; BUFFER],
) -> Infallible {
    let socket = Socket::new(net, handle);
    loop {
        if let Err(error) = socket.with(|socket| socket.listen(PORT)) {
            hprintln!(
                "tej-firmware-net: slot {}: cannot listen: {:?}",
                slot,
                error
            );
        }
        socket
            .until(|socket| socket.may_send() || socket.may_recv())
            .await;
        let started = clock::millis();
        if let Some(peer) = socket.with(|socket| socket.remote_endpoint()) {
            hprintln!("tej-firmware-net: slot {}: connection from {}", slot, peer);
        }
        let mut endpoint = Endpoint::new(socket, &mut buffer[..], service::LIMITS);
        let (outcome, frames) = service::serve(&mut endpoint).await;
        let elapsed = clock::millis().wrapping_sub(started);
        match outcome {
            Outcome::Quit => {
                hprintln!(
                    "tej-firmware-net: slot {}: bye after {} frames",
                    slot,
                    frames
                );
                socket.with(|socket| socket.close());
                exit(debug::EXIT_SUCCESS);
            }
            Outcome::Closed => {
                hprintln!(
                    "tej-firmware-net: slot {}: closed by the peer after {} frames in {} ms",
                    slot,
                    frames,
                    elapsed
                );
            }
            Outcome::Refused(error) => {
                hprintln!("tej-firmware-net: slot {}: refused: {}", slot, error);
                // What the peer still sends must be read, or the close would
                // reset the connection and lose the refusal.
                socket.drain(QUIET_MS, LINGER_MS).await;
            }
            Outcome::Failed(error) => {
                hprintln!("tej-firmware-net: slot {}: failed: {}", slot, error);
            }
        }
        socket.with(|socket| socket.close());
        let closing = clock::millis();
        socket
            .until(|socket| {
                // Anything still arriving is read and dropped while closing.
                while let Ok(1..) = socket.recv(|data| (data.len(), data.len())) {}
                matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait)
                    || clock::millis().wrapping_sub(closing) >= LINGER_MS
            })
            .await;
        // Out of TIME-WAIT at once, so that the socket listens again.
        socket.with(|socket| socket.abort());
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
    hprintln!("tej-firmware-net: {}", info);
    exit(debug::EXIT_FAILURE)
}
