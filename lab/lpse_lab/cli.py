"""`lpse-lab`: bring the local lab up, provision it with the project's own playbooks, tear it down."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import yaml

from lpse_lab import lab, oncall, radosgw, ups
from lpse_lab.artifact import build_simulator
from lpse_lab.oncall import RelaySettings
from lpse_lab.pki import ensure_ca, ensure_server_cert, write_atomic

log = logging.getLogger("lpse_lab")
BIN = Path(sys.executable).parent  # the project's venv: ansible, pyinfra
VAULT_FILE = lab.INVENTORY / "group_vars" / "all" / "vault.yml"
# The login Alertmanager uses at the lab relay (inventories/lab: alertmanager_smtp_auth_username).
ONCALL_SMTP_USER = "alertmanager@lab.lpse"


def vault_password_file() -> Path:
    return lab.STATE_DIR / "vault-password"


def _new_secrets() -> dict[str, str]:
    lkpp = secrets.token_urlsafe(18)
    ops = secrets.token_urlsafe(18)
    scrape = secrets.token_urlsafe(18)
    return {
        "vault_spse_db_password": secrets.token_urlsafe(24),
        "vault_alertmanager_smtp_password": secrets.token_urlsafe(24),
        # The shape of a real bot token: <bot id>:<secret>.
        "vault_alertmanager_telegram_bot_token": f"{secrets.randbelow(10**10)}:{secrets.token_urlsafe(26)}",
        # A site's vault holds only the hash; the lab keeps the password too, for the tests.
        "vault_lkpp_password": lkpp,
        "vault_lkpp_password_bcrypt": bcrypt.hashpw(lkpp.encode(), bcrypt.gensalt(rounds=10)).decode(),
        # The status board's operations view (the same way: the hash for nginx, the password for tests).
        "vault_status_ops_password": ops,
        "vault_status_ops_password_bcrypt": bcrypt.hashpw(ops.encode(), bcrypt.gensalt(rounds=10)).decode(),
        # Backups: the off-room bucket's secret key, and the three encryption keys.
        "vault_backup_offroom_secret_key": secrets.token_urlsafe(30),
        # Prometheus' login to the off-room host's exporter (which serves HTTPS with basic auth).
        "vault_exporter_scrape_password": scrape,
        "vault_exporter_scrape_password_bcrypt": bcrypt.hashpw(scrape.encode(), bcrypt.gensalt(rounds=10)).decode(),
        # Alertmanager's bearer token for the status board's incident webhook.
        "vault_incident_webhook_token": secrets.token_urlsafe(32),
        "vault_backup_pgbackrest_cipher_pass": secrets.token_urlsafe(36),
        "vault_backup_restic_password": secrets.token_urlsafe(36),
        # upsmon's login to the SPSE server's upsd (the monitoring server is on the same UPS).
        "vault_ups_monitor_password": secrets.token_urlsafe(24),
        # The national store (the lkpp host): the lab site's login there (the site keeps the
        # secret, LKPP its SHA-512-crypt hash), a second site's, an LKPP reader's (bcrypt), and
        # LKPP's own keys.
        **_site_login("vault_lkpp_telemetry_secret"),
        **_site_login("vault_national_other_site_secret"),
        **_login("vault_national_reader_password"),
        "vault_national_internal_key": secrets.token_urlsafe(30),
        "vault_national_admin_key": secrets.token_urlsafe(30),
        **age_keypair(),
    }


def _login(name: str) -> dict[str, str]:
    """A password and its bcrypt hash (cost 10), as `name` and `name`_bcrypt."""
    password = secrets.token_urlsafe(18)
    return {name: password, f"{name}_bcrypt": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}


def _site_login(name: str) -> dict[str, str]:
    """A site's machine secret at LKPP and its SHA-512-crypt hash, as `name` and `name`_sha512
    (what roles/national_gateway asks of a site's login: checked on every request it sends)."""
    secret = secrets.token_urlsafe(32)
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=secret, check=True, capture_output=True, text=True
    )
    return {name: secret, f"{name}_sha512": hashed.stdout.strip()}


def age_keypair() -> dict[str, str]:
    """An age identity for the logical dumps: the recipient (public) and the identity (secret)."""
    out = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
    identity = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(["age-keygen", "-y"], input=identity, check=True, capture_output=True, text=True)
    return {"vault_backup_age_identity": identity, "vault_backup_age_recipient": recipient.stdout.strip()}


