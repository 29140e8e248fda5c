"""Exporter configuration (TOML, written by the lpse_exporter role)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpse_exporter.collectors.network import VIRTUAL_INTERFACES
from lpse_exporter.collectors.schedule import DEFAULT_QUERY, ScheduleConfig
from lpse_exporter.collectors.ups import UpsTarget
from lpse_exporter.collectors.uptime import InternetTarget, SpseCheck, TlsTarget


class ConfigError(ValueError):
    """The configuration is wrong; the message names the setting."""


@dataclass(frozen=True)
class WebConfig:
    """Same meaning as the exporter toolkit's web-config: TLS files and bcrypt basic-auth users."""

    cert_file: str | None = None
    key_file: str | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    listen_address: str = "127.0.0.1"
    listen_port: int = 9120
    root: Path = Path("/")
    textfile_dir: Path = Path("/var/lib/lpse-exporter/textfile")
    filesystem_roles: dict[str, str] = field(default_factory=dict)
    uplinks_bps: dict[str, float] = field(default_factory=dict)
    interfaces_include: tuple[str, ...] = ("*",)
    interfaces_exclude: tuple[str, ...] = VIRTUAL_INTERFACES
    spse: SpseCheck | None = None
    internet: tuple[InternetTarget, ...] = ()
    tls: tuple[TlsTarget, ...] = ()
    ups: tuple[UpsTarget, ...] = ()
    spse_schedule: ScheduleConfig | None = None
    room_temperature_file: Path | None = None
    room_temperature_name: str = "room"
    ipmi_sensors_file: Path | None = None
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    web: WebConfig = field(default_factory=WebConfig)


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    value = d.get(key, default)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where}{key} must be a {names}, not {value!r}")
    return value


def parse(data: dict[str, Any]) -> Config:
    spse = None
    if "spse" in data:
        s = data["spse"]
        if not _get(s, "url", str, "spse."):
            raise ConfigError("spse.url is required when [spse] is present (e.g. https://spse.example.go.id/eproc4/)")
        spse = SpseCheck(
            url=s["url"],
            ca_file=_get(s, "ca_file", str, "spse."),
            markers=tuple(_get(s, "markers", list, "spse.", ["SPSE v4"])),
            error_markers=tuple(_get(s, "error_markers", list, "spse.", list(SpseCheck.error_markers))),
        )
    internet = []
    for i, t in enumerate(_get(data, "internet_targets", list, "", [])):
        kind = t.get("kind", "tcp")
        if kind not in ("tcp", "dns") or not t.get("host"):
            raise ConfigError(f"internet_targets[{i}]: needs host and kind 'tcp' or 'dns'")
        internet.append(InternetTarget(t.get("name", t["host"]), kind, t["host"], int(t.get("port", 443))))
    tls = [
        TlsTarget(t["host"], int(t.get("port", 443)), t.get("server_name"), t.get("ca_file"))
        for t in _get(data, "tls_targets", list, "", [])
    ]
    ups = []
    for i, u in enumerate(_get(data, "ups", list, "", [])):
        where = f"ups[{i}]."
        if not _get(u, "name", str, where):
            raise ConfigError(f"{where}name is required: the UPS's name in upsd (its section in ups.conf)")
        if bool(u.get("username")) != bool(u.get("password_file")):
            raise ConfigError(f"{where}username and {where}password_file go together")
        pw = _get(u, "password_file", str, where)
        ups.append(
            UpsTarget(
                u["name"],
                _get(u, "host", str, where, "127.0.0.1"),
                _get(u, "port", int, where, 3493),
                _get(u, "username", str, where),
                Path(pw) if pw else None,
            )
        )
    schedule = None
    if "spse_schedule" in data:
        sc = data["spse_schedule"]
        if not _get(sc, "database", str, "spse_schedule."):
            raise ConfigError("spse_schedule.database is required when [spse_schedule] is present (SPSE's database)")
        query = _get(sc, "query", str, "spse_schedule.", DEFAULT_QUERY)
        if ":window_start" not in query or ":window_end" not in query:
            raise ConfigError("spse_schedule.query must use :window_start and :window_end (epoch seconds)")
        schedule = ScheduleConfig(
            sc["database"], query, _get(sc, "socket_dir", str, "spse_schedule.", "/var/run/postgresql"),
            _get(sc, "port", int, "spse_schedule.", 5432), float(_get(sc, "timeout_seconds", (int, float),
                                                                         "spse_schedule.", 5)),
        )  # fmt: skip
    uplinks = {k: float(v) for k, v in _get(data, "uplinks_bps", dict, "", {}).items()}
    if any(v <= 0 for v in uplinks.values()):
        raise ConfigError("uplinks_bps values are the contracted bandwidth in bits per second and must be > 0")
    web = _get(data, "web", dict, "", {})
    if bool(web.get("cert_file")) != bool(web.get("key_file")):
        raise ConfigError("web.cert_file and web.key_file go together")
    return Config(
        listen_address=_get(data, "listen_address", str, "", "127.0.0.1"),
        listen_port=_get(data, "listen_port", int, "", 9120),
        root=Path(_get(data, "root", str, "", "/")),
        textfile_dir=Path(_get(data, "textfile_dir", str, "", "/var/lib/lpse-exporter/textfile")),
        filesystem_roles=dict(_get(data, "filesystem_roles", dict, "", {})),
        uplinks_bps=uplinks,
        interfaces_include=tuple(_get(data, "interfaces_include", list, "", ["*"])),
        interfaces_exclude=tuple(_get(data, "interfaces_exclude", list, "", list(VIRTUAL_INTERFACES))),
        spse=spse,
        internet=tuple(internet),
        tls=tuple(tls),
        ups=tuple(ups),
        spse_schedule=schedule,
        room_temperature_file=Path(room) if (room := _get(data, "room_temperature_file", str, "", "")) else None,
        room_temperature_name=_get(data, "room_temperature_name", str, "", "room"),
        ipmi_sensors_file=Path(ipmi) if (ipmi := _get(data, "ipmi_sensors_file", str, "", "")) else None,
        probe_interval=float(_get(data, "probe_interval_seconds", (int, float), "", 10)),
        probe_timeout=float(_get(data, "probe_timeout_seconds", (int, float), "", 5)),
        web=WebConfig(web.get("cert_file"), web.get("key_file"), dict(web.get("basic_auth_users", {}))),
    )


def load(path: Path) -> Config:
    try:
        return parse(tomllib.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: give --config or deploy it with the lpse_exporter role") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
