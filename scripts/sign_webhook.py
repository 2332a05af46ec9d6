#!/usr/bin/env python3
"""Reference webhook signer (Python standard library only).

Reads a body on stdin and prints the signature header value each sender uses:

  skipup     X-Webhook-Signature: t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}"}
             (also the scheme for POST /forms and our outbound webhooks)
  skipcalls  X-Webhook-Signature: {hex HMAC-SHA256 of the body}
  skode      X-Skode-Signature:   {hex HMAC-SHA256 of the body}

The form tools' schemes print one `name: value` line per header (connectors.md, 1):

  typeform   Typeform-Signature: sha256={base64 HMAC-SHA256 of the body}
  tally      Tally-Signature:    {base64 HMAC-SHA256 of the body}
  webflow    x-webflow-timestamp: {unix ms}
             x-webflow-signature: {hex HMAC-SHA256 of "{ms}:{body}"}
  hubspot    X-HubSpot-Request-Timestamp: {unix ms}
             X-HubSpot-Signature-v3: {base64 HMAC-SHA256 of METHOD + URI + body + ms},
             the URI with %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B decoded (--url)
  hubspot-v2 X-HubSpot-Signature-Version: v2
             X-HubSpot-Signature: {hex SHA-256 of secret + METHOD + URI + body}
  forms      Authorization: Bearer {secret}

and so do the booking tools' (connectors.md, 2):

  calendly   Calendly-Webhook-Signature: t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}"}
  calcom     X-Cal-Signature-256:  {hex HMAC-SHA256 of the body}
  savvycal   x-savvycal-signature: sha256={HEX HMAC-SHA256 of the body, uppercase as in the docs}
  bookings   Authorization: Bearer {secret}

The secret comes from $WEBHOOK_SECRET so it never appears in a process list.

  printf '%s' "$BODY" | WEBHOOK_SECRET=whsec_... scripts/sign_webhook.py skipup

With --event FILE it reads a Lambda HTTP event (API Gateway HTTP API or function URL)
instead, signs its body (base64-decoded first if so flagged) and prints the event with
the signature header set, ready for `cargo lambda invoke --data-file`:

  WEBHOOK_SECRET=whsec_local_forms scripts/sign_webhook.py skipup \
      --event events/form-intake.json > /tmp/form-event.json
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scheme", choices=["skipup", "skipcalls", "skode", "typeform", "tally", "webflow", "hubspot", "hubspot-v2", "forms", "calendly", "calcom", "savvycal", "bookings"])
    parser.add_argument("--url", help="the URL called (hubspot signs it)")
    parser.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    parser.add_argument("--event", help="a Lambda HTTP event file to sign and print")
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        print("WEBHOOK_SECRET is not set", file=sys.stderr)
        return 2
    event = None
    if args.event:
        with open(args.event, encoding="utf-8") as f:
            event = json.load(f)
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    else:
        body = sys.stdin.buffer.read()
    if args.scheme in BOOKING_TOOLS:
        for name, value in booking_tool_headers(args.scheme, secret.encode("utf-8"), body, args.timestamp):
            print(f"{name}: {value}")
        return 0
    if args.scheme in FORM_TOOLS:
        for name, value in form_tool_headers(args.scheme, secret.encode("utf-8"), body, args.timestamp, args.url or ""):
            print(f"{name}: {value}")
        return 0
    signature = sign(args.scheme, secret.encode("utf-8"), body, args.timestamp)
    if event is None:
        print(signature)
        return 0
    headers = event.setdefault("headers", {})
    if args.scheme == "skode":
        headers["x-skode-signature"] = signature
    else:
        headers["x-webhook-signature"] = signature
    print(json.dumps(event, indent=2))
    return 0


def sign(scheme: str, key: bytes, body: bytes, timestamp) -> str:
    if scheme == "skipup":
        ts = str(timestamp if timestamp is not None else int(time.time()))
        digest = hmac.new(key, ts.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        return f"t={ts},v1={digest}"
    return hmac.new(key, body, hashlib.sha256).hexdigest()


FORM_TOOLS = {"typeform", "tally", "webflow", "hubspot", "hubspot-v2", "forms"}
HUBSPOT_DECODED = ["%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B"]


def form_tool_headers(scheme: str, key: bytes, body: bytes, timestamp, url: str):
    ms = str((timestamp if timestamp is not None else int(time.time())) * 1000)
    if scheme == "typeform":
        digest = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        return [("Typeform-Signature", "sha256=" + digest)]
    if scheme == "tally":
        return [("Tally-Signature", base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode())]
    if scheme == "webflow":
        digest = hmac.new(key, ms.encode() + b":" + body, hashlib.sha256).hexdigest()
        return [("x-webflow-timestamp", ms), ("x-webflow-signature", digest)]
    if scheme == "hubspot":
        uri = url
        for escape in HUBSPOT_DECODED:
            decoded = bytes.fromhex(escape[1:]).decode()
            uri = uri.replace(escape, decoded).replace(escape.lower(), decoded)
        message = b"POST" + uri.encode() + body + ms.encode()
        digest = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
        return [("X-HubSpot-Request-Timestamp", ms), ("X-HubSpot-Signature-v3", digest)]
    if scheme == "hubspot-v2":
        digest = hashlib.sha256(key + b"POST" + url.encode() + body).hexdigest()
        return [("X-HubSpot-Signature-Version", "v2"), ("X-HubSpot-Signature", digest)]
    return [("Authorization", "Bearer " + key.decode())]


BOOKING_TOOLS = {"calendly", "calcom", "savvycal", "bookings"}


def booking_tool_headers(scheme: str, key: bytes, body: bytes, timestamp):
    if scheme == "calendly":
        t = str(timestamp if timestamp is not None else int(time.time()))
        digest = hmac.new(key, t.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        return [("Calendly-Webhook-Signature", f"t={t},v1={digest}")]
    if scheme == "calcom":
        return [("X-Cal-Signature-256", hmac.new(key, body, hashlib.sha256).hexdigest())]
    if scheme == "savvycal":
        digest = hmac.new(key, body, hashlib.sha256).hexdigest().upper()
        return [("x-savvycal-signature", "sha256=" + digest)]
    return [("Authorization", "Bearer " + key.decode())]


if __name__ == "__main__":
    sys.exit(main())
