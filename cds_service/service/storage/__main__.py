"""`python -m cds_service.service.storage upgrade|current`: the migrations by hand (what `calcinosis-cds db` will
call). The URL comes from CDS_DATABASE_URL, not the command line, where `ps` would show its password."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .migrate import current_revision, head_revision, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds_service.service.storage")
    parser.add_argument("command", choices=["upgrade", "current"])
    args = parser.parse_args(argv)
    url = os.environ.get("CDS_DATABASE_URL", "").strip()
    if not url:
        print("CDS_DATABASE_URL is not set", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "upgrade":
        print(upgrade(url))
        return 0
    current, head = current_revision(url), head_revision()
    print(f"{current or 'none'} (head {head})")
    return 0 if current == head else 1


if __name__ == "__main__":
    sys.exit(main())
