//! TEJ protocol adapter; filled in by a later issue.

pub use tej_core;
