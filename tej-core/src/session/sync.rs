//! The synchronisation types of the send queue and of [`SendProgress`](super::SendProgress):
//! std's, or under `cfg(loom)` loom's, whose every lock, wait and atomic
//! the loom models (`tests/loom.rs`) permute. Only the types change:
//! builds without `--cfg loom` are the same code as before.

#[cfg(not(loom))]
pub(crate) use alloc::sync::Arc;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