def lab_secrets() -> dict[str, str]:
    """The lab vault's contents (decrypted with the per-machine password)."""
    out = subprocess.run(
        [str(BIN / "ansible-vault"), "view", "--vault-password-file", str(vault_password_file()), str(VAULT_FILE)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(yaml.safe_load(out) or {})


def ensure_lab_secrets() -> dict[str, str]:
    """The lab's vault: random secrets, encrypted with a per-machine password (0600).
    Secrets a newer checkout needs are added; existing ones are kept."""
    pw = vault_password_file()
    if not pw.exists():
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        os.close(fd)
    current = lab_secrets() if VAULT_FILE.exists() else {}
    wanted = _new_secrets() | current
    if wanted == current:
        return current
    plain = "---\n# generated by `lpse-lab up`; lab only\n" + yaml.safe_dump(wanted, default_flow_style=False)
    tmp = VAULT_FILE.with_suffix(".tmp")
    write_atomic(tmp, plain.encode(), 0o600)
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(pw), str(tmp)],
        check=True,
        capture_output=True,
    )
    tmp.replace(VAULT_FILE)
    return wanted


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(lab.REPO / "ansible.cfg")
    env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault_password_file())
    return env


def build_artifacts() -> None:
    """What the inventory deploys from this machine that is not in the repository: the SPSE
    release (the simulator), rebuilt when its sources changed. The project's own wheels are built
    by site.yml itself (roles/python_package), as at a real site."""
    build_simulator(lab.STATE_DIR / "artifacts")


def cmd_up(cfg: lab.LabConfig) -> None:
    t0 = time.monotonic()
    lab.up(cfg)
    pki = lab.STATE_DIR / "pki"
    ensure_ca(pki)
    for host in cfg.hosts:
        ensure_server_cert(pki, host.name, host.address)
    gateway_crt, gateway_key = ensure_server_cert(pki, "lab-gateway", cfg.gateway)
    build_artifacts()
    vault = ensure_lab_secrets()
    lab.ensure_oncall(
        RelaySettings(
            address=cfg.gateway,
            smtp_port=cfg.smtp_port,
            https_port=cfg.https_port,
            user=ONCALL_SMTP_USER,
            password=vault["vault_alertmanager_smtp_password"],
            bot_token=vault["vault_alertmanager_telegram_bot_token"],
            certfile=str(gateway_crt),
            keyfile=str(gateway_key),
        )
    )
    ensure_offroom_s3(cfg, pki, vault)
    print(f"lab up in {time.monotonic() - t0:.1f} s: " + ", ".join(f"{h.name} {h.address}" for h in cfg.hosts))


def ensure_offroom_s3(cfg: lab.LabConfig, pki: Path, vault: dict[str, str]) -> None:
    """The off-room host's S3 server: Ceph radosgw in that host's network namespace (its objects
    live in RAM: a lab that went down comes back with an empty bucket, made again by the
    backup role)."""
    host = cfg.offroom
    state = host.dir / "radosgw"
    if radosgw.running(state, cfg.offroom_s3_port):
        return
    crt, key = ensure_server_cert(pki, host.name, host.address)
    radosgw.start(
        state,
        host.address,
        cfg.offroom_s3_port,
        tls=(cfg.offroom_s3_tls_port, crt, key),
        netns=host.netns,
        secret_key=vault["vault_backup_offroom_secret_key"],
    )


def stop_offroom_s3(cfg: lab.LabConfig) -> None:
    radosgw.stop(cfg.offroom.dir / "radosgw")


BOOTSTRAP_CMD = [str(BIN / "pyinfra"), "-y", "playbooks/bootstrap_inventory.py", "playbooks/bootstrap.py"]


def bootstrap_env() -> dict[str, str]:
    """How playbooks/bootstrap_inventory.py finds the lab: its inventory, key and host keys."""
    return ansible_env() | {
        "LPSE_INVENTORY": str(lab.INVENTORY),
        "LPSE_BOOTSTRAP_KEY": str(lab.lab_key().with_suffix(".pub")),
        "LPSE_SSH_KEY": str(lab.lab_key()),
        "LPSE_KNOWN_HOSTS": str(lab.known_hosts()),
    }


def playbook_cmd(name: str, *extra: str, inventory: Path | None = None) -> list[str]:
    return [str(BIN / "ansible-playbook"), "-i", str(inventory or lab.INVENTORY), f"playbooks/{name}", *extra]


