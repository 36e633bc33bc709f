/*
Programmatic dependent launch (PDL, sm_90): the launcher (crates/dbrmt-kernels/src/launch.rs, `Launch`) lets a kernel
start while the one before it on the stream is finishing, so the next launch's set-up overlaps the previous kernel's
tail (many short launches: a decode step, the 160M model's steps). Every entry point calls `pdl_entry()` first
(but see below):
  * `griddepcontrol.wait` blocks until the previous grid has completed and its writes are visible, before this kernel
    reads or writes any global memory — so no kernel ever sees a half-written input, and nothing changes in any
    kernel's arithmetic (the bits are the same with PDL on or off);
  * `griddepcontrol.launch_dependents` then lets the next kernel be launched (its blocks wait in their own
    `pdl_entry`).
Without the launch attribute (DBRMT_PDL=off, the dev harnesses) both instructions return at once.
The Hopper kernels with a set-up (mbarrier initialisation, tensor-map prefetch: gemm_sm90.cu, armt_read_fused_sm90.cu,
attention_sm90.cu) do it first and call pdl_entry() right after, before their first global memory access, so the
set-up overlaps the previous kernel too (1B decode +2-3%, docs/log/gemm_sm90.md §14). Requesting weights before the
wait as well (which no kernel writes) was measured and made decode slower (same section).
*/
#pragma once

__device__ __forceinline__ void pdl_entry() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
