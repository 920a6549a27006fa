//! Every connection's next deadline, earliest first.

use std::collections::BTreeSet;
use std::time::Duration;

/// Deadlines by connection slot; at most one per slot.
#[derive(Debug, Default)]
pub(super) struct Timers {
    deadlines: BTreeSet<(Duration, usize)>,
}

impl Timers {
    /// Moves `slot`'s deadline from `old` to `new`.
    pub(super) fn reset(&mut self, slot: usize, old: Option<Duration>, new: Option<Duration>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.deadlines.remove(&(old, slot));
        }
        if let Some(new) = new {
            self.deadlines.insert((new, slot));
        }
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Duration> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Removes the deadlines due at `now`, pushing their slots and deadlines.
    pub(super) fn take_due(&mut self, now: Duration, due: &mut Vec<(usize, Duration)>) {
        while let Some(&(deadline, slot)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            due.push((slot, deadline));
        }
    }

    pub(super) fn len(&self) -> usize {
        self.deadlines.len()
    }
}
