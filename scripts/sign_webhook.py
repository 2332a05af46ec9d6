#!/usr/bin/env python3
"""Reference webhook signer (Python standard library only).

Reads a body on stdin and prints the signature header value each sender uses:

  skipup     X-Webhook-Signature: t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}"}
             (also the scheme for POST /forms and our outbound webhooks)
  skipcalls  X-Webhook-Signature: {hex HMAC-SHA256 of the body}
  skode      X-Skode-Signature:   {hex HMAC-SHA256 of the body}

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
    parser.add_argument("scheme", choices=["skipup", "skipcalls", "skode"])
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


if __name__ == "__main__":
    sys.exit(main())
