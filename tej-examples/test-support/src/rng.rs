//! The seeded PRNG the suites share (fastrand's wyrand underneath): split
//! points, faults, random frames. The same seed gives the same sequence,
//! so a failing run is repeated by its seed.

use std::ops::{Deref, DerefMut};

use tej_core::{Frame, FrameBuilder, Status};

/// A seeded generator; fastrand's methods (`usize(..n)`, `u8(..)`, …)
/// through `Deref`, and the draws the suites share below.
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// A generator seeded from the environment variable `var` (a decimal
    /// number), else from `default`; prints the seed, so that a failing
    /// run can be repeated.
    pub fn from_env(var: &str, default: u64) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|seed| seed.trim().parse().ok())
            .unwrap_or(default);
        println!("random seed {seed} (set {var} to change it)");
        Rng::new(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }

    /// A length up to `max`, often an edge: 0, `max`, or small.
    pub fn len(&mut self, max: usize) -> usize {
        match self.0.usize(..5) {
            0 => 0,
            1 => max,
            2 => self.0.usize(..17).min(max),
            _ => self.0.usize(..=max),
        }
    }

    /// Random bytes, as many as [`len`](Rng::len) draws up to `max`.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.len(max);
        (0..len).map(|_| self.0.u8(..)).collect()
    }

    /// A UTF-8 name of at most `max` bytes, with 1- to 4-byte characters
    /// (never a tab or a newline).
    pub fn name(&mut self, max: usize) -> String {
        let len = self.len(max);
        let mut name = String::new();
        loop {
            let c = ['a', 'Z', '7', '.', '/', '-', ' ', 'é', '漢', '🦀'][self.0.usize(..10)];
            if name.len() + c.len_utf8() > len {
                return name;
            }
            name.push(c);
        }
    }

    /// A frame of any status but `excluded` and any version, with up to
    /// `limits.files` files of at most `limits.file_len` bytes and a
    /// message of at most `limits.message_len`.
    pub fn frame(&mut self, limits: &FrameLimits, excluded: &[u8]) -> Frame {
        let status = loop {
            let status = self.0.u8(..128);
            if !excluded.contains(&status) {
                break status;
            }
        };
        let mut builder = FrameBuilder::new(Status::new(status).unwrap()).version(self.0.u8(..));
        for _ in 0..self.0.usize(..=limits.files) {
            builder = builder.file(self.name(limits.name_len), self.bytes(limits.file_len));
        }
        let message = self.bytes(limits.message_len);
        if !message.is_empty() {
            builder = builder.message(message);
        }
        builder.build()
    }
}

/// How large a random frame may be.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    pub files: usize,
    pub name_len: usize,
    pub file_len: usize,
    pub message_len: usize,
}

impl Deref for Rng {
    type Target = fastrand::Rng;

    fn deref(&self) -> &fastrand::Rng {
        &self.0
    }
}

impl DerefMut for Rng {
    fn deref_mut(&mut self) -> &mut fastrand::Rng {
        &mut self.0
    }
}
