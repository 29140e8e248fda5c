"""pyinfra deploy: make a bare Debian host (root SSH only) ready for Ansible.

Creates the admin user with its SSH key and passwordless sudo, installs python3 and sudo,
then disables root SSH login. Run it through playbooks/bootstrap_inventory.py, which reads
the Ansible inventory and connects as root the first time and as the admin user afterwards
(so a second run works, and changes nothing):

    LPSE_INVENTORY=inventories/<site> LPSE_BOOTSTRAP_KEY=~/.ssh/id_ed25519.pub \\
        pyinfra -y playbooks/bootstrap_inventory.py playbooks/bootstrap.py
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import Date
from pyinfra.operations import apt, files, server, systemd

ROOT_LOGIN_DROPIN = "/etc/ssh/sshd_config.d/00-lpse-bootstrap.conf"
LISTS_STAMP = "/var/lib/apt/periodic/update-success-stamp"


@operation()
def package_lists(max_age_s: int = 86400, attempts: int = 3, timeout_s: int = 180):  # type: ignore[no-untyped-def]
    """`apt-get update` unless the lists are younger than `max_age_s`. Each try is bounded and a
    try that hung is killed before the next: on a poor link apt can wait for good on a transfer
    the mirror already cut (seen in the lab), which would hang the bootstrap and hold apt's lock."""
    stamp = host.get_fact(File, path=LISTS_STAMP)
    if stamp and stamp["mtime"]:
        now = datetime.fromtimestamp(host.get_fact(Date).timestamp(), UTC).replace(tzinfo=None)
        if stamp["mtime"] > now - timedelta(seconds=max_age_s):
            host.noop("the package lists are fresh")
            return
    yield (
        f"for i in $(seq {attempts}); do timeout -k 10 {timeout_s} apt-get update && exit 0; "
        "pkill -x apt-get; sleep 5; done; echo 'apt-get update failed: check the mirror or proxy' >&2; exit 1"
    )
    yield f"mkdir -p /var/lib/apt/periodic && touch {LISTS_STAMP}"


@deploy("Bootstrap an LPSE host for Ansible")
def bootstrap(admin_user: str, admin_key: str) -> None:
    package_lists(name="Refresh the package lists (each try bounded)")
    # python3-apt: the apt module needs it for check mode (it installs it itself only on a real run).
    apt.packages(name="Install python3 and sudo (what Ansible needs)", packages=["python3", "python3-apt", "sudo"])
    server.user(
        name=f"Create admin user {admin_user} with its SSH key",
        user=admin_user,
        shell="/bin/bash",
        create_home=True,
        public_keys=[admin_key],
    )
    sudoers = files.put(
        name=f"Let {admin_user} use sudo without a password (key-only login)",
        src=StringIO(f"{admin_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
        dest=f"/etc/sudoers.d/90-{admin_user}",
        user="root",
        group="root",
        mode="440",
    )
    # Checked before root login goes away, so a broken sudoers cannot lock the operator out.
    server.shell(name="Check sudoers syntax", commands=["visudo -c -q"], _if=sudoers.did_change)
    root_off = files.put(
        name="Disable root SSH login",
        src=StringIO("# lpse-ops bootstrap: log in as the admin user, then sudo\nPermitRootLogin no\n"),
        dest=ROOT_LOGIN_DROPIN,
        mode="644",
    )
    systemd.service(
        name="Reload sshd",
        service="ssh",
        reloaded=True,
        _if=root_off.did_change,
    )


# pyinfra 3.10 types @deploy functions as operations, which mypy then misreads.
bootstrap(host.data.bootstrap_admin_user, host.data.bootstrap_admin_key)  # type: ignore[call-arg]
