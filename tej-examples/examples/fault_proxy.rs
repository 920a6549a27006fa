//! The test suite's fault proxy as a program, for the soak
//! (`scripts/soak.sh`) and for trying a peer by hand:
//!
//! ```text
//! cargo run -p tej-examples --example fault_proxy -- \
//!     --listen 127.0.0.1:4100 --target 127.0.0.1:4000 --fault mixed:4M --seed 7
//! ```
//!
//! Addresses are `IP:PORT` or `unix:PATH`. Faults (offsets count the
//! client's bytes; sizes take K and M): `pass`, `slice`, `delay:MS`,
//! `stall:AT:MS`, `reset:AT`, `truncate:AT`, `flip:AT:BIT`, `blackhole:AT`,
//! `mixed:SPAN` (each connection one of these, drawn from the seed, at an
//! offset below SPAN). Runs until killed.

use std::time::Duration;

use tej_test_support::fault_proxy::{Addr, Fault, FaultProxy};

fn addr(text: &str) -> Result<Addr, String> {
    match text.strip_prefix("unix:") {
        Some(path) => Ok(Addr::Unix(path.into())),
        None => text
            .parse()
            .map(Addr::Tcp)
            .map_err(|error| format!("{text:?}: {error}")),
    }
}

fn size(text: &str) -> Result<u64, String> {
    let (digits, scale) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 1 << 20),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .map(|value| value * scale)
        .map_err(|error| format!("{text:?}: {error}"))
}

fn fault(text: &str) -> Result<Fault, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let millis = |text: &str| size(text).map(Duration::from_millis);
    Ok(match parts.as_slice() {
        ["pass"] => Fault::Pass,
        ["slice"] => Fault::Slice,
        ["delay", ms] => Fault::DelayReplies(millis(ms)?),
        ["stall", at, ms] => Fault::Stall {
            at: size(at)?,
            pause: millis(ms)?,
        },
        ["reset", at] => Fault::Reset { at: size(at)? },
        ["truncate", at] => Fault::Truncate { at: size(at)? },
        ["flip", at, bit] => Fault::FlipBit {
            at: size(at)?,
            bit: bit.parse().map_err(|_| format!("bit {bit:?}: 0 to 7"))?,
        },
        ["blackhole", at] => Fault::Blackhole { at: size(at)? },
        ["mixed", span] => Fault::Mixed { span: size(span)? },
        _ => return Err(format!("unknown fault {text:?}")),
    })
}

fn run() -> Result<(), String> {
    let mut listen = None;
    let mut target = None;
    let mut chosen = Fault::Pass;
    let mut seed = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(addr(&value()?)?),
            "--target" => target = Some(addr(&value()?)?),
            "--fault" => chosen = fault(&value()?)?,
            "--seed" => seed = value()?.parse().map_err(|_| "--seed: a number")?,
            _ => {
                return Err(format!(
                    "unknown argument {flag:?}; usage: --listen ADDR --target ADDR [--fault FAULT] [--seed N]"
                ))
            }
        }
    }
    let target = target.ok_or("--target is required")?;
    let proxy = FaultProxy::start(listen, target.clone(), chosen.clone(), seed)
        .map_err(|error| format!("cannot listen: {error}"))?;
    println!(
        "fault proxy on {:?} to {target:?}: {chosen:?}, seed {seed}",
        proxy.addr()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    if let Err(error) = run() {
        eprintln!("fault_proxy: {error}");
        std::process::exit(2);
    }
}
