"""Schemathesis hooks for the Sluice agent API: every 4xx must be JSON
{"error": "...", "field": "..."} naming the offending field."""
import json

import schemathesis


@schemathesis.check
def four_xx_names_the_field(ctx, response, case):
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.text or "")
        except ValueError:
            raise AssertionError(
                f"{response.status_code} with a body that is not JSON: {response.text[:300]!r}"
            ) from None
        if not isinstance(body, dict) or not body.get("error") or not body.get("field"):
            raise AssertionError(f"{response.status_code} without error/field: {response.text[:300]}")
