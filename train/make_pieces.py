#!/usr/bin/env python3
"""Writes train/pieces.json: the token ids of the task's pieces (filler sentences, names, the fact and question
templates, digits), tokenised by the engine itself (`dbrmt tokenize`), and checks that pieces put together give the
ids the whole text gives (so a document built from pieces is what the tokenizer would make of its text).

    python3 train/make_pieces.py --dbrmt target/release/dbrmt --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

No torch needed. Run once; the output is committed.
"""
import argparse
import json
import os
import random
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

FILLER = """The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.
The river runs slowly past the old mill. A light wind moves through the tall trees. The village is quiet in the
morning. Children walk to school along the narrow road. The baker opens his shop before dawn. Fresh bread fills the
street with a warm smell. An old dog sleeps by the door. The clouds drift over the hills. Rain is expected later in
the week. The market is busy on the main square. Farmers bring apples, pears and cheese. A bell rings from the church
tower. The fishermen mend their nets on the shore. Boats rock gently in the harbour. Gulls circle above the water.
The library keeps long rows of dusty books. A student reads by the window. The teacher writes on the board. The
train leaves the station on time. Passengers look out at the passing fields. Cows graze near a wooden fence. The
road climbs into the mountains. Snow covers the highest peaks. A hiker stops to rest on a flat stone. The path turns
toward a small lake. Ducks swim among the reeds. The evening light turns the water gold. Lamps are lit in the
houses. Families gather for supper. Someone plays a quiet song on a guitar. The stars come out one by one. An owl
calls from the forest. The night is cool and still. In the city the streets are never empty. Taxis wait outside the
hotel. A painter sets up an easel in the park. Tourists take pictures of the fountain. The museum opens a new
exhibition. Workers repair the bridge over the canal. A cyclist rings a bell at the corner. The cafe serves strong
coffee and sweet cakes. Friends talk about their plans for the summer. The garden is full of roses and lavender.
Bees move from flower to flower. The old clock in the hall strikes the hour. A letter arrives from a distant
cousin. The kitchen smells of onions and herbs. Soup simmers on the stove. The cat watches a bird through the glass.
Leaves fall in the autumn wind. The harvest is gathered before the first frost. Smoke rises from the chimneys.
"""

NAMES = """Alice Bob Carol David Emma Frank Grace Henry Irene Jack Karen Louis Maria Nathan Olivia Peter Rachel Samuel
Teresa Victor Wendy Arthur Bella Charles Diana Edward Fiona George Hannah Isaac Julia Kevin Laura Martin Nora Oscar
Paula Quentin Rosa Simon Tina Ulrich Vera Walter Xavier Yvonne Zoe Adam Brenda Colin Daisy Ethan Felix Gloria Hugo
Ingrid James Kate Leo Mona Neil Owen Pamela Ralph Sophie Thomas Una Vincent William Amy Bruce Clara Dennis Eva
Francis Gina Harold Iris Jonah Kim Lucy Mark Nina Oliver Philip Ruth Steven Tara Ursula Violet Wayne Abel Beatrice
Caleb Doris Elliot Flora Gordon Helen Ivan Joan Keith Lily Miles Naomi Otto Pearl Roger Stella Theo Agnes Boris
Cecil Delia Eric Faith Glen Hazel Igor Jane Kurt Lena Max Nell Oscar Priya Rex Sara Tom Vivian Will Anna Ben Cora
Dean Elsa Fred Gwen Hans Ida Joel Kira Lars Milo Noel Opal Paul Rita Sven Tess Vlad
"""

DIGITS = "0123456789"


def tokenize(dbrmt, model, text):
    out = subprocess.run([dbrmt, "tokenize", "--model", model, "--text", text], capture_output=True, text=True,
                         check=True)
    return [int(x) for x in out.stdout.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbrmt", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "pieces.json"))
    a = ap.parse_args()
    tok = lambda t: tokenize(a.dbrmt, a.model, t)  # noqa: E731

    sentences = [s.strip() + "." for s in " ".join(FILLER.split()).split(".") if s.strip()]
    names = list(dict.fromkeys(NAMES.split()))
    valid = names[::5]
    train = [n for n in names if n not in valid]
    p = {
        "filler": [tok(" " + s) for s in sentences],
        "name_text_train": train,
        "name_text_valid": valid,
        "names_train": [tok(" " + n) for n in train],
        "names_valid": [tok(" " + n) for n in valid],
        "fact_prefix": tok(" The special magic number for"),
        "fact_mid": tok(" is"),
        "fact_end": tok("."),
        "question_prefix": tok(" The special magic number for"),
        "question_end": tok(" is"),
        "space": None,
        "digits": [],
    }
    sp = tok(" ")
    assert len(sp) == 1, sp
    p["space"] = sp[0]
    for c in DIGITS:
        d = tok(c)
        assert len(d) == 1, (c, d)
        p["digits"].append(d[0])

    # pieces put together = the whole text's ids
    r = random.Random(0)
    for _ in range(6):
        name = r.choice(names)
        val = str(r.randrange(1000, 10000))
        s1, s2 = r.sample(sentences, 2)
        text = (f" {s1} The special magic number for {name} is {val}. {s2}"
                f" The special magic number for {name} is {val}")
        ids_name = tok(" " + name)
        num = [p["space"]] + [p["digits"][int(c)] for c in val]
        built = (tok(" " + s1) + p["fact_prefix"] + ids_name + p["fact_mid"] + num + p["fact_end"] + tok(" " + s2)
                 + p["question_prefix"] + ids_name + p["question_end"] + num)
        whole = tok(text)
        assert built == whole, (text, built, whole)
    with open(a.out, "w") as f:
        json.dump(p, f)
    print(f"{a.out}: {len(p['filler'])} sentences, {len(train)} train / {len(valid)} held-out names; "
          f"fact prefix {len(p['fact_prefix'])} tokens, question {len(p['question_prefix'])}+name+"
          f"{len(p['question_end'])}, answer 5 tokens")


if __name__ == "__main__":
    main()