def bootstrap(limit: str = "") -> None:
    subprocess.run(BOOTSTRAP_CMD, cwd=lab.REPO, env=bootstrap_env() | {"LPSE_LIMIT": limit}, check=True)


def playbook(name: str, *extra: str) -> None:
    subprocess.run(playbook_cmd(name, *extra), cwd=lab.REPO, env=ansible_env(), check=True)


SUMMARY_SERVICES = (
    "ssh",
    "nftables",
    "postgresql@15-main",
    "spse",
    "nginx",
    "lpse-exporter",
    "prometheus",
    "prometheus-alertmanager",
    "lpse-status",
)


def services(host: lab.LabHost) -> dict[str, str]:
    """systemctl is-active for the services the summary shows (only those installed)."""
    out = lab.ssh(
        host.address, "systemctl is-active " + " ".join(SUMMARY_SERVICES) + "; true", timeout=30
    ).stdout.split()
    return {name: state for name, state in zip(SUMMARY_SERVICES, out, strict=False) if state != "inactive"}


def summary(cfg: lab.LabConfig) -> None:
    by_name = {h.name: h for h in cfg.hosts}
    print("\nlpse-ops lab is provisioned:")
    statuses = lab.status(cfg)
    for st in statuses:
        print(
            f"  {st.name:<8} {st.address:<12} {'running' if st.running else 'stopped'}, "
            f"ssh {'up' if st.ssh else 'down'}"
        )
    for st in statuses:
        if st.ssh:
            states = services(by_name[st.name])
            print(f"  {st.name:<8} services: " + ", ".join(f"{k} {v}" for k, v in states.items()))
    if "spse" in by_name:
        print(
            f"  SPSE (simulator): https://spse/eproc4  (address {by_name['spse'].address}; "
            f"CA {lab.STATE_DIR / 'pki' / 'lab-ca.crt'})"
        )
        print(
            f"    try: curl --cacert {lab.STATE_DIR / 'pki' / 'lab-ca.crt'} "
            f"--resolve spse:443:{by_name['spse'].address} https://spse/eproc4/"
        )
    if "monitor" in by_name:
        mon = by_name["monitor"].address
        print(
            "  Prometheus https://monitor/prometheus/, Alertmanager https://monitor/alertmanager/ (login ops), "
            "LKPP https://monitor:9443 (login lkpp)"
        )
        print(
            f"  status board: https://monitor/ (public) and https://monitor/ops (login ops, password in the "
            f"lab vault: vault_status_ops_password); curl --resolve monitor:443:{mon} --cacert …/lab-ca.crt"
        )
        print("  alerts received by the lab's on-call relay and Telegram stand-in: lpse-lab mail")
        print("  on call: LPSE_INVENTORY=inventories/lab .venv/bin/fab status spse (fab --list for the rest)")
    print(f"  log in: ssh -i {lab.lab_key()} -o UserKnownHostsFile={lab.known_hosts()} lpseops@<address>")


# Where the backup role expects the drive (backup_portable_mountpoint) is <lab_usb>/<this>.
DRIVE_NAME = "lpse-backup"

# What the demo's SPSE holds: a unit's busy quarter, its documents scaled down to a quarter of
# the lab's 512 MiB document disk (full size, 1920 bids would need about 9.5 GiB).
DEMO_TENDERS, DEMO_BIDS_PER_TENDER, DEMO_DOCUMENTS = 240, 8, "120M"
LPSE_BACKUP = "/opt/lpse-backup/venv/bin/lpse-backup"


