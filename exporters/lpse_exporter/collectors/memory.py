"""RAM and swap from /proc/meminfo, memory pressure from /proc/pressure/memory (R6)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lpse_exporter.collectors.base import read_text

# /proc/meminfo field -> (metric suffix, help)
FIELDS = {
    "MemTotal": ("total", "Physical memory"),
    "MemAvailable": ("available", "Memory available for new work without swapping"),
    "MemFree": ("free", "Memory not used at all"),
    "Buffers": ("buffers", "Block device buffers"),
    "Cached": ("cached", "Page cache"),
    "SwapTotal": ("swap_total", "Swap space"),
    "SwapFree": ("swap_free", "Unused swap space"),
}


def parse_meminfo(text: str) -> dict[str, int]:
    """Field -> bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return values


def parse_pressure(text: str) -> dict[str, float]:
    """kind (some/full) -> total stall seconds."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for f in fields:
            if f.startswith("total="):
                out[kind] = int(f[6:]) / 1e6
    return out


class MemorySource:
    name = "memory"

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root

    def read(self) -> Iterable[Metric]:
        info = parse_meminfo(read_text(self.root / "proc/meminfo"))
        for field, (suffix, help_) in FIELDS.items():
            if field in info:
                yield GaugeMetricFamily(f"lpse_memory_{suffix}_bytes", help_, value=info[field])
        if "MemTotal" in info and "MemAvailable" in info:
            yield GaugeMetricFamily(
                "lpse_memory_used_bytes",
                "Memory in use (total minus available)",
                value=info["MemTotal"] - info["MemAvailable"],
            )
        psi = self.root / "proc/pressure/memory"
        if psi.exists():  # kernels without PSI: the metric is absent, not zero
            stall = CounterMetricFamily(
                "lpse_memory_pressure_stall_seconds", "Time tasks stalled waiting for memory", labels=["kind"]
            )
            for kind, seconds in parse_pressure(read_text(psi)).items():
                stall.add_metric([kind], seconds)
            yield stall
