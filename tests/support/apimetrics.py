"""The API server's own request counters (``apiserver_request_total``), for tests that count
what the operator asks of the API, and for the benchmarks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def samples(text: str, name: str) -> Iterable[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name`` in Prometheus text format."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            yield dict(_LABEL.findall(match.group(2) or "")), float(match.group(3))


def apiserver_requests(kube: Any) -> Counter[tuple[str, str, str]]:
    """``apiserver_request_total`` by (verb, resource, subresource), summed over codes."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[tuple[str, str, str]] = Counter()
    for labels, value in samples(text, "apiserver_request_total"):
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] += int(value)
    return counts
