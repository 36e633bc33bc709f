#!/usr/bin/env python3
"""Makes the Hugging Face transformers reference fixtures for SmolLM2-135M-Instruct (GGUF, Q4_1).

HF transformers loads the GGUF file (dequantising every tensor to f32 and undoing llama.cpp's q/k row
permutation) and its tokenizer; this script records what it computes so that the Rust engine can be
checked against it without Python:

  logits.npy            float32 [prompts, 4, vocab]: logits at `positions` of each prompt (row p predicts
                        token p + 1), f32 forward of the whole prompt, eager attention
  reference.json        model sha256, versions, GGUF metadata facts, prompts (text, ids, positions,
                        greedy_32 ...), the measured f32 noise floor
  tokenizer_cases.json  [{text, ids, ids_smollm_pre, agree}] for strings that stress the tokenizer
  chat_template.json    the GGUF chat template, one user message, HF's rendering and its ids

Usage (from the repository root, in a venv with the versions listed in README.md):
  python testdata/smollm2/make_reference.py --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import hashlib
import json
import platform
import sys
from importlib import metadata as pkg_metadata
from pathlib import Path

import gguf
import numpy as np
import torch
from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GREEDY_TOKENS = 32
# Logit rows kept per prompt: these three plus the last position.
INNER_POSITIONS = [50, 150, 250]
PROMPT_TOKENS_MIN, PROMPT_TOKENS_MAX = 300, 400

PROMPTS = [
    # A short story passage.
    "The lighthouse on Gull Rock had been dark for eleven years when Mara Ellison rowed out to it with a "
    "toolbox, a thermos of coffee and a letter from the harbour council that said, in careful legal "
    "language, that the building was now hers. The island was smaller than she remembered from childhood. "
    "Sea pinks grew in the cracks of the path, and the iron door at the foot of the tower had rusted to the "
    "colour of old blood. It took her most of the morning to open it.\n\n"
    "Inside, the air smelled of salt and pigeon feathers. A spiral staircase climbed into the gloom, its "
    "railing still polished in places where a hand had once gripped it every night. Mara counted the steps "
    "as she went up, the way her grandfather had taught her: one hundred and twelve, and then the small "
    "brass hatch into the lamp room. The great lens was still there, cracked along one edge but otherwise "
    "whole, throwing splinters of grey daylight across the walls.\n\n"
    "On the keeper's desk she found a logbook. The last entry was written in pencil, in her grandfather's "
    "narrow hand: \"Wind north-east, rising. Lamp lit at 6:40. Saw a small boat beyond the reef, no lights, "
    "heading for the cove. Will watch.\" There was nothing after that, only blank pages that had gone soft "
    "and wavy with damp. Mara read the entry three times. Nobody in the village had ever mentioned a boat. "
    "The official story was that old Tom Ellison had slipped on the rocks during the storm and that the sea "
    "had taken him, as it took so many things on that coast.\n\n"
    "She sat down in his chair, opened the thermos, and looked out at the reef. The tide was going out. "
    "Between two black fingers of stone, where the water was pulling back, something pale caught the light.",
    # A technical explanation with numbers.
    "How a heat pump moves heat uphill\n\n"
    "A heat pump does not create heat; it moves heat from a cold place to a warm one, which is the opposite "
    "of what heat does on its own. It does this with a working fluid called a refrigerant, which is pumped "
    "around a closed loop through four main parts: an evaporator, a compressor, a condenser and an "
    "expansion valve.\n\n"
    "In the evaporator, the refrigerant enters as a cold liquid at low pressure, typically around -10 "
    "degrees Celsius on a winter day. Outdoor air at 2 degrees is warmer than that, so heat flows from the "
    "air into the refrigerant, which boils into a vapour. The compressor then squeezes this vapour, raising "
    "its pressure from about 3 bar to about 18 bar. Compressing a gas heats it, and the vapour leaves the "
    "compressor at roughly 70 degrees. In the condenser, which sits inside the house, the hot vapour gives "
    "up its heat to the water in the radiators or to the indoor air, and condenses back into a liquid. "
    "Finally, the expansion valve drops the pressure again, the liquid cools sharply, and the cycle "
    "repeats.\n\n"
    "The key figure is the coefficient of performance, or COP: the heat delivered divided by the electrical "
    "energy used. A typical air-source heat pump has a COP of about 3.2 when it is 7 degrees outside, which "
    "means that 1 kWh of electricity delivers 3.2 kWh of heat. At -7 degrees the COP may fall to 2.1, "
    "because the pump must lift heat across a larger temperature difference. By comparison, a gas boiler "
    "with an efficiency of 92 percent turns 1 kWh of gas into 0.92 kWh of heat. For a house that needs "
    "12,000 kWh of heat per year, a seasonal COP of 2.8 means an electricity demand of roughly 4,300 kWh.",
    # A dialogue with a list.
    "Librarian: Good afternoon! How can I help you today?\n"
    "Visitor: Hi. I'm planning a walking trip through the Scottish Highlands next spring, and I'd like "
    "to read up before I go. I don't really know where to start.\n"
    "Librarian: That sounds wonderful. Are you more interested in the practical side, like routes and "
    "equipment, or in the history and the landscape?\n"
    "Visitor: Both, honestly. I've never done a trip longer than a weekend, so I need the practical things, "
    "but I'd also like to understand what I'm looking at.\n"
    "Librarian: Then let me suggest a few things. Here is what I would put on your list:\n"
    "- a route guide for the West Highland Way, which has maps, distances and places to stay;\n"
    "- a book on mountain weather, because conditions change quickly up there;\n"
    "- a short history of the clearances, which explains why so many glens are empty today;\n"
    "- a field guide to birds, since you may see golden eagles and ptarmigan;\n"
    "- and a collection of travel writing, just for the evenings.\n"
    "Visitor: That's a great list. How long can I keep the books?\n"
    "Librarian: Three weeks, and you can renew them online twice if nobody else has reserved them. The "
    "route guide is popular in the spring, though, so I'd reserve that one now.\n"
    "Visitor: Perfect. One more question: is there anything about camping in the wild? I've heard the rules "
    "in Scotland are different from England.\n"
    "Librarian: They are. In Scotland you have a right of responsible access, which means",
]


TOKENIZER_CASES = [
    "Hello, world!",
    "",
    "café naïve résumé — Zürich, São Paulo, Kraków",
    "日本語のテキストと中文字符，还有한국어도 있어요。",
    "I love pizza 🍕🙂👍🏽 and my family 👨‍👩‍👧!",
    "The year 2024 had 366 days; pi is about 3.14159265358979 and e about 2.71828.",
    "1234567890123456789",
    "  leading and trailing spaces  ",
    "many     spaces   between    words",
    "tab\tseparated\t\tvalues\t",
    "line one\nline two\n\nline four\r\nline five\n",
    "\n\n\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|endoftext|>",
    "Punctuation!!! (really?) [yes] {no} <maybe> \"quotes\" 'single' -- dash... #hash @at $5.00 100% a&b",
    "don't won't I'm we've they'll she'd it's",
    "def f(x):\n    return x ** 2  # square\n",
    "ÀÉÎÕÜ ß ẞ ñ Ω ж ع ग",
    # Whitespace runs before digits: here HF's GGUF tokenizer and llama.cpp's `smollm` pre-tokenizer differ.
    "   42 and\n\n7 and \t 9",
]

CHAT_MESSAGE = "What is the capital of France? Answer in one sentence."


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def field_value(reader: gguf.GGUFReader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def gguf_facts(path: Path) -> dict:
    """The metadata keys the tokenizer and the model config are built from."""
    reader = gguf.GGUFReader(str(path))
    tensor_names = {t.name for t in reader.tensors}
    tensor_types = sorted({t.tensor_type.name for t in reader.tensors})
    return {
        "tokenizer": {
            "tokenizer.ggml.model": field_value(reader, "tokenizer.ggml.model"),
            "tokenizer.ggml.pre": field_value(reader, "tokenizer.ggml.pre"),
            "tokenizer.ggml.add_bos_token": field_value(reader, "tokenizer.ggml.add_bos_token"),
            "tokenizer.ggml.add_space_prefix": field_value(reader, "tokenizer.ggml.add_space_prefix"),
            "tokenizer.ggml.bos_token_id": field_value(reader, "tokenizer.ggml.bos_token_id"),
            "tokenizer.ggml.eos_token_id": field_value(reader, "tokenizer.ggml.eos_token_id"),
            "tokenizer.ggml.unknown_token_id": field_value(reader, "tokenizer.ggml.unknown_token_id"),
            "tokenizer.ggml.padding_token_id": field_value(reader, "tokenizer.ggml.padding_token_id"),
            "tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
            "merges": len(reader.fields["tokenizer.ggml.merges"].data),
        },
        "architecture": {
            "general.architecture": field_value(reader, "general.architecture"),
            "llama.block_count": field_value(reader, "llama.block_count"),
            "llama.embedding_length": field_value(reader, "llama.embedding_length"),
            "llama.feed_forward_length": field_value(reader, "llama.feed_forward_length"),
            "llama.attention.head_count": field_value(reader, "llama.attention.head_count"),
            "llama.attention.head_count_kv": field_value(reader, "llama.attention.head_count_kv"),
            "llama.vocab_size": field_value(reader, "llama.vocab_size"),
            "llama.rope.freq_base": field_value(reader, "llama.rope.freq_base"),
            "llama.rope.dimension_count": field_value(reader, "llama.rope.dimension_count"),
            "llama.attention.layer_norm_rms_epsilon": field_value(reader, "llama.attention.layer_norm_rms_epsilon"),
            "llama.context_length": field_value(reader, "llama.context_length"),
            "tied_embeddings": "output.weight" not in tensor_names,
            "tensor_types": tensor_types,
        },
        "chat_template": field_value(reader, "tokenizer.chat_template"),
    }


class Encoder:
    """HF's GGUF tokenizer, with the BOS it may prepend removed where the metadata says add_bos_token = False."""

    def __init__(self, tokenizer, add_bos_token: bool, bos_id: int):
        self.tokenizer = tokenizer
        probe_default = tokenizer("a")["input_ids"]
        probe_plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        # A literal "<|im_start|>" at the start of a text is id 1 too, so probe rather than strip any leading 1.
        self.hf_prepends_bos = probe_default == [bos_id] + probe_plain
        self.drop_bos = self.hf_prepends_bos and not add_bos_token
        # llama.cpp's `smollm` pre-tokenizer: split off every digit (\p{N}), then the GPT-2 regex; in the
        # tokenizers library that is Digits(individual_digits) followed by ByteLevel.
        self.smollm_pre = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.smollm_pre.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text)["input_ids"]
        return ids[1:] if self.drop_bos else ids

    def encode_smollm_pre(self, text: str) -> list[int]:
        return self.smollm_pre.encode(text, add_special_tokens=False).ids


