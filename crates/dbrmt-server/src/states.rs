//! Stored memory states: an ARMT request's whole past in a few MB (A, z per layer, plus the open segment's ids),
//! kept under an id so later requests continue from it. Bounded in count and bytes; the least recently used
//! state is evicted first. States are immutable (continuing from one and storing gives a new id), so a request
//! holds its own reference and eviction never changes a request already running.

use std::collections::HashMap;
use std::sync::Arc;

use dbrmt_formats::rng::SplitMix64;
use dbrmt_formats::SavedState;

/// Why a state could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the state is {bytes} bytes, more than the store holds in all (--max-state-mb: {limit} bytes)")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the store holds no states (--max-states 0)")]
    Disabled,
}

#[derive(Debug)]
struct Entry {
    state: Arc<SavedState>,
    bytes: usize,
    /// When it was last stored or read ([`StateStore::tick`]).
    used: u64,
}

/// The states, by id.
#[derive(Debug)]
pub struct StateStore {
    entries: HashMap<String, Entry>,
    max_states: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    evictions: u64,
    /// Ids are unguessable from one another: a seeded sequence, not a counter.
    ids: SplitMix64,
}

impl StateStore {
    pub fn new(max_states: usize, max_bytes: usize, id_seed: u64) -> Self {
        Self {
            entries: HashMap::new(),
            max_states,
            max_bytes,
            bytes: 0,
            tick: 0,
            evictions: 0,
            ids: SplitMix64::new(id_seed),
        }
    }

    /// The state `id`, marked as used.
    pub fn get(&mut self, id: &str) -> Option<Arc<SavedState>> {
        self.tick += 1;
        let e = self.entries.get_mut(id)?;
        e.used = self.tick;
        Some(e.state.clone())
    }

    /// Stores `state` under a new id; returns the id.
    pub fn insert_new(&mut self, state: SavedState) -> Result<String, StoreError> {
        let id = loop {
            let id = format!("state-{:016x}", self.ids.next_u64());
            if !self.entries.contains_key(&id) {
                break id;
            }
        };
        self.insert(id.clone(), state)?;
        Ok(id)
    }

    /// Stores `state` under `id`, replacing what was there; evicts the least recently used states until the
    /// bounds hold. A state that cannot fit leaves the store as it was.
    pub fn insert(&mut self, id: String, state: SavedState) -> Result<(), StoreError> {
        let bytes = state.bytes();
        if self.max_states == 0 {
            return Err(StoreError::Disabled);
        }
        if bytes > self.max_bytes {
            return Err(StoreError::TooLarge {
                bytes,
                limit: self.max_bytes,
            });
        }
        self.remove(&id);
        while self.entries.len() + 1 > self.max_states || self.bytes + bytes > self.max_bytes {
            self.evict_oldest();
        }
        self.tick += 1;
        self.bytes += bytes;
        self.entries.insert(
            id,
            Entry {
                state: Arc::new(state),
                bytes,
                used: self.tick,
            },
        );
        Ok(())
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.entries.remove(id) {
            Some(e) => {
                self.bytes -= e.bytes;
                true
            }
            None => false,
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.remove(&id);
            self.evictions += 1;
        }
    }

    /// `(id, bytes, tokens covered)` of every state, most recently used first.
    pub fn list(&self, segment_size: usize) -> Vec<(String, usize, usize)> {
        let mut all: Vec<_> = self.entries.iter().collect();
        all.sort_by_key(|(_, e)| std::cmp::Reverse(e.used));
        all.into_iter()
            .map(|(id, e)| (id.clone(), e.bytes, covered_tokens(&e.state, segment_size)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn max_states(&self) -> usize {
        self.max_states
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// Text tokens a state has read: its closed segments and its open one.
pub fn covered_tokens(state: &SavedState, segment_size: usize) -> usize {
    state.segments * segment_size + state.open_ids.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbrmt_formats::MemoryState;

    /// A state of `floats` + 1 open id = 4·(floats + 1) bytes.
    fn state(floats: usize) -> SavedState {
        let mut s = SavedState::fresh(MemoryState::zeros(1, 1, floats - 1));
        s.open_ids = vec![1];
        s
    }

    #[test]
    fn least_recently_used_goes_first_within_count_and_bytes() {
        let mut store = StateStore::new(3, 100, 7);
        let a = store.insert_new(state(4)).unwrap(); // 20 bytes each
        let b = store.insert_new(state(4)).unwrap();
        let c = store.insert_new(state(4)).unwrap();
        assert_ne!(a, b);
        assert!(store.get(&a).is_some()); // a is now newer than b
        let d = store.insert_new(state(4)).unwrap();
        assert!(store.get(&b).is_none(), "b was the least recently used");
        assert!(store.get(&a).is_some() && store.get(&c).is_some() && store.get(&d).is_some());
        assert_eq!((store.len(), store.bytes(), store.evictions()), (3, 60, 1));
        // a 64-byte state pushes out the two oldest (c: the count, then d: the bytes)
        store.get(&a);
        store.insert("big".into(), state(15)).unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.get(&a).is_some() && store.get("big").is_some());
        assert_eq!((store.bytes(), store.evictions()), (84, 3));
    }

    #[test]
    fn a_state_too_large_changes_nothing_and_ids_are_replaced_in_place() {
        let mut store = StateStore::new(4, 100, 1);
        store.insert("x".into(), state(4)).unwrap();
        let e = store.insert("y".into(), state(30)).unwrap_err();
        assert_eq!(e, StoreError::TooLarge { bytes: 124, limit: 100 });
        assert_eq!((store.len(), store.bytes()), (1, 20));
        store.insert("x".into(), state(9)).unwrap();
        assert_eq!((store.len(), store.bytes()), (1, 40));
        assert!(store.remove("x") && !store.remove("x"));
        assert_eq!((store.len(), store.bytes()), (0, 0));
        assert_eq!(
            StateStore::new(0, 100, 1).insert_new(state(4)),
            Err(StoreError::Disabled)
        );
    }
}
