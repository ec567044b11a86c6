"""The official `openai` Python client against a running aisle server, unchanged:
chat, streaming chat, JSON mode and JSON Schema outputs (validated with `jsonschema`), text
completions, embeddings, model listing, and errors.

    AISLE_URL=http://127.0.0.1:8080 python tests/openai_client.py

Run by scripts/openai-client-test.sh (part of scripts/test.sh and .ci/run). Prints one line per
check and a closing 'N passed, N failed' line; exits non-zero on any failure.
"""

import os
import sys
import traceback

import openai
from openai import OpenAI

URL = os.environ.get("AISLE_URL", "http://127.0.0.1:8080")
CHAT = os.environ.get("AISLE_CHAT_MODEL", "SmolLM2-135M-Instruct")
EMBED = os.environ.get("AISLE_EMBED_MODEL", "all-MiniLM-L6-v2")
client = OpenAI(base_url=f"{URL}/v1", api_key="not-needed-yet", max_retries=0, timeout=120)
checks = []


def check(fn):
    checks.append(fn)
    return fn


@check
def chat_completion():
    r = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Name a fruit."}], temperature=0, max_tokens=16
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content, r
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0


@check
def streaming_chat_matches_non_streaming():
    kwargs = dict(model=CHAT, messages=[{"role": "user", "content": "Say hello to a shopper."}], temperature=0, max_tokens=20)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert "".join(pieces) == full, ("".join(pieces), full)
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0


@check
def json_mode():
    import json

    r = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Return a JSON object describing a red apple."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=150,
    )
    assert r.choices[0].finish_reason == "stop", r.choices[0]
    assert isinstance(json.loads(r.choices[0].message.content), dict), r.choices[0].message.content


SHOPPING_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["shopping", "small_talk", "out_of_scope"]},
        "product_type": {"type": "string", "maxLength": 40},
        "categories": {
            "type": "array",
            "items": {"type": "string", "enum": ["Headphones", "Laptops", "Smartphones", "Cameras"]},
            "maxItems": 2,
        },
        "price": {
            "type": "object",
            "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
            "required": ["max"],
            "additionalProperties": False,
        },
        "in_stock_only": {"type": "boolean"},
        "count": {"type": "integer"},
    },
    "required": ["intent", "product_type", "categories", "price", "in_stock_only", "count"],
    "additionalProperties": False,
}


@check
def json_schema_outputs_validate_against_the_schema():
    import json

    import jsonschema

    prompts = [
        "I want two pairs of wireless headphones under $150. Reply in JSON.",
        "Hello there! How are you today?",
        "Find me a laptop or a camera for travel, at most 900 dollars, in stock.",
    ]
    for stream in (False, True):
        for prompt in prompts:
            kwargs = dict(
                model=CHAT,
                messages=[{"role": "user", "content": prompt}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "shopping_request", "schema": SHOPPING_SCHEMA, "strict": True},
                },
                temperature=0,
                max_tokens=200,
            )
            if stream:
                text = "".join(
                    c.delta.content or "" for chunk in client.chat.completions.create(stream=True, **kwargs) for c in chunk.choices
                )
            else:
                r = client.chat.completions.create(**kwargs)
                assert r.choices[0].finish_reason == "stop", r.choices[0]
                text = r.choices[0].message.content
            doc = json.loads(text)
            jsonschema.validate(doc, SHOPPING_SCHEMA)


@check
def unsupported_schema_keywords_are_refused_by_name():
    bad = {"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}, "required": ["price"]}
    try:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )
        raise AssertionError("a schema with 'minimum' was accepted")
    except openai.BadRequestError as e:
        assert "/response_format/json_schema/schema/properties/price/minimum" in str(e), str(e)


@check
def text_completion():
    r = client.completions.create(model=CHAT, prompt="The best thing about shopping online is", max_tokens=8, temperature=0)
    assert r.choices[0].text
    assert r.usage.completion_tokens > 0


@check
def embeddings():
    r = client.embeddings.create(model=EMBED, input=["wireless headphones", "a kettle"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) == 384
    norm = sum(x * x for x in r.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3, norm
    assert r.usage.prompt_tokens > 0
    f = client.embeddings.create(model=EMBED, input="wireless headphones", encoding_format="float")
    assert max(abs(a - b) for a, b in zip(f.data[0].embedding, r.data[0].embedding)) < 1e-6


@check
def models():
    ids = [m.id for m in client.models.list()]
    assert CHAT in ids and EMBED in ids, ids
    assert client.models.retrieve(CHAT).id == CHAT


@check
def errors_are_raised_as_the_client_expects():
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        assert "no-such-model" in str(e)
    try:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], temperature=5)
        raise AssertionError("temperature 5 accepted")
    except openai.BadRequestError as e:
        assert "temperature" in str(e)


def main():
    passed = failed = 0
    for fn in checks:
        try:
            fn()
            passed += 1
            print(f"ok      {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAILED  {fn.__name__}")
            traceback.print_exc()
    print(f"openai-client: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
