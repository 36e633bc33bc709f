//! safetensors checkpoints (filled in by the checkpoint work).
