//! Executor and Engine.
