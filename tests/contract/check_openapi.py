"""Validate aisle's OpenAPI document before schemathesis runs against it.

    check_openapi.py OPENAPI.json [SCHEMATHESIS.toml]

1. The document is OpenAPI 3.1 and valid against the 3.1 schema (openapi-spec-validator, every
   error listed; a dangling $ref is reported, not raised).
2. Checks of what schemathesis relies on, which the 3.1 schema does not catch:
   - every operation has a unique operationId;
   - every 4xx/5xx response is application/problem+json (the server's only error shape);
   - a `text/event-stream` response's `schema` describes ONE event as schemathesis parses it,
     an object {data: string, event: string, id?: string, retry?: integer} (OpenAPI 3.1 has
     no itemSchema; 3.2's `itemSchema` is read too). A `type: string` schema there fails every
     streamed answer with "SSE event violates schema".
3. Every `include-name` of the [[operations]] entries of the schemathesis configuration names an
   operation of the document (schemathesis ignores entries that match nothing, silently).

Exit status 0 when all hold, 1 otherwise, one line per problem.
"""

import json
import sys
import tomllib

from openapi_spec_validator import OpenAPIV31SpecValidator

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def spec_errors(doc: dict) -> list[str]:
    problems = []
    version = str(doc.get("openapi", ""))
    if not version.startswith("3.1."):
        problems.append(f"openapi is {version!r}, expected 3.1.x")
    try:
        for e in OpenAPIV31SpecValidator(doc).iter_errors():
            where = "/".join(str(p) for p in getattr(e, "absolute_path", []) or [])
            message = str(getattr(e, "message", e)).splitlines()[0]
            problems.append(f"OpenAPI 3.1: {message} (at /{where})")
    except Exception as e:  # a dangling $ref raises (referencing.exceptions.PointerToNowhere) instead of yielding
        problems.append(f"OpenAPI 3.1: validation stopped: {type(e).__name__}: {str(e)[:300]}")
    return problems


def resolve(doc: dict, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return None
            target = target[part]
        node, seen = target, seen + 1
    return node


def _types(schema) -> set:
    t = schema.get("type") if isinstance(schema, dict) else None
    return set(t) if isinstance(t, list) else ({t} if t else set())


def operations(doc: dict):
    for path, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item) or {}
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield path, method, op


def lint(doc: dict) -> list[str]:
    problems, ids = [], {}
    for path, method, op in operations(doc):
        name = f"{method.upper()} {path}"
        oid = op.get("operationId")
        if not oid:
            problems.append(f"{name}: no operationId")
        elif oid in ids:
            problems.append(f"{name}: operationId {oid!r} also used by {ids[oid]}")
        else:
            ids[oid] = name
        for status, response in (op.get("responses") or {}).items():
            response = resolve(doc, response) or {}
            content = response.get("content") or {}
            if str(status)[:1] in ("4", "5") and content and set(content) != {"application/problem+json"}:
                problems.append(f"{name} {status}: error content is {sorted(content)}, expected application/problem+json")
            for media, obj in content.items():
                if media.split(";")[0].strip() != "text/event-stream":
                    continue
                schema = resolve(doc, obj.get("itemSchema", obj.get("schema")))
                if not isinstance(schema, dict) or "object" not in _types(schema):
                    problems.append(
                        f"{name} {status}: text/event-stream schema must describe one event as an object "
                        "{data: string, event?: string, id?: string, retry?: integer}, got "
                        f"{json.dumps(schema)[:120]}"
                    )
                else:
                    data = resolve(doc, (schema.get("properties") or {}).get("data"))
                    if isinstance(data, dict) and _types(data) - {"string"} and "oneOf" not in data and "anyOf" not in data:
                        problems.append(
                            f"{name} {status}: an event's `data` must be a string (describe JSON in it with "
                            "contentMediaType: application/json and contentSchema; `[DONE]` as a oneOf branch)"
                        )
    return problems


def config_names(toml_path: str) -> list[str]:
    with open(toml_path, "rb") as f:
        config = tomllib.load(f)
    names = []
    for entry in config.get("operations", []):
        value = entry.get("include-name", [])
        names += [value] if isinstance(value, str) else list(value)
    return names


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        doc = json.load(f)
    problems = spec_errors(doc) + lint(doc)
    if len(argv) > 1:
        present = {f"{m.upper()} {p}" for p, m, _ in operations(doc)}
        for name in config_names(argv[1]):
            if name not in present:
                problems.append(f"{argv[1]}: [[operations]] include-name {name!r} is not an operation of the document")
    n = sum(1 for _ in operations(doc))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"openapi: {doc.get('openapi')} with {n} operations, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
