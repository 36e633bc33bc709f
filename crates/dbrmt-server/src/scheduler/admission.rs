//! The bounds on work: requests running (live in the engine: a memory state and a KV cache each) and waiting.
//! Counted when a request is submitted and released when it ends, so a full server answers 429 at once instead of
//! queueing without end.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Requests in the system (waiting or running) and running.
#[derive(Debug)]
pub struct Admission {
    max_concurrent: usize,
    max_queued: usize,
    in_system: AtomicUsize,
    running: AtomicUsize,
}

impl Admission {
    pub fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            max_concurrent,
            max_queued,
            in_system: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    }

    /// Takes a place if one is free.
    pub fn try_enter(&self) -> bool {
        let cap = self.max_concurrent + self.max_queued;
        self.in_system
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1))
            .is_ok()
    }

    /// A request ended (finished, failed or cancelled) and gives its place back.
    pub fn leave(&self) {
        let _ = self
            .in_system
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Set by the worker after every change of its live set.
    pub fn set_running(&self, n: usize) {
        self.running.store(n, Ordering::Release);
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    pub fn waiting(&self) -> usize {
        self.in_system.load(Ordering::Acquire).saturating_sub(self.running())
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    pub fn max_queued(&self) -> usize {
        self.max_queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let a = Admission::new(2, 1);
        assert!(a.try_enter() && a.try_enter() && a.try_enter());
        assert!(!a.try_enter());
        a.set_running(2);
        assert_eq!((a.running(), a.waiting()), (2, 1));
        a.leave();
        assert!(a.try_enter());
        for _ in 0..5 {
            a.leave();
        }
        assert_eq!(a.waiting(), 0);
    }
}
