//! Launcher of `gemm_sm90_decode_mlp` (`cuda/gemm_sm90.cu`, v13; design: `cuda/sm90/decode_mlp.cuh`): a decode
//! step's whole MLP block in one cooperative launch — `act = SwiGLU(norm(x)·gate_upᵀ)`, then `x += act·downᵀ` (and
//! x's bf16 mirror) — where its producers stream down's weights while the gate/up tiles finish, and a barrier across
//! the launch's blocks holds down's activation rows until every block has stored its own. The bytes of
//! [`gemm_sm90_nt_normed`] (SwiGLU) followed by [`gemm_sm90_nt_bf16_bf16_f32_mirrored`] (or the unmirrored f32
//! launch), accumulating, on the same groups; its check: `check/gemm_sm90_decode_mlp.rs`.

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

use crate::gemm::GemmGroup;
#[cfg(doc)]
use crate::gemm_sm90::{gemm_sm90_nt_bf16_bf16_f32_mirrored, gemm_sm90_nt_normed};
use crate::gemm_sm90::{
    mirror_k, narrow_map, norm_plan, persistent_config, validate, Epilogue, NormLengths, Sm90NormRows, Sm90Params,
    NORMED_MAX_K, NORMED_MAX_ROWS,
};
use crate::launch::{addr, addr_mut, invalid};
use crate::{cubins, Gpu, Kernel, KernelError};

const ENTRY: &str = "gemm_sm90_decode_mlp";
/// Down's tile width (`MLP_DOWN_BN`) and k-blocks a stage (`MLP_DOWN_KS`); gate/up's tile: 128 interleaved B rows.
const DOWN_BN: usize = 16;
const DOWN_KS: usize = 8;
const GATE_UP_BN: usize = 128;
/// The A box rows of down's stages (`NORMED_ROWS`: every problem has at most that many rows).
const DOWN_A_ROWS: usize = 8;

/// The buffers of one decode MLP launch.
#[derive(Debug)]
pub struct DecodeMlp<'a> {
    /// The f32 hidden rows (row stride `x_ld`): normed for gate/up, and down's C, which the launch adds to.
    pub hidden: &'a mut CudaSlice<f32>,
    pub x_ld: usize,
    /// Where the bf16 copy of every hidden element the launch writes goes (at least `hidden`'s length), if anywhere.
    pub mirror: Option<&'a mut CudaSlice<bf16>>,
    /// The norm weights `[layers, d]`, and eps.
    pub norm_w: &'a CudaSlice<bf16>,
    pub eps: f32,
    /// Per gate/up group: the hidden row of its first row, and its norm weights' row (the layer).
    pub norm_rows: &'a [(usize, usize)],
    /// The interleaved gate/up weights ([`crate::gemm_sm90::interleave_gate_up`]) and down's.
    pub gate_up: &'a CudaSlice<bf16>,
    pub down: &'a CudaSlice<bf16>,
    /// The activations: gate/up's C and down's A.
    pub act: &'a mut CudaSlice<bf16>,
    /// Two words of zero before the first launch (each launch leaves them so): the blocks' barrier.
    pub barrier: &'a mut CudaSlice<u32>,
}

/// Whether one launch can run the gate/up groups `gate_up` (SwiGLU, `n` = 2·I interleaved rows) and the down groups
/// `down` (f32, accumulated); the reason if not: every group at most [`NORMED_MAX_ROWS`] rows, gate/up's `k` (the
/// norm's width) at most [`NORMED_MAX_K`] and `n` a multiple of 128, down's `k` whole k-blocks of 64.
pub fn supports(gate_up: &[GemmGroup], down: &[GemmGroup]) -> Result<(), String> {
    let (Some(g), Some(d)) = (gate_up.first(), down.first()) else {
        return Err("no gate/up or no down groups".into());
    };
    let max_m = gate_up.iter().chain(down).map(|g| g.m).max().unwrap_or(0);
    if max_m > NORMED_MAX_ROWS {
        return Err(format!("a group of {max_m} rows (at most {NORMED_MAX_ROWS})"));
    }
    if g.k == 0 || g.k > NORMED_MAX_K || !g.n.is_multiple_of(128) {
        return Err(format!(
            "gate/up k = {} (1 to {NORMED_MAX_K}), n = {} (a multiple of 128)",
            g.k, g.n
        ));
    }
    if d.k == 0 || !d.k.is_multiple_of(64) {
        return Err(format!("down k = {} is not whole k-blocks of 64", d.k));
    }
    Ok(())
}

/// The lengths a launch's checks read.
#[derive(Debug, Clone, Copy)]
struct Lengths {
    hidden: usize,
    mirror: Option<usize>,
    norm: NormLengths,
    gate_up: usize,
    down: usize,
    act: usize,
    barrier: usize,
}

