"""One step runner for every command: a step is one dataset and target (or one chore, such as
reading the drive ledger); its error is printed with what to do and recorded, and the command
goes on with the next step. Only the step's own result decides; no error of one target can stop
the others, and a bug (an unexpected exception) is reported like an error, never a crash that
would lose the metrics of the steps that did succeed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lpse_backup import clock
from lpse_backup.errors import LpseBackupError, VerifyError
from lpse_backup.metrics import Result

Kind = Literal["backup", "drill", "restore"]


@dataclass(frozen=True)
class Outcome:
    """What an action reports beyond success: bytes stored, whether the copy was read back
    (None: not this time), and, for a copy that is not fresh, the time of what it holds."""

    bytes: int = 0
    verified: bool | None = None
    verify_s: float = 0.0
    as_of: float | None = None
    detail: str = ""
    skipped: bool = False


@dataclass
class Steps:
    out: Callable[[str], None] = print
    results: list[Result] = field(default_factory=list)

    def pair(self, dataset: str, target: str, action: Callable[[], Outcome], kind: Kind = "backup") -> Result:
        """One dataset to (a backup) or from (a drill, a restore) one target."""
        name = f"[{dataset} -> {target}]" if kind == "backup" else f"[{kind} {dataset} <- {target}]"
        self.out(f"{name} ...")
        t0 = time.monotonic()
        try:
            o = action()
        except VerifyError as e:
            self.out(f"{name} FAILED its check, not counted: {e}")
            o, ok = Outcome(verified=False), False
        except LpseBackupError as e:
            self.out(f"{name} FAILED: {e}")
            o, ok = Outcome(), False
        except Exception as e:  # a bug must not cost the other copies or the metrics
            self.out(f"{name} FAILED (unexpected {e.__class__.__name__}): {e}")
            o, ok = Outcome(), False
        else:
            ok = True
            took = time.monotonic() - t0
            if o.skipped:
                self.out(f"{name} skipped: {o.detail}")
            elif kind != "backup":
                self.out(f"{name} ok in {took:.1f} s: {o.detail}")
            else:
                checked = {True: "verified", None: "NOT verified this run", False: "verify FAILED"}[o.verified]
                self.out(
                    f"{name} ok in {took:.1f} s, {o.bytes / 2**20:.1f} MiB, {checked}"
                    + (f" ({o.verify_s:.1f} s)" if o.verified else "")
                    + (f": {o.detail}" if o.detail else "")
                )
        r = Result(
            dataset,
            target,
            ok,
            clock.now().timestamp(),
            time.monotonic() - t0,
            o.bytes,
            o.verified if ok else (False if o.verified is False else None),
            o.verify_s,
            o.as_of,
            o.skipped,
        )
        self.results.append(r)
        return r

    def chore(self, what: str, action: Callable[[], None]) -> bool:
        """A step that is not a copy (reading the ledger, recording the drive): on error, say so
        and go on."""
        try:
            action()
        except LpseBackupError as e:
            self.out(f"{what}: {e}")
            return False
        except Exception as e:
            self.out(f"{what} FAILED (unexpected {e.__class__.__name__}): {e}")
            return False
        return True
