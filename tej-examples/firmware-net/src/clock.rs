//! Milliseconds since boot, from SysTick: smoltcp's timers and the quiet
//! period after a refusal run on it.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// The core clock of `mps2-an386`.
const CORE_HZ: u32 = 25_000_000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts SysTick: an interrupt every millisecond.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since [`start`].
pub fn millis() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// Now, for smoltcp.
pub fn now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(i64::from(millis()))
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
