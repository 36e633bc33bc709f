/*
Poison: fill a buffer of 4-byte words with one bit pattern. Every GPU test poisons its output buffers
with a pattern no kernel would produce (for f32, the quiet NaN 0x7FC0DEAD) before the kernel under test
runs, so an element the kernel forgot to write shows up in the comparison with the CPU reference
instead of passing by luck on zeroed memory. It is also the smallest real kernel of the crate: the one
that proves the build (nvcc -> sm_90a cubin -> include_bytes! -> cuModuleLoadData) end to end.
*/
#include "common/common.cuh"
#include "common/pdl.cuh"

// ----------------------------------------------------------------------------
// CUDA kernels

// Grid-stride loop, so any grid size covers any n (the launcher caps the grid). The word type is
// unsigned int whatever the buffer holds: only the bits are written.
extern "C" __global__ void poison_u32(unsigned int* out, unsigned long long n, unsigned int pattern) { pdl_entry();
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = pattern;
    }
}
