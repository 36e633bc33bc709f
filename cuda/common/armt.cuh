/*
Constants of ARMT's associative memory shared by the memory kernels (armt_read.cu, armt_write.cu) and mirrored in
Rust (crates/dbrmt-kernels/src/reference/mod.rs, whose unit test checks the value).
*/
#pragma once

// The ε the original ARMT code adds to the read/write denominators and to ‖kφ‖² (reference::ARMT_EPS).
#define ARMT_EPS 1e-5f
