"""A small client for the Prometheus HTTP API (standard library only: the status board runs
next to Prometheus on the monitoring host)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or refused the query; the message says which."""


class QueryRefusedError(PrometheusError):
    """The query itself is wrong (bad syntax, too many series): the server answered, with why."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (epoch seconds, value)


@dataclass(frozen=True)
class Prometheus:
    url: str  # http://127.0.0.1:9090
    timeout: float = 30

    def _get(self, path: str, params: dict[str, str]) -> dict:
        full = f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(full, timeout=self.timeout) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                detail = json.load(e).get("error", str(e))
            except ValueError:
                detail = str(e)
            raise (QueryRefusedError if 400 <= e.code < 500 else PrometheusError)(
                f"Prometheus refused {params.get('query', path)!r}: {detail}"
            ) from e
        except (OSError, ValueError) as e:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {e}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus: {body.get('error', body)}")
        return dict(body["data"])

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query; each series has one point (all its raw samples for a range selector)."""
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            t, v = data["result"]
            return [Series({}, [(float(t), float(v))])]
        if data["resultType"] == "matrix":  # a range selector: the raw samples, as stored
            return [Series(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
        return [Series(r["metric"], [(float(r["value"][0]), float(r["value"][1]))]) for r in data["result"]]

    def value(self, expr: str, at: float | None = None, default: float | None = None) -> float | None:
        """The single value of an instant query (None, or `default`, if it returned nothing)."""
        found = self.query(expr, at)
        return found[0].points[0][1] if found else default

    def query_range(self, expr: str, start: float, end: float, step: float, nocache: bool = False) -> list[Series]:
        """`nocache`: VictoriaMetrics shifts a range of more than 50 points to multiples of its step
        for its cache (a day's step would start at 07:00 WIB) unless told not to."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        params |= {"nocache": "1"} if nocache else {}
        data = self._get("/api/v1/query_range", params)
        return [Series(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
