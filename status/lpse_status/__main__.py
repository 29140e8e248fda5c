"""`lpse-status`: the status board's web service (`serve`), the incident records and their public
updates (`incidents`), the helpdesk's reports (`helpdesk`), the maintenance records (`maintenance`,
written by playbooks/maintenance.yml), the server-room visits (`visits`) and the quarterly report
(`report`)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import os
import sys
import time
from pathlib import Path

from lpse_status import berita_acara, escalation, helpdesk, opendata
from lpse_status.incidents import AFFECTS, SEVERITIES, STATES, explain, open_incident, post_update, postmortem
from lpse_status.maintenance import MaintenanceError, check, local_text, maintenance_windows, parse_blackouts, record
from lpse_status.notices import incident_updated, maintenance_announced
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.records import enter, incidents, leave, parse_time, visits, write_text
from lpse_status.report import Quarter, build, lkpp_logs, render_html, write_pdf
from lpse_status.web import Settings, serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-status", description="the LPSE status board")
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-status/config.toml"))
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the public page and the operations view (localhost; nginx in front)")
    inc = sub.add_parser("incidents", help="incident records: list, explain (cause, actions, publish), export")
    isub = inc.add_subparsers(dest="what", required=True)
    isub.add_parser("list", help="every incident, newest first")
    ex = isub.add_parser("explain", help="add the cause and the actions; --publish shows it on the public page")
    ex.add_argument("id")
    ex.add_argument("--cause-id", default="", help="the cause, in Bahasa Indonesia")
    ex.add_argument("--cause-en", default="", help="the cause, in English")
    ex.add_argument("--action", dest="actions", action="append", default=[], help="what was done (repeat for each)")
    ex.add_argument("--publish", action="store_true")
    opn = isub.add_parser("open", help="a disruption no alert opened: public at once, as investigating")
    opn.add_argument("--summary-id", required=True, help="the public headline, in Bahasa Indonesia")
    opn.add_argument("--summary-en", default="", help="the same in English")
    opn.add_argument("--severity", choices=SEVERITIES, default="major")
    opn.add_argument("--affects", action="append", choices=AFFECTS, default=[], help="what it breaks (repeat)")
    opn.add_argument("--message-id", required=True, help="what is known, in Bahasa Indonesia")
    opn.add_argument("--message-en", default="", help="the same in English")
    opn.add_argument("--by", default="", help="who posts it (default: the login running this)")
    upd = isub.add_parser("update", help="a public update: investigating, identified, monitoring, resolved")
    upd.add_argument("id")
    upd.add_argument("--state", required=True, choices=STATES)
    upd.add_argument("--message-id", required=True, help="what is known now, in Bahasa Indonesia")
    upd.add_argument("--message-en", default="", help="the same in English")
    upd.add_argument("--severity", choices=SEVERITIES, default="", help="a new severity")
    upd.add_argument("--affects", action="append", choices=AFFECTS, default=[], help="what it breaks now (repeat)")
    upd.add_argument("--by", default="", help="who posts it (default: the login running this)")
    out = isub.add_parser("export", help="the postmortem document (HTML: timeline, graphs, the queries)")
    out.add_argument("id")
    out.add_argument("--out", type=Path, required=True)
    hd = sub.add_parser("helpdesk", help="reports from bidders: who, what, how urgent, told back, which incident")
    hsub = hd.add_subparsers(dest="what", required=True)
    hadd = hsub.add_parser("add", help="record a report (now)")
    hadd.add_argument("--reporter", required=True, help="who reported: name and company or agency")
    hadd.add_argument("--summary", required=True, help="what they reported")
    hadd.add_argument("--urgency", required=True, choices=helpdesk.URGENCIES)
    hadd.add_argument("--impact", required=True, choices=helpdesk.IMPACTS, help="one user, several, or all")
    hadd.add_argument("--contact", default="", help="how to reach them back")
    hadd.add_argument("--channel", default="telepon", choices=helpdesk.CHANNELS)
    hadd.add_argument("--incident", default="", help="the incident it belongs to")
    hadd.add_argument("--by", default="", help="who records it (default: the login running this)")
    hlink = hsub.add_parser("link", help="tie a report to an incident")
    hlink.add_argument("id")
    hlink.add_argument("incident")
    htold = hsub.add_parser("told", help="the reporter has been told back (now)")
    htold.add_argument("id")
    hlist = hsub.add_parser("list", help="every report, newest first")
    hlist.add_argument("--open", action="store_true", help="only those not yet told back")
    mnt = sub.add_parser("maintenance", help="maintenance records (playbooks/maintenance.yml writes them with this)")
    msub = mnt.add_subparsers(dest="what", required=True)
    ann = msub.add_parser("announce", help="record a window from now to --end (checked against the blackouts)")
    ann.add_argument("--end", required=True, help="ISO 8601 with zone, e.g. 2026-11-24T22:00:00+07:00")
    ann.add_argument("--reason-id", default="", help="the reason, in Bahasa Indonesia")
    ann.add_argument("--reason-en", default="", help="the reason, in English")
    ann.add_argument("--host", dest="hosts", action="append", default=[], help="an SPSE host it covers (repeat)")
    ann.add_argument("--by", default="", help="who announced it")
    ann.add_argument("--blackouts", default="[]", help="the tender-closing blackouts, JSON: [{start, end, reason}]")
    ann.add_argument("--force", action="store_true", help="record it even over a blackout (the record says so)")
    ann.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    end = msub.add_parser("end", help="end every open window now")
    end.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    msub.add_parser("list", help="every recorded window, oldest first")
    vis = sub.add_parser("visits", help="the server room's visits (R4): who went in, allowed by whom, why")
    vsub = vis.add_subparsers(dest="what", required=True)
    vin = vsub.add_parser("in", help="someone goes into the server room (now, or --at)")
    vin.add_argument("--visitor", required=True, help="the visitor's name")
    vin.add_argument("--organisation", default="", help="e.g. the UPS vendor, Diskominfo")
    vin.add_argument("--purpose", required=True, help="why (in Bahasa Indonesia)")
    vin.add_argument("--allowed-by", required=True, help="who gave permission")
    vin.add_argument("--escort", default="", help="the LPSE staff member with them")
    vin.add_argument("--at", help="ISO 8601 time with zone (default: now)")
    vin.add_argument("--recorded-by", default="", help="who records it (default: the login running this)")
    vout = vsub.add_parser("out", help="the visitor has left the server room (now, or --at)")
    vout.add_argument("id")
    vout.add_argument("--at", help="ISO 8601 time with zone (default: now)")
    vlist = vsub.add_parser("list", help="every visit, oldest first")
    vlist.add_argument("--open", action="store_true", help="only those still inside")
    ba = sub.add_parser("berita-acara", help="the Berita Acara Gangguan of an incident (HTML, PDF, the evidence)")
    ba.add_argument("incident", help="its id (lpse-status incidents list)")
    ba.add_argument("--out", type=Path, required=True, help="folder for berita-acara-<incident>.html/.pdf/.csv/.json")
    ba.add_argument("--html-only", action="store_true", help="skip the PDF")
    esc = sub.add_parser("escalate", help="pack the incident's timeline, Berita Acara and diagnose bundle; mail LKPP")
    esc.add_argument("incident", help="its id (lpse-status incidents list)")
    esc.add_argument("--attach", type=Path, action="append", default=[], help="a diagnose bundle (repeat)")
    esc.add_argument("--out", type=Path, required=True, help="folder for eskalasi-<incident>.tar.gz")
    od = sub.add_parser("open-data", help="a month's probe results, figures, digest and signature (the board "
                        "writes each completed month's by itself)")  # fmt: skip
    od.add_argument("--month", required=True, help="e.g. 2026-11")
    od.add_argument("--out", type=Path, help="folder (default: <records_dir>/open-data, where the page links)")
    rep = sub.add_parser("report", help="the quarterly report (HTML and PDF, Bahasa Indonesia)")
    rep.add_argument("--quarter", required=True, help="e.g. 2026Q4")
    rep.add_argument("--out", type=Path, required=True, help="folder for laporan-spse-<quarter>.html and .pdf")
    rep.add_argument("--lkpp-logs", type=Path, default=Path("/var/log/nginx"), help="folder of lkpp-access.log*")
    rep.add_argument("--html-only", action="store_true", help="skip the PDF")
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
    if args.command == "report":
        return report(s, args.quarter, args.out, args.lkpp_logs, args.html_only)
    if args.command == "visits":
        return visits_command(s, args)
    if args.command == "maintenance":
        return maintenance_command(s, args)
    if args.command == "helpdesk":
        return helpdesk_command(s, args)
    if args.command == "berita-acara":
        return berita_acara_command(s, args.incident, args.out, not args.html_only)
    if args.command == "escalate":
        return escalate_command(s, args.incident, args.attach, args.out)
    if args.command == "open-data":
        return open_data_command(s, args.month, args.out or s.records_dir / "open-data")
    folder = s.records_dir / "incidents"
    by = getattr(args, "by", "") or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        if args.what == "list":
            for i in incidents(folder):
                took = f"{i.duration_s / 60:.1f} min" if i.duration_s is not None else "ongoing"
                state = "published" if i.published else ("needs a cause" if not i.cause_id else "not published")
                state = f"{i.state} (public), {state}" if i.updates else state
                when = dt.datetime.fromtimestamp(i.first_failure, s.timezone).strftime("%Y-%m-%d %H:%M")
                print(f"{i.id}  {when}  {took:>9}  {state}")
        elif args.what == "open":
            i = open_incident(folder, args.summary_id, args.summary_en, args.severity, args.affects, args.message_id,
                              args.message_en, by, time.time())  # fmt: skip
            print(f"{i.id}: open, on the public page; {incident_updated(s.board, i, time.time())}")
        elif args.what == "update":
            i = post_update(folder, args.id, args.state, args.message_id, args.message_en, by, time.time(),
                            args.severity, args.affects)  # fmt: skip
            print(f"{i.id}: {i.state}, on the public page; {incident_updated(s.board, i, time.time())}")
        elif args.what == "explain":
            i = explain(folder, args.id, args.cause_id, args.cause_en, args.actions, args.publish)
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


def visits_command(s: Settings, args: argparse.Namespace) -> int:
    folder = s.records_dir / "visits"

    def when(ts: float | None) -> str:
        return dt.datetime.fromtimestamp(ts, s.timezone).strftime("%Y-%m-%d %H:%M %Z") if ts else "inside"

    try:
        text = getattr(args, "at", None)
        if text and dt.datetime.fromisoformat(text).tzinfo is None:
            raise ValueError(f"--at {text}: give the zone too, e.g. 2026-12-05T09:30:00+07:00")
        at = parse_time(text) if text else time.time()
        if args.what == "in":
            who = args.recorded_by or os.environ.get("SUDO_USER") or getpass.getuser()
            v = enter(folder, args.visitor, args.organisation, args.purpose, args.allowed_by, at, args.escort, who)
            print(f"{v.id}: {v.visitor} in at {when(v.entered)}, allowed by {v.allowed_by}")
        elif args.what == "out":
            v = leave(folder, args.id, at)
            print(f"{v.id}: {v.visitor} out at {when(v.left)}")
        else:
            for v in visits(folder):
                if args.open and v.left is not None:
                    continue
                print(f"{v.id}  {when(v.entered)} - {when(v.left)}  {v.visitor} ({v.organisation or '-'}): "
                      f"{v.purpose}; allowed by {v.allowed_by}")  # fmt: skip
    except (KeyError, ValueError, OSError) as e:
        print(f"lpse-status visits: {e.args[0] if e.args else e}", file=sys.stderr)
        return 1
    return 0


def berita_acara_command(s: Settings, incident: str, out: Path, pdf: bool) -> int:
    try:
        found = {i.id: i for i in incidents(s.records_dir / "incidents")}
        if incident not in found:
            raise KeyError(f"no incident {incident!r} (lpse-status incidents list shows them)")
        cert = berita_acara.issue(Prometheus(s.prometheus_url, timeout=120), found[incident], s.office,
                                  s.records_dir / "berita-acara", s.timezone, time.time())  # fmt: skip
        paths = berita_acara.write(cert, s.office, s.public_url or s.site_name, s.timezone, out, pdf)
    except (KeyError, ValueError, OSError, RuntimeError) as e:
        print(f"lpse-status berita-acara: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    print(f"{cert.number}: {len(cert.stages)} tender stage(s); " + ", ".join(str(p) for p in paths))
    return 0


def escalate_command(s: Settings, incident: str, attach: list[Path], out: Path) -> int:
    try:
        found = {i.id: i for i in incidents(s.records_dir / "incidents")}
        if incident not in found:
            raise KeyError(f"no incident {incident!r} (lpse-status incidents list shows them)")
        inc = found[incident]
        prom = Prometheus(s.prometheus_url, timeout=120)
        archive, said = escalation.pack(inc, prom, s.office, s.records_dir, s.site_name, s.public_url, s.timezone,
                                        s.step_s, attach, out, time.time())  # fmt: skip
        to = escalation.mail(archive, inc, said, s.mail, s.site_name, s.timezone)
    except (KeyError, ValueError, OSError, RuntimeError) as e:
        print(f"lpse-status escalate: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    print(f"{archive} ({said}) sent to {to}")
    return 0


def open_data_command(s: Settings, month: str, out: Path) -> int:
    try:
        f = opendata.export(Prometheus(s.prometheus_url, timeout=120), s.spse_instance, s.step_s, s.timezone,
                            s.site_name, maintenance_windows(s.records_dir / "maintenance"), month,
                            opendata.load_key(s.signing_key), out)  # fmt: skip
    except (ValueError, OSError, PrometheusError) as e:
        print(f"lpse-status open-data: {e}", file=sys.stderr)
        return 1
    said = "no probe result in it" if f.availability is None else f"availability {f.availability * 100:.2f}%"
    print(f"{out}/ketersediaan-{month}.csv, .json, .sha256, .sha256.sig: {said}")
    return 0


def helpdesk_command(s: Settings, args: argparse.Namespace) -> int:
    folder, incidents_folder, now = s.records_dir / "helpdesk", s.records_dir / "incidents", time.time()

    def when(ts: float | None) -> str:
        return dt.datetime.fromtimestamp(ts, s.timezone).strftime("%Y-%m-%d %H:%M %Z") if ts else "not yet"

    try:
        if args.what == "add":
            by = args.by or os.environ.get("SUDO_USER") or getpass.getuser()
            r = helpdesk.add(folder, incidents_folder, args.reporter, args.summary, args.urgency, args.impact, now,
                             args.contact, args.channel, args.incident, by)  # fmt: skip
            print(f"{r.id}: recorded" + (f", part of {r.incident}" if r.incident else ""))
        elif args.what == "link":
            r = helpdesk.link(folder, incidents_folder, args.id, args.incident)
            print(f"{r.id}: part of {r.incident}")
        elif args.what == "told":
            r = helpdesk.told(folder, args.id, now)
            print(f"{r.id}: told back at {when(r.told)}")
        else:
            for r in helpdesk.reports(folder):
                if args.open and r.told is not None:
                    continue
                print(f"{r.id}  {when(r.at)}  {r.urgency}/{r.impact}  {r.reporter}: {r.summary}; "
                      f"told back: {when(r.told)}; incident: {r.incident or '-'}")  # fmt: skip
    except (KeyError, ValueError, OSError) as e:
        print(f"lpse-status helpdesk: {e.args[0] if e.args else e}", file=sys.stderr)
        return 1
    return 0


def maintenance_command(s: Settings, args: argparse.Namespace) -> int:
    """announce and end print {"changed", "written"} as JSON (the playbook reads it); list prints lines."""
    folder, now = s.records_dir / "maintenance", time.time()
    try:
        if args.what == "list":
            for m in maintenance_windows(folder):
                end = dt.datetime.fromtimestamp(m.end, s.timezone)
                ended = " (ended early)" if m.ended and m.ended < m.planned_end else ""
                forced = " [forced over a blackout]" if m.forced else ""
                print(f"{local_text(dt.datetime.fromtimestamp(m.start, s.timezone))} - {local_text(end)}{ended}"
                      f"{forced}: {m.reason_id}")  # fmt: skip
            return 0
        if args.what == "announce":
            blackouts = parse_blackouts(json.loads(args.blackouts))
            plan = check(True, args.end, blackouts, args.force, now)
            done = record(folder, plan, now, args.reason_id, args.reason_en, args.hosts, args.by, args.dry_run)
            new = f"{plan.end_epoch}.json"
            if new in done.written and not args.dry_run:
                window = json.loads((folder / new).read_text())
                said = maintenance_announced(s.board, window, str(plan.end_epoch), now)
                print(json.dumps(done.as_dict() | {"notice": said}))
                return 0
        else:
            done = record(folder, check(False, None, [], False, now), now, dry_run=args.dry_run)
    except (MaintenanceError, OSError) as e:
        print(f"lpse-status maintenance: {e}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"lpse-status maintenance: --blackouts is not JSON ({e})", file=sys.stderr)
        return 1
    print(json.dumps(done.as_dict()))
    return 0


def report(s: Settings, quarter: str, out: Path, logs: Path, html_only: bool) -> int:
    try:
        q = Quarter.parse(quarter, s.timezone)
        r = build(Prometheus(s.prometheus_url), s.site_name, s.spse_instance, q, s.records_dir, lkpp_logs(logs),
                  s.target, s.step_s)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        name = f"laporan-spse-{q.year}Q{q.number}"
        html = render_html(r)
        write_text(out / f"{name}.html", html)
        print(f"{out / name}.html")
        if not html_only:
            write_pdf(html, out / f"{name}.pdf")
            print(f"{out / name}.pdf")
    except (ValueError, RuntimeError, OSError) as e:
        print(f"lpse-status report: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
