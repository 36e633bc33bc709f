//! ARMT-LLaMA on raw device buffers: the GPU backend.
//!
//! * [`DeviceWeights`]: every weight uploaded once as bf16, stacked per kind `[L, out, in]` (q/k/v fused, gate/up
//!   fused, the write-side `W_k | W_v | w_β` fused) so a grouped launch only indexes a layer;
//! * [`DeviceState`]: `A` `[states, D, d]` and `z` `[states, D]` in f32;
//! * [`Workspace`]: every buffer one step needs, sized once for the largest step (so no step allocates);
//! * [`GpuModel::step`] (`model.rs`): one diagonal step — the read, the decoder layer and the write of up to
//!   `max_cells` cells, each a grouped launch with one group per cell (the rows and groups of each cell:
//!   `chunk.rs`); [`GpuModel::finish_many`] (`finish.rs`): the final norm, the LM head, logits or greedy ids;
//! * [`GpuExecutor`] (`executor.rs`): walks a schedule over the model on one stream;
//! * [`Session`] (`session.rs`): one request's generation with the state and a KV cache on the device.
//!
//! A cell's arithmetic never depends on the other cells of its step, so any schedule gives the same bits.

mod chunk;
mod executor;
mod finish;
mod graphs;
mod model;
mod packed;
mod profile;
mod runs;
mod session;
mod state;
mod weights;
mod workspace;

pub use executor::{set_two_streams, two_streams_enabled, DeviceTiming, GpuExecutor};
pub use finish::{Finished, Finishing};
pub use graphs::{graphs_enabled, set_graphs};
pub use model::{
    decode_norm_enabled, qkv_rope_enabled, set_decode_norm, set_qkv_rope, AttentionKernel, GpuModel, MemoryProducts,
    Projections, StepCell,
};
pub use packed::PackedExecutor;
pub use profile::{ProfilePart, StepProfile, StepWidth};
pub use session::{decode_ahead_enabled, set_decode_ahead, Session};
pub use state::DeviceState;
pub use weights::DeviceWeights;
pub use workspace::{Workspace, WorkspaceShape};
