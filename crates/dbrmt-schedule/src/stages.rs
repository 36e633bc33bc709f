//! Pipeline stages (filled in by the schedule work).

/// Placeholder.
#[derive(Debug)]
pub struct StageError;

/// Placeholder.
pub fn stages(_layers: usize, _devices: usize) -> Result<Vec<std::ops::Range<usize>>, StageError> {
    Err(StageError)
}
