"""Convert commercetools' "B2C Lifestyle" sample catalog (117 home-goods products: sofas, chairs,
beds, rugs, bedding, tableware, glassware, ...) into aisle's product NDJSON.

Usage: python3 data/convert_home.py IN.tgz OUT.ndjson

Source: the npm package @commercetools/composable-commerce-test-data-sample-presets 1.1.0, from the
MIT-licensed commercetools/test-data monorepo (the package itself declares no license field). It
ships the data as compiled JavaScript builder calls, one file per product, variant, category and
inventory entry, under package/dist/. This script reads the tarball directly (no Node needed) and
parses those calls with regular expressions; the shape is fixed for the pinned version.

Mapping:
- id: the product key ("modern-three-seater-sofa"); title and description: the en-US strings
- categories: the product's most specific shop categories, flat like the demo's, deepest first
  (["Sofas"], ["Cheese Trays", "Serving Platters"]), en-US names; their hierarchy goes into the
  attributes department ("Furniture") and category_path ("Furniture > Living Room Furniture >
  Sofas"). The "Collections" branch (The Modernist, ...) and "New Arrivals" become tags. Two
  products that the source leaves uncategorised get one here (CATEGORY_FIXES).
- brand: none (the source has no brands)
- price: the master variant's USD price for the US (no channel); currency USD
- stock_qty: the sum over the product's variants of the inventory entries' quantityOnStock
- attributes: department, category_path, color / finish (labels), color_family / finish_family
  (the facet values), size, type, colors / sizes / finishes / types (all variants' values, when
  there are several), price_range (when the variants' prices differ), variant_count, sku (the
  master variant's), features (the "productspec" bullets), new_arrival
- image_url: the master variant's first image
"""

import json
import re
import sys
import tarfile

ROOT = "package/dist/"
PRODUCTS = ROOT + "product/product/sample-data-b2c-lifestyle/"
VARIANTS = ROOT + "product/product-variant/sample-data-b2c-lifestyle/"
CATEGORIES = ROOT + "category/sample-data-b2c-lifestyle/"
INVENTORY = ROOT + "inventory-entry/sample-data-b2c/"
# Category keys that are merchandising groups, not kinds of product: they become tags.
TAG_ROOTS = {"collections", "new-arrivals"}
# Category keys whose en-US names do not say what they hold: "Kitchen Collections" (en-GB
# "Collections") holds serveware; "Dressers" (en-GB "Storage & Tables") also holds a bookcase, a
# cabinet and a closet.
NAME_FIXES = {"serveware": "Serveware", "storage--tables": "Dressers & Storage"}
# The two products that the source leaves in no category, by product key: the category key to use.
CATEGORY_FIXES = {"rustic-bowl": "bowls", "rustic-oven-casserole": "bakeware"}

