/*
Tiny helpers shared by every kernel file in cuda/. Keep this header small: anything that only one
kernel uses belongs in that kernel's file, and anything with a Rust mirror (parameter structs)
belongs in its own header beside this one.
*/
#pragma once

// Number of blocks of size M needed to cover N items (N, M > 0).
#define CEIL_DIV(N, M) (((N) + (M) - 1) / (M))
