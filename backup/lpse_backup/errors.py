"""The one error base class of lpse-backup: every problem an operator can fix is an
`LpseBackupError` whose message says what is wrong and how to fix it. Each command catches this
base class (and only an unexpected bug gets past it), so no target's error can crash a command
that handles another's."""

from __future__ import annotations


class LpseBackupError(RuntimeError):
    """A problem the operator can fix; the message says how."""


class BackupError(LpseBackupError):
    """A backup, verify or restore step failed."""


class VerifyError(BackupError):
    """A copy was made but did not pass its check (verify, check, read back): it does not count."""


class MediaError(LpseBackupError):
    """A problem with the portable drive (absent, foreign, full, pulled out)."""


class OffroomError(LpseBackupError):
    """A problem with the off-room bucket (unreachable, wrong key, lock missing)."""


class StateError(LpseBackupError):
    """A state file on the server (the drive ledger, a verify stamp) is damaged."""
