"""The official `openai` Python client against a running `dbrmt serve`: models, completions, chat, streaming,
stored states through `extra_body`, and the errors the client raises for 4xx answers.

Usage: python openai_client.py BASE_URL MODEL_NAME   (BASE_URL like http://127.0.0.1:8080)
Run by crates/dbrmt-cli/tests/serve_smollm2.rs; exits non-zero on the first failed check.
"""

import sys

import openai
from openai import OpenAI

base, model = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=600)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"openai client: FAILED: {what}")
    checks += 1


check([m.id for m in client.models.list().data] == [model], "models.list names the served model")

prompt = "The capital of France is"
whole = client.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0)
text = whole.choices[0].text
check(text != "", "a completion has text")
check(whole.usage.completion_tokens >= 1, "usage counts generated tokens")
stream = client.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0, stream=True)
check("".join(c.choices[0].text for c in stream if c.choices) == text, "a streamed completion = the whole one")

messages = [{"role": "user", "content": "What is 2+2?"}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
answer = chat.choices[0].message.content
check(chat.choices[0].message.role == "assistant" and answer, "a chat answer")
chunks = list(
    client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
)
check("".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer, "a streamed chat = the whole")
check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == chat.usage.completion_tokens,
      "the usage chunk of a stream")

# a stored state through the extension fields: ingest, then continue
stored = client.completions.create(model=model, prompt="My name is Ada.", max_tokens=0, extra_body={"store_state": True})
state_id = (stored.model_extra or {}).get("state_id")
check(isinstance(state_id, str), "store_state returns a state_id")
cont = client.completions.create(
    model=model, prompt=" What is my name?", max_tokens=4, temperature=0, extra_body={"state": state_id}
)
check(cont.usage.prompt_tokens_details.cached_tokens > 0, "a continued request reports the tokens its state covered")

for kwargs, error in [
    ({"temperature": -1.0}, openai.BadRequestError),
    ({"model": "no-such-model"}, openai.NotFoundError),
    ({"extra_body": {"unknown_field": 1}}, openai.BadRequestError),
]:
    args = {"model": model, "prompt": "x", "max_tokens": 1, **kwargs}
    try:
        client.completions.create(**args)
        check(False, f"{kwargs} was accepted")
    except error as e:
        check(isinstance(e.body, dict) and "message" in e.body, f"{kwargs}: an OpenAI error body")

print(f"openai client: {checks} checks passed")