def seed_demo(cfg: lab.LabConfig) -> dict[str, int]:
    """Give the demo something to show: tenders, bids and their documents in SPSE (once: a
    second demo adds nothing), a backup drive in the server, one nightly backup and one restore
    drill, so the status board, `fab status`, the backups and the drill all show real figures.
    Returns SPSE's counts."""
    spse = next(h for h in cfg.hosts if h.name == "spse")

    def sql(query: str) -> int:
        res = lab.ssh(spse.address, f"sudo -u postgres psql -X -A -t -d spse -c {shlex.quote(query)}", timeout=60)
        if res.returncode != 0:
            raise lab.LabError(f"the demo could not read SPSE's database: {res.stderr.strip()[-300:]}")
        return int(res.stdout.strip() or 0)

    if sql("SELECT count(*) FROM lelang") < DEMO_TENDERS:
        print(f"demo: adding {DEMO_TENDERS} tenders with their bids and {DEMO_DOCUMENTS} of documents to SPSE…")
        gen = lab.ssh(
            spse.address,
            "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz "
            f"generate --tenders {DEMO_TENDERS} --bids-per-tender {DEMO_BIDS_PER_TENDER} "
            f"--documents-size {DEMO_DOCUMENTS} --spread --seed 2026",
            timeout=1800,
        )
        if gen.returncode != 0:
            raise lab.LabError(f"generating the demo data failed: {gen.stderr.strip()[-500:]}")
    if not lab.plugged(spse):
        lab.plug(spse, lab.make_drive("lpse-backup-1", 4096), DRIVE_NAME)
        print(f"demo: backup drive lpse-backup-1 plugged into {spse.name}")
    for what in ("run", "drill"):
        print(f"demo: lpse-backup {what} on {spse.name}…")
        res = lab.ssh(spse.address, f"sudo {LPSE_BACKUP} {what}", timeout=3600)
        print("".join(f"    {line}\n" for line in res.stdout.splitlines()[-12:]), end="")
        if res.returncode != 0:
            raise lab.LabError(f"lpse-backup {what} failed on the demo (exit {res.returncode}): see above")
    return {
        "tenders": sql("SELECT count(*) FROM lelang"),
        "bids": sql("SELECT count(*) FROM penawaran"),
        "documents_mib": sql("SELECT (coalesce(sum(dokumen_bytes), 0) / 1048576)::bigint FROM penawaran"),
    }


def cmd_drive(cfg: lab.LabConfig, action: str, label: str, host_name: str, size_mb: int) -> None:
    host = next((h for h in cfg.hosts if h.name == host_name), None)
    if host is None:
        raise lab.LabError(f"no lab host {host_name}")
    if action == "plug":
        where = lab.plug(host, lab.make_drive(label, size_mb), DRIVE_NAME)
        print(f"drive {label} plugged into {host.name} at {where}")
    elif action == "unplug":
        lab.unplug(host, DRIVE_NAME)
        print(f"drive pulled out of {host.name} (its device failed under any copy, then the mount went)")
    else:
        for where, plugged in lab.plugged(host).items():
            print(f"{host.name}: {plugged} at {where}")
        for image in sorted(lab.DRIVES_DIR.glob("*.img")) if lab.DRIVES_DIR.exists() else []:
            print(f"drive {image.stem}: {image}")