def row_errors(test: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max|Δ| / max|ref|, ‖Δ‖ / ‖ref‖) of one logits row, in f64."""
    test, ref = test.double(), ref.double()
    delta = test - ref
    return (delta.abs().max() / ref.abs().max()).item(), (delta.norm() / ref.norm()).item()


def worst(errors: list[tuple[float, float]]) -> dict:
    return {"max_abs_over_max_ref": max(e[0] for e in errors), "l2_over_l2_ref": max(e[1] for e in errors)}


@torch.no_grad()
def incremental_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """Logits of every position, computed one token at a time through HF's KV cache."""
    cache = DynamicCache()
    rows = []
    for i in range(ids.shape[1]):
        out = model(input_ids=ids[:, i : i + 1], past_key_values=cache, use_cache=True)
        rows.append(out.logits[0, -1])
    return torch.stack(rows)


@torch.no_grad()
def greedy(model, ids: torch.Tensor, eos_id: int) -> tuple[list[int], list[float]]:
    """HF generate(do_sample=False); returns the new ids and each step's top-1 minus top-2 logit margin."""
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=GREEDY_TOKENS,
        do_sample=False,
        pad_token_id=eos_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    new_ids = out.sequences[0, ids.shape[1] :].tolist()
    margins = []
    for step_logits in out.logits:
        top2 = torch.topk(step_logits[0].double(), 2).values
        margins.append((top2[0] - top2[1]).item())
    return new_ids, margins


