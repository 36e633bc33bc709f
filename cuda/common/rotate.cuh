/*
The rotation of one RoPE pair, shared by the RoPE kernel (rope.cu) and the q/k/v product that applies RoPE in its
epilogue (gemm_sm90.cu's `_rope` entries, sm90/rope_rows.cuh): (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin). Why a
header of its own: both must give an element the same bits, so the rounding steps are written out (one product
rounded, then one fused multiply-add — what nvcc contracted the plain expression to in rope.cu) instead of left to
each compilation.
*/
#pragma once

__device__ __forceinline__ void rope_rotate(float x1, float x2, float ci, float si, float& y1, float& y2) {
    y1 = __fmaf_rn(x1, ci, -__fmul_rn(x2, si));
    y2 = __fmaf_rn(x2, ci, __fmul_rn(x1, si));
}