def show_mail(last: int) -> None:
    """What the on-call rota received at the lab relay and the Telegram stand-in."""
    mails = oncall.mails(lab.ONCALL_DIR)[-last:] if last > 0 else []
    chats = oncall.chat_messages(lab.ONCALL_DIR)
    beats = oncall.heartbeats(lab.ONCALL_DIR)
    for m in mails:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.received))
        print(f"{stamp}  {', '.join(m.recipients):<22} {m.subject}")
    print(
        f"{len(mails)} e-mail shown ({lab.ONCALL_DIR / 'mail'}); {len(chats)} Telegram messages "
        f"({lab.ONCALL_DIR / 'telegram.jsonl'}); {len(beats)} heartbeats, last "
        + (time.strftime("%H:%M:%S", time.localtime(beats[-1])) if beats else "never")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-lab", description="the lpse-ops local lab (tests and demo only)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="build the template once, start the lab hosts (idempotent)")
    sub.add_parser("down", help="stop the hosts; leaves no netns, veth, mount or process")
    sub.add_parser("destroy", help="down, then delete the hosts' disks")
    sub.add_parser("status", help="which hosts run")
    rebuild = sub.add_parser("rebuild", help="replace a host by a fresh, bootstrapped one (disaster recovery drills)")
    rebuild.add_argument("host")
    prov = sub.add_parser("provision", help="bootstrap (pyinfra) then playbooks/site.yml on the lab")
    prov.add_argument("--skip-bootstrap", action="store_true")
    sub.add_parser("demo", help="up + provision + summary")
    mail = sub.add_parser("mail", help="alert e-mail and Telegram messages the lab's on-call end received")
    mail.add_argument("--last", type=int, default=20)
    drive = sub.add_parser("drive", help="portable backup drives: plug one into a host's USB port, unplug, list")
    drive.add_argument("action", choices=["plug", "unplug", "list"])
    drive.add_argument("label", nargs="?", default="lpse-backup-1", help="drive label (made on first use)")
    drive.add_argument("--host", default="spse")
    drive.add_argument("--size-mb", type=int, default=4096)
    power = sub.add_parser("ups", help="what a host's simulated UPS reports (NUT dummy-ups): mains, battery, low")
    power.add_argument("state", choices=list(ups.STATES))
    power.add_argument("--host", default="spse")
    box = sub.add_parser(
        "box",
        help="run a command with a second lab of its own beside this one (tests side by side)",
        description="Run COMMAND in its own network, mount and process namespaces, where `lpse-lab` "
        "(and the tests) make and use a second lab: same hosts and addresses, state in --dir. "
        "The second lab ends with COMMAND.",
    )
    box.add_argument("--dir", type=Path, default=lab.box_dir(), help="the second lab's state (default %(default)s)")
    box.add_argument(
        "--from", dest="snapshot", type=Path, help="make the second lab's hosts from this snapshot (lpse-lab snapshot)"
    )
    box.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    snap = sub.add_parser(
        "snapshot",
        help="copy the running lab's hosts (frozen for the copy) for `box --from`",
        description="Copy the running, provisioned lab into --dir: its hosts are frozen for the copy "
        "(a consistent state across hosts, like a power cut) and go on afterwards. Drives and the "
        "off-room bucket are not copied.",
    )
    snap.add_argument("--dir", type=Path, default=lab.snapshot_dir(), help="where (default %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        cfg = lab.load_config()
        if args.cmd == "up":
            cmd_up(cfg)
        elif args.cmd == "down":
            stop_offroom_s3(cfg)
            lab.down(cfg)
            print("lab down")
        elif args.cmd == "destroy":
            stop_offroom_s3(cfg)
            lab.destroy(cfg)
            print("lab destroyed (template and apt cache kept)")
        elif args.cmd == "status":
            for st in lab.status(cfg):
                print(
                    f"{st.name:<8} {st.address:<12} {'running' if st.running else 'stopped'} "
                    f"ssh={'up' if st.ssh else 'down'}"
                )
        elif args.cmd == "rebuild":
            host = next((h for h in cfg.hosts if h.name == args.host), None)
            if host is None or host.name == cfg.offroom_name:
                raise lab.LabError(f"cannot rebuild {args.host!r}: give an SPSE or monitoring host")
            lab.rebuild(cfg, host)
            bootstrap(host.name)
            print(f"{host.name} is a fresh, bootstrapped host: provision it with a playbook (restore.yml, site.yml)")
        elif args.cmd == "mail":
            show_mail(args.last)
        elif args.cmd == "drive":
            cmd_drive(cfg, args.action, args.label, args.host, args.size_mb)
        elif args.cmd == "box":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                raise lab.LabError("give the command to run: lpse-lab box -- COMMAND [ARGS]")
            lab.STATE_DIR.mkdir(parents=True, exist_ok=True)
            ensure_lab_secrets()
            return lab.box(cfg, args.dir, vault_password_file(), command, args.snapshot)
        elif args.cmd == "snapshot":
            took = lab.snapshot(cfg, args.dir)
            print(f"lab snapshot in {args.dir} (hosts frozen for {took:.1f} s)")
        elif args.cmd == "ups":
            lab.set_ups(next((h for h in cfg.hosts if h.name == args.host), lab.LabHost(args.host, "")), args.state)
            print(f"the UPS of {args.host} now reports: {ups.STATES[args.state]['ups.status']}")
        elif args.cmd in ("provision", "demo"):
            if args.cmd == "demo":
                cmd_up(cfg)
            else:
                build_artifacts()  # the sources may have changed since `lpse-lab up`
            if not getattr(args, "skip_bootstrap", False):
                bootstrap()
            playbook("site.yml")
            seeded = seed_demo(cfg) if args.cmd == "demo" else None
            summary(cfg)
            if seeded:
                print(
                    f"  SPSE holds {seeded['tenders']} tenders, {seeded['bids']} bids, "
                    f"{seeded['documents_mib']} MiB of documents; backed up and drilled once (lpse-backup status)"
                )
    except lab.LabError as e:
        print(f"lpse-lab: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"lpse-lab: {Path(e.cmd[0]).name} failed (exit {e.returncode}); see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
