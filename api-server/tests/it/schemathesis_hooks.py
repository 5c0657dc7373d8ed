"""Schemathesis hooks of the OpenAPI run (`tests/it/openapi.rs`).

Every exclusion here is narrow and names its reason; an exclusion for a server defect names
the defect and is removed together with its fix.
"""

import json
import os

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.query:
        # `watch` turns a list into a stream that only ends when the client leaves: a
        # request that never completes is not a test case.
        case.query.pop("watch", None)
        # `blocking` waits for controllers to move the object, and none runs here: every
        # such request would end in the documented 504 of the blocking timeout.
        case.query.pop("blocking", None)


def _load_examples():
    path = os.environ.get("KRAKE_OPENAPI_EXAMPLES")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# Valid requests written by the Rust test ("METHOD path-template" -> list of cases): bodies
# generated from the schemas rarely pass the server's validation, these reach its logic.
EXAMPLES = _load_examples()


@schemathesis.hook
def before_add_examples(ctx, examples):
    operation = ctx.operation
    for example in EXAMPLES.get(f"{operation.method.upper()} {operation.path}", []):
        if "body" in example:
            case = operation.Case(
                path_parameters=example["path_parameters"],
                body=example["body"],
                media_type="application/json",
            )
        else:
            case = operation.Case(path_parameters=example["path_parameters"])
        examples.append(case)
