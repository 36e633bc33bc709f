"""The task: a fact (a name and a 4-digit number) somewhere early in a document of filler text; the question about it
in the last segment. Everything is built from token ids pre-computed with the engine's tokenizer
(`pieces.json`, written by `make_pieces.py`), so neither training nor evaluation needs a tokenizer.

Document of n segments of T text tokens: (n − 1) full segments, then a last segment of r ≤ T tokens that ends with
the question and the answer:

    … filler … <fact 1> … filler … <fact k> … filler …  |  … filler … The special magic number for NAME is 4821
    └──────────── segments 0 … n−2 (facts only here) ────────┘└────────────── last segment ───────────────────┘

For n = 1 the facts are in the last (only) segment, before the question (stage 0: the backbone alone can answer).
Facts: " The special magic number for NAME is 4821." with distinct names per document; the question — a cloze,
" The special magic number for NAME is" — asks about one of them. (The cloze, not a "What is …? Answer:" question:
base SmolLM2-135M completes the cloze from a fact in the same segment in 16/16 documents, the question form in 2/16;
the memory should not have to make up for the backbone's reading of the prompt.) Names are split into train and held-out ("valid") lists; numbers are fresh random draws.
The answer is " " + 4 digits (SmolLM2 tokenises digits one by one), 5 tokens; exact match = all 5 right, so
chance is about 1 in 9000.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
PIECES = os.path.join(HERE, "pieces.json")


@dataclass
class Pieces:
    filler: List[List[int]]          # sentences, each starting with a space
    names_train: List[List[int]]     # " Name"
    names_valid: List[List[int]]
    name_text_train: List[str]
    name_text_valid: List[str]
    fact_prefix: List[int]           # " The special magic number for"
    fact_mid: List[int]              # " is"
    fact_end: List[int]              # "."
    question_prefix: List[int]       # " The special magic number for"
    question_end: List[int]          # " is"
    space: int                       # " " before the digits
    digits: List[int]                # ids of "0" … "9"

    @classmethod
    def load(cls, path: str = PIECES) -> "Pieces":
        with open(path) as f:
            d = json.load(f)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    @classmethod
    def synthetic(cls) -> "Pieces":
        """Made-up ids (for tests that need no tokenizer)."""
        r = random.Random(0)
        sent = [[r.randrange(1000, 2000) for _ in range(r.randrange(4, 12))] for _ in range(40)]
        names = [[3000 + i] for i in range(50)]
        return cls(filler=sent, names_train=names[:40], names_valid=names[40:],
                   name_text_train=[f"n{i}" for i in range(40)], name_text_valid=[f"n{i}" for i in range(40, 50)],
                   fact_prefix=[10, 11, 12], fact_mid=[13], fact_end=[14], question_prefix=[20, 21],
                   question_end=[22, 23], space=5, digits=list(range(40, 50)))


@dataclass
class Doc:
    ids: List[int]                   # the whole document, question and answer included
    answer_start: int                # index of the first answer token
    answer_ids: List[int]
    key: str                         # the queried name
    value: str                       # its number
    query_index: int
    fact_positions: List[int] = field(default_factory=list)

    @property
    def prompt(self) -> List[int]:
        return self.ids[:self.answer_start]


class TaskGen:
    def __init__(self, pieces: Pieces, segment_size: int, seed: int = 0):
        self.p, self.T = pieces, segment_size
        self.rng = random.Random(seed)

    def number(self) -> str:
        return str(self.rng.randrange(1000, 10000))

    def number_ids(self, value: str) -> List[int]:
        return [self.p.space] + [self.p.digits[int(c)] for c in value]

    def _fill(self, length: int, facts: List[List[int]], positions: List[int]) -> List[int]:
        """`length` tokens of filler sentences with each fact inserted at a sentence boundary at or before its target
        position (targets sorted, each ≤ length − len(fact)); records where each fact starts in `positions`."""
        out: List[int] = []
        targets = sorted(self.rng.randrange(0, max(1, length - sum(len(f) for f in facts)) + 1)
                         for _ in facts)
        k = 0
        while len(out) < length:
            s = self.p.filler[self.rng.randrange(len(self.p.filler))]
            # every fact whose target this sentence would pass goes in first
            while k < len(facts) and len(out) + len(s) > targets[k] + sum(len(f) for f in facts[:k]):
                positions.append(len(out))
                out.extend(facts[k])
                k += 1
            out.extend(s)
        while k < len(facts):   # (only when length is tiny)
            positions.append(len(out))
            out.extend(facts[k])
            k += 1
        # cut filler, never a fact: drop tokens from the end, before the last fact's end if need be
        last_fact_end = positions[-1] + len(facts[-1]) if facts else 0
        if last_fact_end > length:
            raise ValueError("facts do not fit")
        return out[:length]

    def sample(self, n_segments: int, n_facts: int = 1, split: str = "train", fact_region: str = "any",
               last_len: int = 0, drop_facts: bool = False) -> Doc:
        """A document of `n_segments` segments with `n_facts` facts. `fact_region='first'` puts the facts in
        segment 0 (the farthest from the question). `last_len` fixes the last segment's length (documents of one
        batch share it, so they need no padding); 0 draws it. `drop_facts` leaves the facts out (the same question,
        nothing to answer it from: a control)."""
        p, T, r = self.p, self.T, self.rng
        names, texts = (p.names_train, p.name_text_train) if split == "train" else (p.names_valid, p.name_text_valid)
        which = r.sample(range(len(names)), n_facts)
        values = [self.number() for _ in which]
        facts = [p.fact_prefix + names[w] + p.fact_mid + self.number_ids(v) + p.fact_end
                 for w, v in zip(which, values)]
        q = r.randrange(n_facts)
        question = p.question_prefix + names[which[q]] + p.question_end
        answer = self.number_ids(values[q])
        tail = len(question) + len(answer)
        # last segment length: at least the question, the answer and some filler; at most T
        min_last = min(T, tail + max(8, sum(len(f) for f in facts) + 8 if n_segments == 1 else 8))
        last = max(min_last, min(T, last_len)) if last_len else r.randrange(min_last, T + 1)
        positions: List[int] = []
        if drop_facts:
            facts = []
        if n_segments == 1:
            body = self._fill(last - tail, facts, positions)
        else:
            ctx = (n_segments - 1) * T
            if fact_region == "first":
                body = self._fill(T, facts, positions)
                if n_segments > 2:
                    body = body + self._fill(ctx - T, [], [])
            else:
                body = self._fill(ctx, facts, positions)
            body = body + self._fill(last - tail, [], [])
        fact_pos = list(positions) or [-1] * n_facts   # fact i starts at positions[i] (inserted in list order)
        ids = body + question + answer
        return Doc(ids=ids, answer_start=len(body) + len(question), answer_ids=answer,
                   key=texts[which[q]], value=values[q], query_index=q, fact_positions=fact_pos)
