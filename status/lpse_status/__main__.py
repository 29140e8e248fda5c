"""`lpse-status`: the status board's web service (`serve`), and what it reads, on the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lpse_status.web import Settings, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-status", description="the LPSE status board")
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-status/config.toml"))
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the public page and the operations view (localhost; nginx in front)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        settings = Settings.load(args.config)
    except (OSError, KeyError, ValueError) as e:
        print(f"lpse-status: {args.config}: {e.__class__.__name__}: {e} — see status/README.md", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
