//! ARMT-LLaMA on raw device buffers: the GPU side of the model.
//!
//! * [`DeviceWeights`]: every weight uploaded once as bf16, stacked per kind `[L, out, in]` (q/k/v fused, gate/up
//!   fused, the write-side `W_k | W_v | w_β` fused) so a grouped launch only indexes a layer;
//! * [`DeviceState`]: `A` `[states, D, d]` and `z` `[states, D]` in f32;
//! * [`Workspace`]: every buffer one step needs, sized once for the largest step (so no step allocates);
//! * [`GpuModel::step`]: one diagonal step — the read, the decoder layer and the write of up to `max_cells` cells,
//!   each a grouped launch with one group per cell.
//!
//! A cell's arithmetic never depends on the other cells of its step, so any schedule gives the same bits.

mod state;
mod step;
mod weights;
mod workspace;

pub use state::DeviceState;
pub use step::{GpuModel, StepCell};
pub use weights::DeviceWeights;
pub use workspace::Workspace;
