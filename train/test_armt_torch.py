"""Checks of the training code (pytest; CPU, tiny shapes). Skipped as a whole where torch is absent (CI has none).

    python3 -m pytest train/ -q

* the functional model reproduces the golden cases (testdata/fixtures: fp64 references of the original ARMT math)
  to ≤ 1e-5 — logits, and every layer's final A and z;
* per-segment checkpointing gives the same loss and gradients; a last segment run without its memory rows (as
  generation does) gives the same text logits;
* the GGUF dequantisation is bitwise the engine's, and the model with a random non-zero memory written as an
  `--armt` file gives the logits `dbrmt run --device cpu --armt FILE` gives (≤ 1e-4) — when models/smollm2 and a
  built `dbrmt` are there (else skipped, with the reason);
* the task generator lays documents out as the training and the evaluation assume.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "testdata", "fixtures", "generator"))

import armt_io  # noqa: E402
import armt_torch as at  # noqa: E402
import task  # noqa: E402

FIXTURES = os.path.join(REPO, "testdata", "fixtures")
GGUF = os.path.join(REPO, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def rel(a, b):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return ((a - b).norm() / b.norm()).item()


def fixture_model(name):
    import armt_ref as ar
    from safetensors.torch import load_file
    d = os.path.join(FIXTURES, name)
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    rcfg = ar.ARMTConfig.from_json_dict(cj)
    params = ar.any_to_internal({k: v.float() for k, v in load_file(os.path.join(d, "model.safetensors")).items()},
                                rcfg)
    cfg = at.Config(vocab_size=rcfg.vocab_size, hidden_size=rcfg.hidden_size,
                    intermediate_size=rcfg.intermediate_size, num_hidden_layers=rcfg.num_hidden_layers,
                    num_attention_heads=rcfg.num_attention_heads, num_key_value_heads=rcfg.num_key_value_heads,
                    head_dim=rcfg.head_dim, rms_norm_eps=rcfg.rms_norm_eps, rope_theta=rcfg.rope_theta,
                    rope_scaling=rcfg.rope_scaling, tie_word_embeddings=rcfg.tie_word_embeddings,
                    num_mem_tokens=rcfg.num_mem_tokens, d_mem=rcfg.d_mem, segment_size=rcfg.segment_size,
                    nu=rcfg.nu, correction=rcfg.correction)
    memory = {k: v for k, v in params.items() if "W_m" in k or k == "memory"}
    backbone = {k: v for k, v in params.items() if k not in memory}
    return cfg, at.ARMT(cfg, backbone, memory_init=memory), d


@pytest.mark.parametrize("case", ["tiny-armt-names", "tiny-hf-tied-partial", "tiny-single-short", "small-bf16"])
def test_golden_cases(case):
    cfg, m, d = fixture_model(case)
    ids = torch.from_numpy(np.load(os.path.join(d, "input_ids.npy"))).long()
    with torch.no_grad():
        hs, (A, z) = m.forward_ids(ids)
        logits = torch.cat([m.logits(h) for h in hs], dim=1)
    e = (rel(logits, np.load(os.path.join(d, "logits.npy"))), rel(A, np.load(os.path.join(d, "mem_A.npy"))),
         rel(z, np.load(os.path.join(d, "mem_z.npy"))))
    assert max(e) < 1e-5, f"{case}: rel err logits/A/z {e}"


def test_checkpointing_and_open_last_segment_change_nothing():
    cfg, m, d = fixture_model("tiny-armt-names")
    ids = torch.from_numpy(np.load(os.path.join(d, "input_ids.npy"))).long()

    def loss_and_grads(ckpt):
        m.zero_grad()
        hs, _ = m.forward_ids(ids, last_write=False, checkpoint=ckpt)
        loss = m.logits(hs[-1][:, -3:]).logsumexp(-1).sum()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in m.parameters()]

    l0, g0 = loss_and_grads(False)
    l1, g1 = loss_and_grads(True)
    assert abs(l0 - l1) <= 1e-6 * abs(l0)
    for a, b in zip(g0, g1):
        assert rel(b, a) < 1e-6
    assert any(g.abs().sum() > 0 for g in g0[2:3]), "W_mv gets a gradient"
    with torch.no_grad():
        full, _ = m.forward_ids(ids, last_write=True)
        open_, _ = m.forward_ids(ids, last_write=False)
    assert rel(m.logits(open_[-1]), m.logits(full[-1])) < 1e-6


def test_task_layout():
    pieces = task.Pieces.synthetic()
    gen = task.TaskGen(pieces, segment_size=64, seed=3)
    for n_seg in (1, 2, 5):
        for n_facts in (1, 3):
            doc = gen.sample(n_seg, n_facts, split="train")
            ids = doc.ids
            assert (len(ids) - 1) // 64 + 1 == n_seg, (len(ids), n_seg)
            ans = ids[doc.answer_start:]
            assert ans == doc.answer_ids
            assert doc.answer_start > (n_seg - 1) * 64, "question and answer in the last segment"
            # the queried fact lies in an earlier segment (or the only one)
            assert doc.fact_positions[doc.query_index] < max(1, n_seg - 1) * 64
    held = {gen.sample(3, 1, split="valid").key for _ in range(50)}
    train = {gen.sample(3, 1, split="train").key for _ in range(50)}
    assert not held & train


def dbrmt_binary():
    for p in [os.environ.get("DBRMT"), os.path.join(REPO, "dist", "dbrmt")] + \
             [os.path.join(t, prof, "dbrmt") for t in (os.environ.get("CARGO_TARGET_DIR", ""),
                                                        os.path.join(REPO, "target"))
              for prof in ("release", "debug")]:
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which("dbrmt")


needs_engine = pytest.mark.skipif(not (os.path.isfile(GGUF) and dbrmt_binary()),
                                  reason="needs models/smollm2 (cargo xtask fetch-model smollm2) and a built dbrmt")


@needs_engine
def test_smollm2_matches_the_engine(tmp_path):
    T, M, dm = 48, 4, 16
    cfg, backbone, sha = armt_io.load_backbone(GGUF, T, M, dm)
    m = at.ARMT(cfg, backbone, memory_init=armt_io.random_memory(cfg, seed=5))
    armt = str(tmp_path / "armt.safetensors")
    armt_io.save_armt(m, armt, sha)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(100, 20000, (1, 2 * T + 17), generator=g)
    np.save(tmp_path / "ids.npy", ids[0].numpy().astype(np.int32))
    out = subprocess.run([dbrmt_binary(), "run", "--model", GGUF, "--armt", armt, "--input-ids",
                          str(tmp_path / "ids.npy"), "--device", "cpu", "--logits", "all", "--dump-logits",
                          str(tmp_path / "logits.npy"), "--dump-state", str(tmp_path / "state.safetensors")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with torch.no_grad():
        hs, (A, z) = m.forward_ids(ids)
        ours = torch.cat([m.logits(h) for h in hs], dim=1)[0]
    theirs = np.load(tmp_path / "logits.npy")
    from safetensors.torch import load_file
    st = load_file(str(tmp_path / "state.safetensors"))
    L = cfg.num_hidden_layers
    # all layers together (one layer's A can be small next to the delta rule's cancellations: ≤ 1e-3 there)
    eA = rel(torch.stack([st[f"layers.{i}.A"] for i in range(L)]), A[:, 0])
    ez = rel(torch.stack([st[f"layers.{i}.z"] for i in range(L)]), z[:, 0])
    eA_layer = max(rel(st[f"layers.{i}.A"], A[i, 0]) for i in range(L))
    assert A.abs().max() > 0, "the memory carries something"
    assert rel(theirs, ours) < 1e-4 and eA < 1e-4 and ez < 1e-4 and eA_layer < 1e-3, \
        (rel(theirs, ours), eA, ez, eA_layer)
    # and it matters: the same model with W_mv zero gives other logits
    zero = {k: (v * 0 if "W_mv" in k else v) for k, v in armt_io.random_memory(cfg, seed=5).items()}
    with torch.no_grad():
        hs0, _ = at.ARMT(cfg, backbone, memory_init=zero).forward_ids(ids)
    last = hs0[-1].shape[1]
    assert rel(m.logits(hs0[-1])[0], ours[-last:]) > 0.05
    # the control file: W_mv zero -> A stays exactly zero
    ctrl = str(tmp_path / "ctrl.safetensors")
    armt_io.zeroed_copy(armt, ctrl)
    tens, meta = armt_io.read_armt(ctrl)
    assert meta["base_sha256"] == sha and all(v.abs().max() == 0 for k, v in tens.items() if ".W_mv." in k)