EXPECTED = 117

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def js_string(src: str, pos: int):
    """The JavaScript string literal starting at src[pos] (a quote), and the index after it."""
    quote = src[pos]
    if quote not in "'\"`":
        raise ValueError(f"no string literal at {pos}: {src[pos:pos + 30]!r}")
    out, i = [], pos + 1
    while True:
        c = src[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            n = src[i + 1]
            if n == "u":
                if src[i + 2] == "{":
                    end = src.index("}", i)
                    out.append(chr(int(src[i + 3:end], 16)))
                    i = end + 1
                else:
                    out.append(chr(int(src[i + 2:i + 6], 16)))
                    i += 6
                continue
            if n == "x":
                out.append(chr(int(src[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1


def localized(src: str, start: int, locale: str = "en-US", end: int = -1):
    """The `locale` value of the LocalizedString builder or object literal in src[start:end]."""
    pattern = re.compile(r"""(?:\['%s'\]\(|'%s':\s*)""" % (re.escape(locale), re.escape(locale)))
    m = pattern.search(src, start, end if end >= 0 else len(src))
    if not m:
        return None
    return js_string(src, m.end())[0]


def object_end(src: str, pos: int) -> int:
    """The index after the flat object literal `{...}` that starts at src[pos]."""
    i = pos + 1
    while src[i] != "}":
        i = js_string(src, i)[1] if src[i] in "'\"`" else i + 1
    return i + 1


def call_arg(src: str, method: str):
    """The string argument of the first `.method('...')` call."""
    m = re.search(r"\.%s\(\s*(?=['\"`])" % re.escape(method), src)
    return js_string(src, m.end())[0] if m else None


def localized_call(src: str, method: str, locale: str = "en-US"):
    """The `locale` value of the first `.method(LocalizedString...)` call, falling back to en-GB."""
    m = re.search(r"\.%s\(commons_1\.LocalizedStringDraft" % re.escape(method), src)
    if not m:
        return None
    # The call ends where the next top-level builder call starts.
    end = src.find(")\n    .", m.end())
    chunk = src[m.end():end if end > 0 else len(src)]
    return localized(chunk, 0, locale) or localized(chunk, 0, "en-GB")


def const_name(src: str, builder: str):
    m = re.search(r"const (\w+) = \(\) => \w+\.%s\.presets" % re.escape(builder), src)
    return m.group(1) if m else None


def clean(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())


def parse_variant(src: str):
    v = {"name": const_name(src, "ProductVariantDraft"), "sku": call_arg(src, "sku"), "attrs": {}}
    v["price"] = None
    for m in re.finditer(
        r"\.key\('(\d+)USD'\)\s*\.value\(commons_1\.MoneyDraft\.random\(\)\.currencyCode\('USD'\)"
        r"\.centAmount\((\d+)\)\)\s*\.country\('US'\)", src):
        v["price"] = int(m.group(2)) / 100
        break
    imgs = re.findall(r"\.url\('([^']+)'\)", src)
    v["image"] = imgs[0] if imgs else None
    for m in re.finditer(r"\.name\('([\w-]+)'\)\s*\.value\(", src):
        name, pos = m.group(1), m.end()
        while src[pos] in " \n[":
            pos += 1
        if src[pos] in "'\"`":
            value = js_string(src, pos)[0]
        elif src[pos] == "{":
            end = object_end(src, pos)
            value = localized(src, pos, "en-US", end) or localized(src, pos, "en-GB", end)
        elif src.startswith("true", pos) or src.startswith("false", pos):
            value = src.startswith("true", pos)
        else:
            num = re.match(r"-?\d+(?:\.\d+)?", src[pos:])
            value = float(num.group(0)) if num else None
        v["attrs"][name] = value
    return v


def main() -> None:
    src_path, dst = sys.argv[1], sys.argv[2]
    files = {}
    with tarfile.open(src_path, "r:gz") as tar:
        for member in tar.getmembers():
            n = member.name
            if member.isfile() and n.endswith(".js") and not n.endswith("/index.js") and n.startswith(
                    (PRODUCTS, VARIANTS, CATEGORIES, INVENTORY)):
                files[n] = tar.extractfile(member).read().decode("utf-8")

    # Categories: preset name (camelCase, as products refer to them) -> key, name, parent preset.
    cats = {}
    for path, src in files.items():
        if not path.startswith(CATEGORIES):
            continue
        preset = const_name(src, "CategoryDraft")
        parent = re.search(r'require\("\./([\w-]+)"\)', src)
        key = call_arg(src, "key")
        cats[preset] = {
            "key": key,
            "name": NAME_FIXES.get(key) or localized_call(src, "name"),
            "file": path[len(CATEGORIES):-3],
            "parent_file": parent.group(1) if parent else None,
        }
    by_file = {c["file"]: p for p, c in cats.items()}
    for c in cats.values():
        c["parent"] = by_file.get(c["parent_file"])

    def chain(preset):
        out = []
        while preset:
            out.append(preset)
            preset = cats[preset]["parent"]
        return out[::-1]

    variants = {}
    for path, src in files.items():
        if path.startswith(VARIANTS):
            v = parse_variant(src)
            variants[v["name"]] = v

    stock = {}
    for path, src in files.items():
        if path.startswith(INVENTORY):
            m = re.search(r"sampleDataB2CLifestyle\s*\.(\w+)\(\)", src)
            q = re.search(r"\.quantityOnStock\((\d+)\)", src)
            if m and q:
                stock[m.group(1)] = stock.get(m.group(1), 0) + int(q.group(1))

    products = []
    for path in sorted(p for p in files if p.startswith(PRODUCTS)):
        src = files[path]
        key = call_arg(src, "key")
        product = {"id": key, "title": clean(localized_call(src, "name") or key), "currency": "USD"}
        description = clean(localized_call(src, "description") or "")

        cat_presets = re.findall(r"category_1\.CategoryDraftPresets\.sampleDataB2CLifestyle\s*\.(\w+)\(\)", src)
        if not cat_presets and key in CATEGORY_FIXES:
            cat_presets = [p for p, c in cats.items() if c["key"] == CATEGORY_FIXES[key]]
        shop, tags = [], []
        for p in cat_presets:
            if any(cats[c]["key"] in TAG_ROOTS for c in chain(p)):
                if cats[p]["key"] != "collections":  # the bare parent of the named collections
                    tags.append(cats[p]["name"])
            elif p not in shop:
                shop.append(p)
        # The most specific categories only (none that is an ancestor of another), deepest first.
        leaves = [p for p in shop if not any(p in chain(q)[:-1] for q in shop)]
        leaves.sort(key=lambda p: -len(chain(p)))
        product["categories"] = [cats[p]["name"] for p in leaves]
        if tags:
            product["tags"] = sorted(set(tags))
        if description:
            product["description"] = description

        master = re.search(r"\.masterVariant\(\w+\.ProductVariantDraftPresets\.sampleDataB2CLifestyle\.(\w+)\(\)", src)
        others = re.search(r"\.variants\(\[(.*?)\]\)", src, re.S)
        names = [master.group(1)]
        if others:
            names += re.findall(r"sampleDataB2CLifestyle\.(\w+)\(\)", others.group(1))
        vs = [variants[n] for n in names]
        mv = vs[0]
        if mv["price"] is not None:
            product["price"] = mv["price"]
        if mv["image"]:
            product["image_url"] = mv["image"]

        a = mv["attrs"]
        attributes = {}
        if leaves:
            attributes["department"] = cats[chain(leaves[0])[0]]["name"]
            attributes["category_path"] = " > ".join(cats[c]["name"] for c in chain(leaves[0]))
        for src_key, dst_key in (("color-label", "color"), ("search-color", "color_family"),
                                 ("finish-label", "finish"), ("search-finish", "finish_family"),
                                 ("size", "size"), ("type", "type")):
            if isinstance(a.get(src_key), str) and a[src_key].strip():
                attributes[dst_key] = a[src_key].strip()
        for src_key, dst_key in (("color-label", "colors"), ("size", "sizes"), ("finish-label", "finishes"),
                                 ("type", "types")):
            values = []
            for v in vs:
                x = v["attrs"].get(src_key)
                if isinstance(x, str) and x.strip() and x.strip() not in values:
                    values.append(x.strip())
            if len(values) > 1:
                attributes[dst_key] = values
        prices = sorted({v["price"] for v in vs if v["price"] is not None})
        if len(prices) > 1:
            attributes["price_range"] = f"${prices[0]:.2f}-${prices[-1]:.2f}"
        if len(vs) > 1:
            attributes["variant_count"] = len(vs)
        if mv["sku"]:
            attributes["sku"] = mv["sku"]
        spec = a.get("productspec")
        if isinstance(spec, str):
            features = [clean(line.lstrip("-*• ")) for line in spec.splitlines() if line.strip().strip("-")]
            if features:
                attributes["features"] = features[:50]
        if any(v["attrs"].get("new-arrival") is True for v in vs):
            attributes["new_arrival"] = True
        if attributes:
            product["attributes"] = attributes

        counted = [stock[n] for n in names if n in stock]
        if counted:
            qty = sum(counted)
            product["stock_qty"] = qty
            product["in_stock"] = qty > 0
        products.append(product)

    # The pinned version has 117 products, each with a price, a category and stock: anything else
    # means the parsing went wrong.
    broken = [p["id"] for p in products if "price" not in p or not p["categories"] or "stock_qty" not in p]
    if len(products) != EXPECTED or broken:
        sys.exit(f"convert_home.py: parsed {len(products)} products, expected {EXPECTED}; incomplete: {broken}")
    with open(dst, "w", encoding="utf-8") as out:
        for product in products:
            out.write(json.dumps(product, ensure_ascii=False) + "\n")
    print(f"wrote {len(products)} products to {dst}")


if __name__ == "__main__":
    main()
