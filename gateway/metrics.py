"""Counters and gauges in the Prometheus text format, without a dependency."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]

HELP = {
    "omnigw_inbound_messages_total": "Customer messages stored, by channel.",
    "omnigw_inbound_duplicates_total": "Inbound messages recognised as already stored.",
    "omnigw_outbound_sent_total": "Outbound messages the channel accepted.",
    "omnigw_outbound_failed_total": "Outbound messages that failed for good.",
    "omnigw_outbound_deferred_total": "Outbound send attempts deferred for a retry.",
    "omnigw_http_requests_total": "HTTP API requests, by status class.",
    "omnigw_webchat_sockets": "Open webchat sockets.",
    "omnigw_sse_clients": "Open event streams.",
    "omnigw_event_log_last_id": "Newest event id in the durable log.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._counters[name][tuple(sorted(labels.items()))] += amount

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._counters):
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for labels, value in sorted(self._counters[name].items()):
                lines.append(f"{name}{_fmt(labels)} {value:g}")
        for name in sorted(self._gauges):
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {self._gauges[name]():g}")
        return "\n".join(lines) + "\n"


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"
