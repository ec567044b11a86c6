"""Compute reference sentence embeddings with sentence-transformers itself (PyTorch), an
implementation independent of aisle's candle code, for the parity test in tests/it/embed.rs.

Run once, by hand, when the reference texts or the model change:

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install sentence-transformers torch
    /tmp/refenv/bin/python tests/data/make_embed_reference.py models/all-MiniLM-L6-v2

It writes tests/data/embed_reference.json (texts and vectors). The model folder is the one
models/fetch.sh lays out, so both sides read the very same files.
"""

import json
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "wireless noise cancelling headphones",
    "Sony WH1000XM5 Wireless Noise-Canceling Over-the-Ear Headphones - Black",
    "Duracell Coppertop Alkaline AA Batteries, 40-count",
    "65\" 4K UHD smart TV with Dolby Vision, HDMI 2.1 and a 120Hz panel",
    "Laptop under $1,000 with 16GB RAM and a 512GB SSD (SKU LP-2024-XJ9)",
    "Café crème — naïve résumé of the façade",
    "Kopfhörer mit aktiver Geräuschunterdrückung",
    "耳机 无线 降噪",
    "🎧 best headphones ever!!! 🔥🔥",
    "a",
    "",
    "   lots    of     whitespace   \t and\ttabs\n\nand newlines   ",
    "The quick brown fox jumps over the lazy dog.",
    "Mac mini – Apple M2 Chip 8-core CPU, 10-core GPU – 8GB Memory – 256GB SSD –  Silver",
    "Ring Indoor & Outdoor Plug-in Security Cameras, 1080p HD Video and Two-Way Talk, Real-Time Motion Alerts",
    "price: 19.99 USD; stock: 0; color=red; size=XL",
    " ".join(["very long product description that goes on and on"] * 60),
    "Gaming desktop - 13th Gen Intel Core i7-13700F - NVIDIA GeForce RTX 4070 - Windows 11 Home",
]


def main() -> None:
    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "models/all-MiniLM-L6-v2")
    model = SentenceTransformer(str(model_dir), device="cpu")
    with torch.no_grad():
        vectors = model.encode(TEXTS, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    out = {
        "model": model_dir.name,
        "generator": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "vectors": [[float(f"{x:.8g}") for x in v] for v in vectors.tolist()],
    }
    target = Path(__file__).with_name("embed_reference.json")
    target.write_text(json.dumps(out) + "\n")
    print(f"wrote {len(TEXTS)} vectors of dimension {len(out['vectors'][0])} to {target}")


if __name__ == "__main__":
    main()
