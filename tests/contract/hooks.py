"""Schemathesis hooks for aisle's contract test (loaded through SCHEMATHESIS_HOOKS by
scripts/contract-test.sh).

The operations that run the chat model cost about a token's time per generated token, and a
schema-valid `max_tokens` can be anything from 1 to 2^63 (or up to the context with
`ignore_eos`). Each request to them is bounded here, before it is sent:

* a `max_tokens` / `max_completion_tokens` that is already valid (a whole number >= 1, spelled
  as an integer or as a whole float such as `818.0`, which JSON Schema counts as an integer) and
  larger than CAP becomes CAP, keeping its spelling. Valid stays valid and invalid stays
  invalid, so the positive/negative label of the case (and the negative_data_rejection and
  positive_data_acceptance checks) still hold; only the size of the answer shrinks.
* nothing else changes: a missing `max_tokens` is left missing (the server's default then
  applies: the script starts it with AISLE_CHAT_DEFAULT_MAX_TOKENS and AISLE_ASSISTANT_MAX_TOKENS
  small).

`before_call` sees every request of every phase (examples, coverage, fuzzing, stateful), unlike
`map_body`, which the coverage phase does not go through. The request recorded in the reports
(VCR cassette, JUnit, `st replay` crash files) is the capped one, so replays are exact.
"""

import os

import schemathesis

CAP = int(os.environ.get("AISLE_CONTRACT_MAX_TOKENS", "8"))

# Operation paths (templates, as in the document) whose bodies carry a token budget.
LLM_PATHS = {
    "/v1/chat/completions",
    "/v1/completions",
}
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def _valid_whole(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1
    if isinstance(value, float):
        return value.is_integer() and value >= 1
    return False


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path not in LLM_PATHS or not isinstance(case.body, dict):
        return
    for field in TOKEN_FIELDS:
        value = case.body.get(field)
        if _valid_whole(value) and value > CAP:
            case.body[field] = float(CAP) if isinstance(value, float) else CAP
