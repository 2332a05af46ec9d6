"""schemathesis hooks for scripts/api-fuzz: sign the generated deliveries.

`POST /forms` and `POST /webhooks/{connector}` refuse what is not signed, so unsigned
fuzzing would only ever reach the signature check. This hook serializes each
generated body itself and signs those exact bytes with the local stack's built-in
secret for the route, as the sender would (scripts/sign_webhook.py, the reference
signer), so the bodies reach validation, the queue and apply-events. One case in
five is left unsigned, to keep the 401 answers in the run, as is a case without a body.
"""
import hashlib
import json
import time
import urllib.parse

import schemathesis
from schemathesis.core import NotSet

import sign_webhook

# The local stack's built-in secrets (recovery/src/stack.rs, local_defaults).
SKIPUP_SECRET = "whsec_sandbox"
FORMS_SECRET = "whsec_local_forms"


def raw_body(case):
    if case.media_type == "application/x-www-form-urlencoded":
        body = case.body if isinstance(case.body, dict) else {}
        return urllib.parse.urlencode(body, doseq=True).encode()
    return json.dumps(case.body, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(scheme, secret, body, url):
    key = secret.encode()
    now = int(time.time())
    if scheme in sign_webhook.BOOKING_TOOLS:
        return sign_webhook.booking_tool_headers(scheme, key, body, now)
    if scheme in sign_webhook.FORM_TOOLS:
        return sign_webhook.form_tool_headers(scheme, key, body, now, url)
    name = "X-Skode-Signature" if scheme == "skode" else "X-Webhook-Signature"
    return [(name, sign_webhook.sign(scheme, key, body, now))]


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path = case.operation.path
    if path == "/forms":
        scheme, secret = "skipup", FORMS_SECRET
    elif path == "/webhooks/{connector}":
        scheme = case.path_parameters["connector"]
        secret = SKIPUP_SECRET if scheme == "skipup" else f"whsec_local_{scheme}"
    else:
        return
    if isinstance(case.body, NotSet):
        return  # no body at all (the coverage phase): refused unsigned
    body = raw_body(case)
    if hashlib.sha256(body).digest()[0] % 5 == 0:
        return
    kwargs["data"] = body
    case.headers = dict(case.headers or {})
    case.headers["Content-Type"] = case.media_type
    url = case.operation.base_url.rstrip("/") + case.formatted_path
    for name, value in headers_for(scheme, secret, body, url):
        case.headers[name] = value
