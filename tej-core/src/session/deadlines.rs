//! A session's timers in one place: the idle timeout, the next ping, the
//! deadline of the frame being received, and a closing connection's
//! linger. Time is whatever the caller passes as `now`.

use core::time::Duration;

use super::config::SessionConfig;

/// What came due at a [`Deadlines::due`] check of an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing arrived for `idle_timeout`.
    Idle,
    /// No byte moved either way for `stall_timeout`.
    Stall,
    /// The frame being received missed its deadline.
    Frame,
    /// A ping is to be sent.
    Ping,
}

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    idle: Option<Duration>,
    stall: Option<Duration>,
    ping: Option<Duration>,
    linger: Option<Duration>,
    /// Stream offset where the frame now arriving began.
    frame_begin: u64,
    /// When the frame now arriving began, if one is part-way.
    frame_started: Option<Duration>,
    /// When the frame now arriving must be complete.
    frame: Option<Duration>,
    /// Since when the session has not read because its handler had no
    /// room: the idle, stall and frame clocks stand still meanwhile.
    paused: Option<Duration>,
}

impl Deadlines {
    /// The session opened at `now`: the idle and ping clocks start.
    pub(super) fn open(&mut self, now: Duration, config: &SessionConfig) {
        self.received(now, config);
        self.ping = config
            .ping_interval
            .map(|interval| now.saturating_add(interval));
    }

    /// Input arrived at `now`: the idle and stall clocks start again.
    pub(super) fn received(&mut self, now: Duration, config: &SessionConfig) {
        self.idle = config
            .idle_timeout
            .map(|timeout| now.saturating_add(timeout));
        self.moved(now, config);
    }

    /// Bytes moved at `now` (in, or out to the stream): the stall clock
    /// starts again.
    pub(super) fn moved(&mut self, now: Duration, config: &SessionConfig) {
        self.stall = config
            .stall_timeout
            .map(|timeout| now.saturating_add(timeout));
    }

    /// Starts, moves or ends the deadline of the frame arriving, which is
    /// part-way (`in_progress`) with the stream at `offset`.
    pub(super) fn track_frame(
        &mut self,
        now: Duration,
        config: &SessionConfig,
        in_progress: bool,
        offset: u64,
    ) {
        let Some(rule) = config.frame_timeout else {
            return;
        };
        if !in_progress {
            self.frame_started = None;
            self.frame = None;
            return;
        }
        let start = *self.frame_started.get_or_insert(now);
        self.frame = Some(rule.deadline(start, offset - self.frame_begin));
    }

    /// A frame was delivered; the next one's bytes start at `offset`.
    pub(super) fn frame_delivered(&mut self, offset: u64) {
        self.frame_begin = offset;
        self.frame_started = None;
    }

    /// The session stopped reading at `now` for its own handler's sake.
    pub(super) fn pause(&mut self, now: Duration) {
        self.paused.get_or_insert(now);
    }

    /// The session reads again at `now`: the idle, stall and frame clocks
    /// go on from where they stood at the pause.
    pub(super) fn resume(&mut self, now: Duration) {
        let Some(since) = self.paused.take() else {
            return;
        };
        let waited = now.saturating_sub(since);
        for at in [
            &mut self.idle,
            &mut self.stall,
            &mut self.frame,
            &mut self.frame_started,
        ]
        .into_iter()
        .flatten()
        {
            *at = at.saturating_add(waited);
        }
    }

    /// What is due at `now` in an open session, the ping moved to its next
    /// time when it is.
    pub(super) fn due(&mut self, now: Duration, config: &SessionConfig) -> Option<Due> {
        if self.paused.is_some() {
            return self.ping_due(now, config);
        }
        if self.idle.is_some_and(|deadline| now >= deadline) {
            return Some(Due::Idle);
        }
        if self.stall.is_some_and(|deadline| now >= deadline) {
            return Some(Due::Stall);
        }
        if self.frame.is_some_and(|deadline| now >= deadline) {
            return Some(Due::Frame);
        }
        self.ping_due(now, config)
    }

    /// A ping, if one is due at `now`, moved to its next time.
    fn ping_due(&mut self, now: Duration, config: &SessionConfig) -> Option<Due> {
        let (Some(due), Some(interval)) = (self.ping, config.ping_interval) else {
            return None;
        };
        if now < due {
            return None;
        }
        // Catch up without a burst after a long stall.
        self.ping = Some(now.max(due).saturating_add(interval));
        Some(Due::Ping)
    }

    /// The session began to close at `now`: it flushes for `close_linger`.
    pub(super) fn closing(&mut self, now: Duration, config: &SessionConfig) {
        self.linger = Some(now.saturating_add(config.close_linger));
    }

    /// A closing session wrote bytes at `now`: it flushes for another
    /// `close_linger`.
    pub(super) fn wrote(&mut self, now: Duration, config: &SessionConfig) {
        if self.linger.is_some() {
            self.closing(now, config);
        }
    }

    /// Whether a closing session's flush has run out of time.
    pub(super) fn linger_over(&self, now: Duration) -> bool {
        self.linger.is_some_and(|deadline| now >= deadline)
    }

    /// The earliest deadline of an open session.
    pub(super) fn next_open(&self) -> Option<Duration> {
        if self.paused.is_some() {
            return self.ping;
        }
        [self.idle, self.stall, self.ping, self.frame]
            .into_iter()
            .flatten()
            .min()
    }

    /// The deadline of a closing session.
    pub(super) fn next_closing(&self) -> Option<Duration> {
        self.linger
    }
}
