"""lpse-exporter: serve the LPSE metrics.  lpse-exporter --config /etc/lpse-exporter/config.toml"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from lpse_exporter.collectors.base import LpseCollector, Source
from lpse_exporter.collectors.disk import DiskSource
from lpse_exporter.collectors.memory import MemorySource
from lpse_exporter.collectors.network import NetworkSource
from lpse_exporter.collectors.schedule import ScheduleError, ScheduleSource, read_schedule
from lpse_exporter.collectors.temperature import TemperatureSource
from lpse_exporter.collectors.textfile import TextfileSource
from lpse_exporter.collectors.ups import UpsSource
from lpse_exporter.collectors.uptime import BootSource, ProbeSource
from lpse_exporter.config import Config, ConfigError, load
from lpse_exporter.server import serve


def build(cfg: Config) -> tuple[CollectorRegistry, ProbeSource]:
    probes = ProbeSource(cfg.spse, cfg.internet, cfg.tls, cfg.probe_interval, cfg.probe_timeout)
    sources: list[Source] = [
        DiskSource(cfg.root, cfg.filesystem_roles),
        MemorySource(cfg.root),
        NetworkSource(cfg.root, cfg.uplinks_bps, include=cfg.interfaces_include, exclude=cfg.interfaces_exclude),
        BootSource(cfg.root),
        TemperatureSource(cfg.root, cfg.room_temperature_file, cfg.room_temperature_name, cfg.ipmi_sensors_file),
        probes,
        TextfileSource(cfg.textfile_dir),
    ]
    if cfg.ups:
        sources.append(UpsSource(cfg.ups, cfg.probe_timeout))
    if cfg.spse_schedule:
        sources.append(ScheduleSource(cfg.spse_schedule))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LpseCollector(sources))
    return registry, probes


def print_schedule(cfg: Config, start: float | None, end: float | None) -> int:
    if cfg.spse_schedule is None:
        print("lpse-exporter: no [spse_schedule] in the configuration (lpse_exporter_spse_schedule)", file=sys.stderr)
        return 2
    start = time.time() if start is None else start
    try:
        stages = read_schedule(cfg.spse_schedule, start, end if end is not None else start + 7 * 86400)
    except ScheduleError as e:
        print(f"lpse-exporter: {e}", file=sys.stderr)
        return 1
    print(json.dumps([dataclasses.asdict(s) for s in stages], ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-exporter", description=__doc__)
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-exporter/config.toml"))
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    p.add_argument(
        "--spse-schedule",
        action="store_true",
        help="print SPSE's tender stages open in --from..--to as JSON and exit (the maintenance playbook)",
    )
    p.add_argument("--from", dest="start", type=float, help="epoch seconds (default: now)")
    p.add_argument("--to", dest="end", type=float, help="epoch seconds (default: 7 days from --from)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"lpse-exporter: {e}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"{args.config}: ok")
        return 0
    if args.spse_schedule:
        return print_schedule(cfg, args.start, args.end)
    registry, probes = build(cfg)
    probes.start()
    try:
        httpd = serve(registry, cfg.listen_address, cfg.listen_port, cfg.web)
    except OSError as e:
        print(f"lpse-exporter: cannot listen on {cfg.listen_address}:{cfg.listen_port}: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    logging.getLogger("lpse_exporter").info("serving /metrics on %s:%d", cfg.listen_address, cfg.listen_port)
    httpd.serve_forever()
    probes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
