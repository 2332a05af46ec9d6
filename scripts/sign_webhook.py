#!/usr/bin/env python3
"""Reference webhook signer (Python standard library only).

Reads a body on stdin and prints the signature header value each sender uses:

  skipup     X-Webhook-Signature: t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}"}
             (also the scheme for POST /forms and our outbound webhooks)
  skipcalls  X-Webhook-Signature: {hex HMAC-SHA256 of the body}
  skode      X-Skode-Signature:   {hex HMAC-SHA256 of the body}

The secret comes from $WEBHOOK_SECRET so it never appears in a process list.

  printf '%s' "$BODY" | WEBHOOK_SECRET=whsec_... scripts/sign_webhook.py skipup
"""
import argparse
import hashlib
import hmac
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scheme", choices=["skipup", "skipcalls", "skode"])
    parser.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        print("WEBHOOK_SECRET is not set", file=sys.stderr)
        return 2
    body = sys.stdin.buffer.read()
    key = secret.encode("utf-8")
    if args.scheme == "skipup":
        ts = str(args.timestamp if args.timestamp is not None else int(time.time()))
        digest = hmac.new(key, ts.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        print(f"t={ts},v1={digest}")
    else:
        print(hmac.new(key, body, hashlib.sha256).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
