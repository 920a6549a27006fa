//! Examples and test support for tej-rs; filled in by later issues.
