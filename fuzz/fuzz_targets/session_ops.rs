//! Structure-aware: one `Session` under a run of operations built with
//! `arbitrary` (the peer writing frames with arbitrary names and contents,
//! their bytes handed over in arbitrary pieces, the peer reading or not,
//! time passing, frames sent from the handler, from a `Sender` and from a
//! `BufferedSender`, files received into memory, discarded or into a
//! `FileSink`, files sent from a `FileSource`, closes, shutdowns, end of
//! stream, I/O errors), checked after every step against the reference
//! model in `tej-core/tests/model/`, the one `tej-core/tests/session_model.rs`
//! checks its proptest runs against (its docs list what it checks).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tej_core::SessionConfig;

// The model shared with tej-core's property test, by its path: this
// workspace builds with nightly and sanitizers, apart from tej-core's tests.
#[path = "../../tej-core/tests/model/mod.rs"]
mod model;

use model::{Model, Op, LIMITS};

#[derive(Debug, Arbitrary)]
struct Input {
    high_water: u8,
    capacity: u8,
    ping: Option<bool>,
    idle: bool,
    ops: Vec<Op>,
}

impl Input {
    fn config(&self) -> SessionConfig {
        SessionConfig::default()
            .limits(LIMITS)
            .outbox_high_water([64, 700, 8192][usize::from(self.high_water % 3)])
            .send_queue_capacity([19, 500, 16384][usize::from(self.capacity % 3)])
            .ping_interval(
                self.ping
                    .map(|short| Duration::from_millis(if short { 300 } else { 1000 })),
            )
            .idle_timeout(self.idle.then_some(Duration::from_millis(5000)))
            .close_linger(Duration::from_secs(3))
    }
}

fuzz_target!(|input: Input| {
    let mut model = Model::new(input.config());
    model.check();
    for op in input.ops.into_iter().take(256) {
        model.apply(op);
        model.check();
    }
    model.finish();
});
