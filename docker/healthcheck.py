"""Container HEALTHCHECK: exit 0 when GET /healthz on the local port answers 200 within 2 seconds, else 1.

Python's standard library only (the slim base image has no curl).
"""

import os
import sys
import urllib.request

port = os.environ.get("PORT", "8080").strip() or "8080"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # any failure is "unhealthy"; say why in `docker inspect` output
    print(f"unhealthy: {error}", file=sys.stderr)
    sys.exit(1)
