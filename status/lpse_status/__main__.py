"""`lpse-status`: the status board's web service (`serve`) and the incident records (`incidents`)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from lpse_status.incidents import explain, postmortem
from lpse_status.prom import Prometheus
from lpse_status.records import incidents, write_text
from lpse_status.web import Settings, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-status", description="the LPSE status board")
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-status/config.toml"))
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the public page and the operations view (localhost; nginx in front)")
    inc = sub.add_parser("incidents", help="incident records: list, explain (cause, actions, publish), export")
    isub = inc.add_subparsers(dest="action", required=True)
    isub.add_parser("list", help="every incident, newest first")
    ex = isub.add_parser("explain", help="add the cause and the actions; --publish shows it on the public page")
    ex.add_argument("id")
    ex.add_argument("--cause-id", default="", help="the cause, in Bahasa Indonesia")
    ex.add_argument("--cause-en", default="", help="the cause, in English")
    ex.add_argument("--action", action="append", default=[], help="what was done (repeat for each)")
    ex.add_argument("--publish", action="store_true")
    out = isub.add_parser("export", help="the postmortem document (HTML: timeline, graphs, the queries)")
    out.add_argument("id")
    out.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        s = Settings.load(args.config)
    except (OSError, KeyError, ValueError) as e:
        print(f"lpse-status: {args.config}: {e.__class__.__name__}: {e} — see status/README.md", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(s)
        return 0
    folder = s.records_dir / "incidents"
    try:
        if args.action == "list":
            for i in incidents(folder):
                took = f"{i.duration_s / 60:.1f} min" if i.duration_s is not None else "ongoing"
                state = "published" if i.published else ("needs a cause" if not i.cause_id else "not published")
                when = dt.datetime.fromtimestamp(i.first_failure, s.timezone).strftime("%Y-%m-%d %H:%M")
                print(f"{i.id}  {when}  {took:>9}  {state}")
        elif args.action == "explain":
            i = explain(folder, args.id, args.cause_id, args.cause_en, args.action, args.publish)
            print(f"{i.id}: {'published' if i.published else 'saved (not published)'}")
        else:
            found = {i.id: i for i in incidents(folder)}
            if args.id not in found:
                raise KeyError(f"no incident {args.id!r} (lpse-status incidents list shows them)")
            html = postmortem(found[args.id], Prometheus(s.prometheus_url), s.site_name, s.timezone, s.step_s)
            write_text(args.out, html)
            print(f"postmortem of {args.id}: {args.out}")
    except (KeyError, ValueError) as e:
        print(f"lpse-status: {e.args[0] if e.args else e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
