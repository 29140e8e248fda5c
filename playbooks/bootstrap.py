"""pyinfra deploy: make a bare Debian host (root SSH only) ready for Ansible.

Creates the admin user with its SSH key and passwordless sudo, installs python3 and sudo,
then disables root SSH login. Run it through playbooks/bootstrap_inventory.py, which reads
the Ansible inventory and connects as root the first time and as the admin user afterwards
(so a second run works, and changes nothing):

    LPSE_INVENTORY=inventories/<site> LPSE_BOOTSTRAP_KEY=~/.ssh/id_ed25519.pub \\
        pyinfra -y playbooks/bootstrap_inventory.py playbooks/bootstrap.py
"""

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

ROOT_LOGIN_DROPIN = "/etc/ssh/sshd_config.d/00-lpse-bootstrap.conf"


@deploy("Bootstrap an LPSE host for Ansible")
def bootstrap(admin_user: str, admin_key: str) -> None:
    apt.packages(
        name="Install python3 and sudo (what Ansible needs)",
        packages=["python3", "sudo"],
        update=True,
        cache_time=86400,
    )
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
