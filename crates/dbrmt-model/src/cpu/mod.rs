//! The CPU model.