/// The launch's parameters on lengths (C addresses relative to their buffers, in elements), the A rows of the
/// activations and the B rows of both weights, and the tiles of each phase; every check of the launch.
#[allow(clippy::type_complexity)]
fn plan(
    len: Lengths,
    norm_rows: &[(usize, usize)],
    gate_up: &[GemmGroup],
    down: &[GemmGroup],
) -> Result<(Sm90Params, Sm90Params, Sm90NormRows, (usize, usize, usize), usize), KernelError> {
    supports(gate_up, down).map_err(|why| invalid(ENTRY, why))?;
    // gate/up's A rows are made, never read: an A length that holds them passes validate's A checks
    let a_len = gate_up.iter().map(|g| g.a_offset + g.m * g.lda).max().unwrap_or(0);
    let (g, _, gu_rows) = validate(ENTRY, gate_up, a_len, len.gate_up, len.act, Epilogue::SwiGlu)?;
    let accumulate = Epilogue::F32 { accumulate: true };
    let (d, act_rows, dn_rows) = validate(ENTRY, down, len.act, len.down, len.hidden, accumulate)?;
    let norm = norm_plan(ENTRY, len.norm, norm_rows, gate_up)?;
    if len.norm.x_len != len.hidden {
        return Err(invalid(
            ENTRY,
            "the norm's rows are not the hidden rows down adds to".into(),
        ));
    }
    if len.mirror.is_some_and(|m| m < len.hidden) {
        return Err(invalid(ENTRY, "a bf16 mirror shorter than the hidden rows".into()));
    }
    if len.barrier < 2 {
        return Err(invalid(ENTRY, format!("a barrier of {} words (2)", len.barrier)));
    }
    let tiles = |groups: &[GemmGroup], bn: usize| groups.iter().filter(|g| g.m > 0).count() * groups[0].n.div_ceil(bn);
    let tiles = tiles(gate_up, GATE_UP_BN).max(tiles(down, DOWN_BN));
    Ok((g, d, norm, (act_rows, gu_rows, dn_rows), tiles))
}