@torch.no_grad()
def greedy_without_cache(model, ids: torch.Tensor, steps: int) -> list[int]:
    """Greedy decoding by full forwards of the growing sequence: a check on generate's cached path."""
    seq = ids
    for _ in range(steps):
        next_id = model(input_ids=seq).logits[0, -1].argmax()
        seq = torch.cat([seq, next_id.view(1, 1)], dim=1)
    return seq[0, ids.shape[1] :].tolist()


def versions() -> dict:
    names = ["torch", "transformers", "tokenizers", "gguf", "numpy", "safetensors", "accelerate"]
    found = {name: pkg_metadata.version(name) for name in names}
    found["python"] = platform.python_version()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()

    model_path = args.model.resolve()
    digest = sha256_of(model_path)
    if digest != MODEL_SHA256:
        print(f"{model_path}: sha256 {digest}, expected {MODEL_SHA256}", file=sys.stderr)
        return 1

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    facts = gguf_facts(model_path)
    tok_facts = facts["tokenizer"]
    add_bos = bool(tok_facts["tokenizer.ggml.add_bos_token"])
    bos_id = int(tok_facts["tokenizer.ggml.bos_token_id"])
    eos_id = int(tok_facts["tokenizer.ggml.eos_token_id"])

    directory, name = str(model_path.parent), model_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    encoder = Encoder(tokenizer, add_bos, bos_id)
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()

    prompts, logits_rows = [], []
    noise_cache, noise_f32 = [], []
    full_logits_f32 = []
    for text in PROMPTS:
        ids = encoder.encode(text)
        if not PROMPT_TOKENS_MIN <= len(ids) <= PROMPT_TOKENS_MAX:
            print(f"prompt of {len(ids)} tokens, outside [{PROMPT_TOKENS_MIN}, {PROMPT_TOKENS_MAX}]", file=sys.stderr)
            return 1
        if ids != encoder.encode_smollm_pre(text):
            print("a prompt tokenises differently with the smollm pre-tokenizer: rephrase it", file=sys.stderr)
            return 1
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            full = model(input_ids=input_ids).logits[0]
        positions = INNER_POSITIONS + [len(ids) - 1]
        logits_rows.append(full[positions].numpy().astype(np.float32))
        full_logits_f32.append(full)

        cached = incremental_logits(model, input_ids)
        noise_cache += [row_errors(cached[i], full[i]) for i in range(len(ids))]

        new_ids, margins = greedy(model, input_ids, eos_id)
        if new_ids != greedy_without_cache(model, input_ids, len(new_ids)):
            print("generate's greedy tokens differ from full-forward greedy decoding", file=sys.stderr)
            return 1
        prompts.append(
            {
                "text": text,
                "ids": ids,
                "positions": positions,
                "top5_at_positions": [torch.topk(full[p], 5).indices.tolist() for p in positions],
                "greedy_32": new_ids,
                "greedy_min_margin": min(margins),
                "greedy_margins": [round(m, 6) for m in margins],
            }
        )

    # The same weights in f64: how far HF's own f32 forward is from the exact result.
    model.to(torch.float64)
    greedy_f64_agrees = True
    for prompt, full in zip(prompts, full_logits_f32):
        seq = torch.tensor([prompt["ids"] + prompt["greedy_32"]])
        with torch.no_grad():
            exact = model(input_ids=seq).logits[0]
        n = len(prompt["ids"])
        noise_f32 += [row_errors(full[i], exact[i]) for i in range(n)]
        greedy_f64_agrees &= exact[n - 1 : n - 1 + GREEDY_TOKENS].argmax(-1).tolist() == prompt["greedy_32"]
    model.to(torch.float32)

    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "logits.npy", np.stack(logits_rows))
    reference = {
        "model_file": name,
        "model_sha256": digest,
        "versions": versions(),
        "gguf": {"tokenizer": tok_facts, "architecture": facts["architecture"]},
        "hf_prepends_bos": encoder.hf_prepends_bos,
        "bos_dropped": encoder.drop_bos,
        "logits_file": "logits.npy",
        "logits_layout": "float32 [prompt, position index, vocab]; row p holds the logits that predict token p + 1",
        "noise_floor": {
            "what": "worst row over every position of every prompt; per-row metrics in f64",
            "kv_cache_vs_full_f32": worst(noise_cache),
            "full_f32_vs_full_f64": worst(noise_f32),
            "greedy_32_same_in_f64": greedy_f64_agrees,
        },
        "prompts": prompts,
    }
    (args.out / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")

    cases = []
    for text in TOKENIZER_CASES:
        ids, ids_pre = encoder.encode(text), encoder.encode_smollm_pre(text)
        cases.append({"text": text, "ids": ids, "ids_smollm_pre": ids_pre, "agree": ids == ids_pre})
    (args.out / "tokenizer_cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")

    messages = [{"role": "user", "content": CHAT_MESSAGE}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    chat_ids = encoder.encode(rendered)
    chat_greedy, chat_margins = greedy(model, torch.tensor([chat_ids]), eos_id)
    chat = {
        "template": facts["chat_template"],
        "message": CHAT_MESSAGE,
        "add_generation_prompt": True,
        "rendered": rendered,
        "ids": chat_ids,
        "greedy_32": chat_greedy,
        "greedy_min_margin": min(chat_margins),
    }
    (args.out / "chat_template.json").write_text(json.dumps(chat, indent=1, ensure_ascii=False) + "\n")

    print(json.dumps(reference["noise_floor"], indent=1))
    for p in prompts:
        print(len(p["ids"]), "tokens; greedy:", repr(tokenizer.decode(p["greedy_32"])), "min margin", p["greedy_min_margin"])
    print("chat:", repr(tokenizer.decode(chat_greedy)))
    print("tokenizer cases that differ:", [c["text"] for c in cases if not c["agree"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
