"""What an upkeep action did: counts before and after, what it removed, how long it took.

Every maintenance action (local or on Trino) returns an :class:`ActionReport`; a run over several
tables and actions returns a :class:`MaintenanceReport`, which prints as a table for people and has an
exit code for schedulers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ActionReport", "MaintenanceReport"]


@dataclass
class ActionReport:
    """One action on one table.

    ``files``/``bytes`` count the live data files of the current snapshot; ``manifests`` its manifests.
    ``removed_files``/``removed_bytes`` are the objects deleted from storage (expired or orphaned).
    ``details`` holds per-item facts (e.g. orphan paths with sizes, compacted or skipped partitions).
    """

    action: str
    table: str
    engine: str = "local"
    dry_run: bool = False
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    manifests_before: int = 0
    manifests_after: int = 0
    snapshots_before: int = 0
    snapshots_after: int = 0
    removed_files: int = 0
    removed_bytes: int = 0
    rows_deleted: int = 0
    seconds: float = 0.0
    error: str | None = None
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def snapshots_removed(self) -> int:
        return max(self.snapshots_before - self.snapshots_after, 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "snapshots_removed": self.snapshots_removed}

    def __str__(self) -> str:
        state = "ok" if self.ok else f"FAILED: {self.error}"
        dry = " (dry run)" if self.dry_run else ""
        return (
            f"{self.action:18} {self.table:28} files {self.files_before:>6} → {self.files_after:<6} "
            f"{self.bytes_before / 1e6:>9,.1f} → {self.bytes_after / 1e6:<9,.1f} MB  "
            f"manifests {self.manifests_before:>4} → {self.manifests_after:<4} "
            f"snapshots -{self.snapshots_removed:<4} removed {self.removed_files} files "
            f"({self.removed_bytes / 1e6:,.1f} MB)  {self.seconds:6.2f}s  {state}{dry}"
        )


@dataclass
class MaintenanceReport:
    """Every action of one maintenance run; ``exit_code`` is 0 when all succeeded, 1 otherwise."""

    actions: list[ActionReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.actions)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "actions": [a.to_dict() for a in self.actions],
        }

    def __str__(self) -> str:
        lines = [str(a) for a in self.actions] or ["nothing to do"]
        failed = sum(1 for a in self.actions if not a.ok)
        lines.append(
            f"{len(self.actions)} action(s), {failed} failed, {self.seconds:.2f}s"
            + ("" if failed == 0 else "  — see the FAILED lines above")
        )
        return "\n".join(lines)
