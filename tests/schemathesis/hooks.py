"""Schemathesis hooks for Hookline's contract run (tests/schemathesis.sh).

A webhook is saved only when its endpoint answers 200 (the check on save), so a generated
`url` that is valid by the document is pointed at a live local receiver (`hookline listen`,
its base URL in HOOKLINE_ST_RECEIVER). Invalid URLs are left as generated, so the negative
cases still reach the validator.
"""

import json
import os
import re

import schemathesis

_DOC = json.load(
    open(os.path.join(os.path.dirname(__file__), "..", "..", "functions", "api", "openapi.json"))
)
_URL = _DOC["components"]["schemas"]["NewWebhook"]["properties"]["url"]
_PATTERN = re.compile(_URL["pattern"])
_MAX = _URL["maxLength"]
_RECEIVER = os.environ["HOOKLINE_ST_RECEIVER"]


def _valid(url):
    return isinstance(url, str) and len(url) <= _MAX and _PATTERN.search(url) is not None


@schemathesis.hook
def map_body(ctx, body):
    label = ctx.operation.label
    if label in ("POST /v1/webhooks", "PATCH /v1/webhooks/{id}") and isinstance(body, dict):
        if _valid(body.get("url")):
            body["url"] = _RECEIVER + "/st"
    return body
