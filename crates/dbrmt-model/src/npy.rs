//! .npy files (filled in by the checkpoint work).
