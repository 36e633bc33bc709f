#!/usr/bin/env python3
"""Writes the demo document (`docs/demo/magic-number.txt`): a held-out fact — "The special magic number for NAME is
NNNN." — in the first segment of a long filler text, and the cloze about it at the very end, laid out as the task
of task.py lays out its evaluation documents (the fact in segment 0, the question in the last segment). The text is
the document's token ids decoded with the GGUF's vocabulary, and it is checked that `dbrmt tokenize` gives exactly
those ids back (so the engine sees what evaluation saw).

    python3 train/make_demo.py --dbrmt target/release/dbrmt --gguf models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

No torch needed.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_np  # noqa: E402
import task  # noqa: E402


def decode(tokens, ids):
    # byte-level BPE: 'Ġ' is a space; the task's text is ASCII letters, digits, spaces and full stops
    text = "".join(tokens[i] for i in ids).replace("\u0120", " ")
    assert all(c.isascii() for c in text), "unexpected token in the document"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbrmt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--segments", type=int, default=16)
    ap.add_argument("--segment-size", type=int, default=1024)
    ap.add_argument("--near-start", type=int, default=300, help="the fact starts within this many tokens")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs", "demo", "magic-number.txt"))
    a = ap.parse_args()
    tokens = gguf_np.GGUF(a.gguf).meta["tokenizer.ggml.tokens"]
    seed = a.seed
    while True:
        doc = task.TaskGen(task.Pieces.load(), a.segment_size, seed=seed).sample(
            a.segments, 1, split="valid", fact_region="first")
        if doc.fact_positions[0] < a.near_start:
            break
        seed += 1
    text = decode(tokens, doc.prompt)
    with open(a.out, "w") as f:
        f.write(text)   # no newline at the end: it would be a token after the question
    tmp = a.out + ".ids.npy"
    subprocess.run([a.dbrmt, "tokenize", "--model", a.gguf, "--file", a.out, "--out", tmp], check=True)
    got = np.load(tmp).tolist()
    os.remove(tmp)
    assert got == doc.prompt, "the text does not tokenise back to the document's ids"
    T = a.segment_size
    print(f"{a.out}: {len(doc.prompt)} tokens ({a.segments} segments of {T}, the last {len(doc.prompt) - (a.segments - 1) * T}"
          f" tokens), seed {seed}; the fact at token {doc.fact_positions[0]}: {doc.key} -> {doc.value}")


if __name__ == "__main__":
    main()
