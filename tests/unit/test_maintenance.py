"""The maintenance rules (lpse_status.maintenance) as the playbook, fab and the status board use
them: times with their zone, overlaps at the very edges of a blackout, the records, and bad input
answered with what to change and nothing recorded."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lpse_status.__main__ import main
from lpse_status.maintenance import (
    Blackout,
    MaintenanceError,
    check,
    local_text,
    maintenance_windows,
    overlapping,
    parse_blackouts,
    parse_moment,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WIB = dt.timezone(dt.timedelta(hours=7))
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=WIB).timestamp()
TENDER = {"start": "2026-11-24T14:00:00+07:00", "end": "2026-11-24T16:00:00+07:00", "reason": "Penutupan tender 77"}


def test_the_same_clock_reading_in_wib_wita_and_wit_is_three_moments() -> None:
    wib, wita, wit = (parse_moment(f"2026-11-24T22:00:00+0{h}:00", "end") for h in (7, 8, 9))
    assert wib.timestamp() - wita.timestamp() == 3600 and wita.timestamp() - wit.timestamp() == 3600
    assert [local_text(m) for m in (wib, wita, wit)] == [f"24-11-2026 22:00 {z}" for z in ("WIB", "WITA", "WIT")]
    assert parse_moment("2026-11-24T15:00:00Z", "end").timestamp() == wib.timestamp()


@pytest.mark.parametrize(
    ("text", "says"),
    [("2026-11-24T22:00:00", "has no time zone"), ("tonight", "is not a time"), ("24-11-2026 22:00", "is not a time")],
)
def test_a_time_without_a_zone_or_not_a_time_is_refused_with_the_form_to_use(text: str, says: str) -> None:
    with pytest.raises(MaintenanceError, match=says) as e:
        parse_moment(text, "maintenance_end")
    assert "2026-11-24T22:00:00+07:00" in str(e.value)


def at(clock: str) -> float:
    return dt.datetime.fromisoformat(f"2026-11-24T{clock}+07:00").timestamp()


def test_a_window_overlaps_a_blackout_only_when_they_share_a_second() -> None:
    (tender,) = parse_blackouts([TENDER])
    assert overlapping(at("09:00:00"), at("14:00:00"), [tender]) == []  # ends as the blackout starts
    assert overlapping(at("09:00:00"), at("14:00:01"), [tender]) == [tender]
    assert overlapping(at("16:00:00"), at("18:00:00"), [tender]) == []  # starts as it ends
    assert overlapping(at("15:59:59"), at("18:00:00"), [tender]) == [tender]
    assert overlapping(at("13:00:00"), at("17:00:00"), [tender]) == [tender]  # around it
    # The same blackout written in WITA is the same hour.
    (wita,) = parse_blackouts([TENDER | {"start": "2026-11-24T15:00:00+08:00", "end": "2026-11-24T17:00:00+08:00"}])
    assert (wita.start, wita.end) == (tender.start, tender.end)


def test_a_request_needs_an_end_in_the_future_and_a_window_clear_of_closings() -> None:
    for end in (None, "", "2026-11-24T08:59:59+07:00", "2026-11-24T09:00:00+07:00", "nanti malam"):
        with pytest.raises(MaintenanceError, match="maintenance_end=<when SPSE is back>"):
            check(True, end, [], False, NOW)
    blackouts = parse_blackouts([TENDER])
    assert check(True, "2026-11-24T14:00:00+07:00", blackouts, False, NOW).overlaps == []
    with pytest.raises(MaintenanceError, match=r"overlaps the tender-closing blackout Penutupan tender 77 \(2026"):
        check(True, "2026-11-24T14:30:00+07:00", blackouts, False, NOW)
    forced = check(True, "2026-11-24T14:30:00+07:00", blackouts, True, NOW)
    assert forced.forced and [b.reason for b in forced.overlaps] == ["Penutupan tender 77"]
    assert forced.as_dict()["until"] == "24-11-2026 14:30 WIB"
    # A blackout that ended before the window starts is no obstacle.
    past = Blackout(at("07:00:00"), NOW, "tender closed this morning")
    assert check(True, "2026-11-24T12:00:00+07:00", [past], False, NOW).overlaps == []
    assert not check(False, None, [], False, NOW).on


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"end": "2026-11-24T16:00:00+07:00", "reason": "x"}, "needs start and end"),
        ({"start": "2026-11-24T14:00:00", "end": "2026-11-24T16:00:00+07:00", "reason": "x"}, "has no time zone"),
        ({"start": "2026-11-24T16:00:00+07:00", "end": "2026-11-24T14:00:00+07:00", "reason": "x"}, "ends before"),
        ("2026-11-24T14:00:00+07:00", "not a mapping"),
    ],
)
def test_a_malformed_blackout_is_named_in_the_error(entry: object, says: str) -> None:
    with pytest.raises(MaintenanceError, match=says) as e:
        parse_blackouts([TENDER, entry])
    assert "entry 2" in str(e.value)


def lpse_status(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict | str]:
    code = main(["--config", str(config), "maintenance", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.startswith("{") else out + err)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'prometheus_url = "http://127.0.0.1:1"\nsite_name = "LPSE Uji"\nspse_instance = "spse"\n'
                    f'records_dir = "{tmp_path / "records"}"\n')  # fmt: skip
    return path


def test_records_kept_announced_again_ended_early_and_read_by_the_status_board(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "records" / "maintenance"
    soon = dt.datetime.now(WIB).replace(microsecond=0) + dt.timedelta(hours=1)
    end = soon.isoformat()
    args = ("announce", "--end", end, "--reason-id", "Ganti disk", "--host", "spse", "--by", "sari")
    nobody = "no notice: nobody to tell (status_board_notice_to is empty)"
    assert lpse_status(config, *args, capsys=capsys) == (
        0,
        {"changed": True, "written": [f"{int(soon.timestamp())}.json"], "notice": nobody},
    )
    first = json.loads((folder / f"{int(soon.timestamp())}.json").read_text())
    assert (first["end"], first["ended_at"], first["hosts"], first["announced_by"]) == (end, None, ["spse"], "sari")
    assert lpse_status(config, *args, capsys=capsys) == (0, {"changed": False, "written": []})
    assert json.loads((folder / f"{int(soon.timestamp())}.json").read_text()) == first
    (window,) = maintenance_windows(folder)
    assert window.active(dt.datetime.now(WIB).timestamp()) and window.reason_id == "Ganti disk"

    # A later end: the first window ends now, the new one is recorded.
    later = soon + dt.timedelta(hours=1)
    code, done = lpse_status(config, "announce", "--end", later.isoformat(), capsys=capsys)
    written = [f"{int(soon.timestamp())}.json", f"{int(later.timestamp())}.json"]
    assert code == 0 and done == {"changed": True, "written": written, "notice": nobody}
    old, new = maintenance_windows(folder)
    assert old.ended is not None and not old.active(dt.datetime.now(WIB).timestamp() + 1) and new.ended is None
    assert new.reason_id == "Pemeliharaan terjadwal server SPSE"

    # --dry-run says what "off" would write and writes nothing; then off ends it, once.
    before = {p.name: p.read_text() for p in folder.iterdir()}
    would = {"changed": True, "written": [f"{int(later.timestamp())}.json"]}
    assert lpse_status(config, "end", "--dry-run", capsys=capsys)[1] == would
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert lpse_status(config, "end", capsys=capsys)[1] == would
    assert lpse_status(config, "end", capsys=capsys)[1] == {"changed": False, "written": []}
    assert all(m.ended for m in maintenance_windows(folder))


def test_bad_input_records_nothing_and_says_what_to_change(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "records" / "maintenance"
    soon = (dt.datetime.now(WIB) + dt.timedelta(hours=1)).replace(microsecond=0)
    blackout = [{"start": dt.datetime.now(WIB).isoformat(), "end": (soon + dt.timedelta(hours=1)).isoformat(),
                 "reason": "Penutupan tender 88"}]  # fmt: skip
    cases = [
        (("--end", soon.replace(tzinfo=None).isoformat()), "has no time zone"),
        (("--end", "2020-01-01T00:00:00+07:00"), "has passed"),
        (("--end", soon.isoformat(), "--blackouts", json.dumps(blackout)), "Penutupan tender 88"),
        (("--end", soon.isoformat(), "--blackouts", "[{"), "--blackouts is not JSON"),
    ]
    for extra, says in cases:
        code, said = lpse_status(config, "announce", *extra, capsys=capsys)
        assert code == 1 and says in str(said), said
        assert not folder.exists() or not list(folder.iterdir())


def run_check_play(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess[str]:
    """playbooks/maintenance.yml on an inventory with no hosts: only its check of the request runs."""
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    spse_servers: {}\n    monitoring_servers: {}\n")
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "playbooks/maintenance.yml",
         "-e", f"@{tmp_path / 'extra.json'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "HOME": str(tmp_path)},
    )  # fmt: skip
    res.stdout = " ".join(res.stdout.split())
    return res


def test_the_playbook_checks_a_request_by_the_same_rules(tmp_path: Path) -> None:
    now = dt.datetime.now(WIB).replace(microsecond=0)
    end = (now + dt.timedelta(hours=1)).isoformat()
    start, until = (now + dt.timedelta(minutes=30)).isoformat(), (now + dt.timedelta(hours=3)).isoformat()
    blackouts = [{"start": start, "end": until, "reason": "Penutupan tender 99"}]
    ok = run_check_play(tmp_path, {"maintenance": "on", "maintenance_end": end})
    assert ok.returncode == 0, ok.stdout[-3000:]
    refused = run_check_play(
        tmp_path, {"maintenance": "on", "maintenance_end": end, "maintenance_blackouts": blackouts}
    )
    assert refused.returncode != 0 and "overlaps the tender-closing blackout Penutupan tender 99" in refused.stdout
    forced = run_check_play(tmp_path, {"maintenance": "on", "maintenance_end": end, "maintenance_blackouts": blackouts,
                                       "maintenance_force": "true"})  # fmt: skip
    assert forced.returncode == 0, forced.stdout[-3000:]
    naive = run_check_play(tmp_path, {"maintenance": "on", "maintenance_end": end[:-6]})
    assert naive.returncode != 0 and "has no time zone" in naive.stdout
    assert run_check_play(tmp_path, {"maintenance": "off"}).returncode == 0


def test_a_closing_in_spses_schedule_is_a_blackout_from_two_hours_before_it() -> None:
    """What `lpse-exporter --spse-schedule` reads, as the playbook's check takes it (the filter plugin)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lpse_maintenance", REPO / "plugins/filter/lpse_maintenance.py")
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    closes = dt.datetime.now(WIB).replace(microsecond=0) + dt.timedelta(hours=5)
    stage = {"tender": "A1", "name": "Rehabilitasi Gedung", "stage": "Upload Dokumen Penawaran", "opens": 0,
             "closes": closes.timestamp()}  # fmt: skip
    just_clear = (closes - dt.timedelta(hours=2)).isoformat()
    assert plugin.lpse_maintenance_check("on", just_clear, [], False, [stage])["error"] == ""
    over = (closes - dt.timedelta(hours=2) + dt.timedelta(seconds=1)).isoformat()
    refused = plugin.lpse_maintenance_check("on", over, [], False, [stage])["error"]
    assert "penutupan Upload Dokumen Penawaran tender A1 (Rehabilitasi Gedung)" in refused
    assert f"pukul {closes.strftime('%d-%m-%Y %H:%M')} WIB" in refused and "maintenance_force" in refused
    forced = plugin.lpse_maintenance_check("on", over, [], True, [stage])
    assert forced["error"] == "" and forced["overlaps"][0]["source"] == "spse"
    # In WITA the same closing reads an hour later on the clock.
    wita = plugin.lpse_maintenance_check("on", over, [], False, [stage], offset_hours=8)["error"]
    assert f"pukul {(closes + dt.timedelta(hours=1)).strftime('%d-%m-%Y %H:%M')} WITA" in wita
    # A window after the closing's half hour is clear again.
    after = dict(stage, closes=(dt.datetime.now(WIB) - dt.timedelta(minutes=31)).timestamp())
    assert plugin.lpse_maintenance_check("on", just_clear, [], False, [after])["error"] == ""