/// `act = SwiGLU(norm(hidden)·gate_upᵀ)` for the groups `gate_up` and then `hidden += act·downᵀ` for `down`, in one
/// launch (see the module doc). Only where [`supports`] says so; a cooperative launch (one block per SM at most).
pub fn gemm_sm90_decode_mlp(
    gpu: &Gpu,
    stream: &CudaStream,
    mlp: DecodeMlp<'_>,
    gate_up: &[GemmGroup],
    down: &[GemmGroup],
) -> Result<(), KernelError> {
    let len = Lengths {
        hidden: mlp.hidden.len(),
        mirror: mlp.mirror.as_ref().map(|m| m.len()),
        norm: NormLengths {
            x_len: mlp.hidden.len(),
            x_ld: mlp.x_ld,
            w_len: mlp.norm_w.len(),
            eps: mlp.eps,
        },
        gate_up: mlp.gate_up.len(),
        down: mlp.down.len(),
        act: mlp.act.len(),
        barrier: mlp.barrier.len(),
    };
    let (mut g, mut d, norm, (act_rows, gu_rows, dn_rows), tiles) = plan(len, mlp.norm_rows, gate_up, down)?;
    if gate_up.iter().chain(down).all(|g| g.m == 0) {
        return Ok(());
    }
    let (gu_k, dn_k, act_ld) = (gate_up[0].k, down[0].k, down[0].lda);
    let gu_map = narrow_map(ENTRY, addr(mlp.gate_up, stream), (gu_k, gu_rows, gu_k), GATE_UP_BN, 1)?;
    let act_base = addr_mut(mlp.act, stream);
    let dn_a_map = narrow_map(ENTRY, act_base, (dn_k, act_rows, act_ld), DOWN_A_ROWS, DOWN_KS)?;
    let dn_b_map = narrow_map(ENTRY, addr(mlp.down, stream), (dn_k, dn_rows, dn_k), DOWN_BN, DOWN_KS)?;
    for p in &mut g.problems[..gate_up.len()] {
        p.c = act_base + p.c * 2;
    }
    let hidden = addr_mut(mlp.hidden, stream);
    for p in &mut d.problems[..down.len()] {
        p.c = hidden + p.c * 4;
    }
    if let Some(m) = mlp.mirror {
        let why = || invalid(ENTRY, "the mirror sits at the hidden rows' address / 2".into());
        d.mirror_k = mirror_k(hidden, addr_mut(m, stream)).ok_or_else(why)?;
    }
    let mut norm: Sm90NormRows = norm;
    (norm.x, norm.w) = (hidden, addr(mlp.norm_w, stream));
    let barrier = addr_mut(mlp.barrier, stream);
    let f = gpu.function(&Kernel::new(cubins::GEMM_SM90, ENTRY))?;
    let cfg = persistent_config(gpu, &f, tiles)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder
        .arg(&gu_map)
        .arg(&dn_a_map)
        .arg(&dn_b_map)
        .arg(&g)
        .arg(&d)
        .arg(&norm)
        .arg(&barrier);
    if !crate::switches::is_off("DBRMT_MLP_COOPERATIVE") {
        builder.cooperative();
    }
    // SAFETY: the kernel takes (TmaMap ×3, GemmSm90Params ×2, GemmSm90NormRows, uint32_t*) by value; these are their
    // #[repr(C)] mirrors and a device address. The maps cover exactly the gate/up weights, the activations
    // (`act_rows` whole rows of `lda`) and down's weights; plan() checked every group of both phases against them
    // (validate: B rows, C regions, no two groups writing one element), the norm's x rows and weight rows, the mirror's
    // length and the barrier's two words; the buffers the launch writes (act, hidden, its mirror, the barrier) are
    // borrowed mutably, so none aliases a weight. Within the launch, gate/up writes act and reads hidden, down reads
    // act and writes hidden: the barrier across the blocks orders them (every block stores its activations and has
    // read its norm rows before any block loads down's A rows). Every group has at most NORMED_MAX_ROWS rows and
    // gate/up's k at most NORMED_MAX_K (supports()), the kernel's plan (it traps otherwise). The grid is at most one
    // block per SM (persistent_config, the whole shared memory a block) and cooperative, so every block is resident
    // and the barrier completes.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(m: usize, n: usize, k: usize, a_offset: usize, b_offset: usize, c_offset: usize, ldc: usize) -> GemmGroup {
        GemmGroup {
            a_offset,
            b_offset,
            c_offset,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc,
        }
    }

    /// The 1B's decode MLP: d 2048, I 8192, 16 layers; one request row at hidden row `row`, layer `layer`.
    fn one_b(row: usize, layer: usize, m: usize) -> (Vec<GemmGroup>, Vec<GemmGroup>, Lengths) {
        let (d, i, layers, rows) = (2048, 8192, 16, 16);
        let gu = vec![group(m, 2 * i, d, row * d, layer * 2 * i * d, row * i, i)];
        let dn = vec![group(m, d, i, row * i, layer * d * i, row * d, d)];
        let len = Lengths {
            hidden: rows * d,
            mirror: Some(rows * d),
            norm: NormLengths {
                x_len: rows * d,
                x_ld: d,
                w_len: layers * d,
                eps: 1e-5,
            },
            gate_up: layers * 2 * i * d,
            down: layers * d * i,
            act: rows * i,
            barrier: 2,
        };
        (gu, dn, len)
    }

    #[test]
    fn plans_the_models_decode_shapes() {
        let (gu, dn, len) = one_b(3, 15, 1);
        let (g, d, _, (act_rows, gu_rows, dn_rows), tiles) = plan(len, &[(3, 15)], &gu, &dn).expect("1B plan");
        assert_eq!(
            (g.n, g.k, d.n, d.k, d.accumulate, g.accumulate),
            (16384, 2048, 2048, 8192, 1, 0)
        );
        assert_eq!((act_rows, gu_rows, dn_rows), (16, 16 * 16384, 16 * 2048));
        // 128 gate/up tiles, 128 down tiles of 16
        assert_eq!(tiles, 128);
        let (gu, dn, len) = one_b(0, 0, 8);
        assert!(plan(len, &[(0, 0)], &gu, &dn).is_ok(), "8 rows");
    }

    #[test]
    fn refuses_what_the_kernel_cannot_run() {
        let (gu, dn, len) = one_b(3, 15, 9);
        assert!(plan(len, &[(3, 15)], &gu, &dn).is_err(), "9 rows");
        let (gu, dn, len) = one_b(3, 15, 1);
        assert!(plan(len, &[(3, 15), (0, 0)], &gu, &dn).is_err(), "norm rows per group");
        assert!(plan(len, &[(3, 16)], &gu, &dn).is_err(), "norm row past the layers");
        assert!(plan(len, &[(16, 0)], &gu, &dn).is_err(), "x row past the hidden rows");
        assert!(
            plan(Lengths { barrier: 1, ..len }, &[(3, 15)], &gu, &dn).is_err(),
            "barrier"
        );
        assert!(
            plan(
                Lengths {
                    mirror: Some(100),
                    ..len
                },
                &[(3, 15)],
                &gu,
                &dn
            )
            .is_err(),
            "mirror"
        );
        assert!(
            plan(Lengths { act: 8192 * 3, ..len }, &[(3, 15)], &gu, &dn).is_err(),
            "act rows"
        );
        let norm = NormLengths { x_len: 100, ..len.norm };
        assert!(
            plan(Lengths { norm, ..len }, &[(0, 15)], &gu, &dn).is_err(),
            "norm rows are the hidden rows"
        );
        let wide = vec![group(1, 2 * 8192, 4104, 0, 0, 0, 8192)];
        assert!(supports(&wide, &dn).is_err(), "k past NORMED_MAX_K");
        let odd = vec![group(1, 2 * 8192 + 64, 2048, 0, 0, 0, 8192)];
        assert!(supports(&odd, &dn).is_err(), "n not whole interleaved blocks");
        let short = vec![group(1, 2048, 8200, 0, 0, 0, 2048)];
        assert!(supports(&gu, &short).is_err(), "down k not whole k-blocks");
        assert!(supports(&[], &dn).is_err() && supports(&gu, &[]).is_err(), "no groups");
    }
}
