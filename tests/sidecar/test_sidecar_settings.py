"""Settings: every wrong value is refused at start with the variable and flag named."""

from __future__ import annotations

import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cacore.request import San
from sidecar.settings import OPTIONS, SettingsError, load, markdown_table
from sidecar.state import State, render_metrics

BASE = {"CERT_SIDECAR_COMMON_NAME": "app.example.com"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sidecar.md"

BAD = [
    ("CERT_SIDECAR_LIFETIME_DAYS", "abc", "whole number"),
    ("CERT_SIDECAR_LIFETIME_DAYS", "400", "the CA's maximum"),
    ("CERT_SIDECAR_SANS", "IP:1.2.3", "IP_ADDRESS"),
    ("CERT_SIDECAR_SANS", '[{"type": "DNS_NAME"}]', "sans[0]"),
    ("CERT_SIDECAR_SANS", "[not json", "JSON"),
    ("CERT_SIDECAR_PURPOSES", "code_signing", "client_auth or server_auth"),
    ("CERT_SIDECAR_EXTENDED_KEY_USAGES", "NOPE", "dotted OID"),
    ("CERT_SIDECAR_COUNTRY", "England", "limit is 2"),
    ("CERT_SIDECAR_KEY_ALGORITHM", "dsa", "ecdsa-p256"),
    ("CERT_SIDECAR_FUNCTION", "not a function!", "function name"),
    ("CERT_SIDECAR_ROLE_ARN", "admin", "IAM role ARN"),
    ("AWS_ENDPOINT_URL_LAMBDA", "localhost:9000", "http(s) URL"),
    ("CERT_SIDECAR_ENDPOINT_URL", "http://127.0.0.1:70000", "port from 1 to 65535"),
    ("CERT_SIDECAR_ENDPOINT_URL", "http://[::1", "http(s) URL"),
    ("AWS_REGION", "eu west", "region name"),
    ("AWS_DEFAULT_REGION", "EU-WEST-2", "region name"),
    ("CERT_SIDECAR_KEY_MODE", "0644", "every user"),
    ("CERT_SIDECAR_FILE_MODE", "rw-r--r--", "octal"),
    ("CERT_SIDECAR_UID", "nobody", "numeric uid"),
    ("CERT_SIDECAR_KEY_FILE", "../etc/passwd", "plain file name"),
    ("CERT_SIDECAR_COMBINED_FILE", "tls.crt", "must all differ"),
    ("CERT_SIDECAR_RENEWAL_POINT", "soon", "duration"),
    ("CERT_SIDECAR_RENEWAL_POINT", "1.5", "between 0 and 1"),
    ("CERT_SIDECAR_JITTER", "1.5", "below 1"),
    ("CERT_SIDECAR_BACKOFF_BASE", "10m", "at most the cap"),
    ("CERT_SIDECAR_RELOAD_SIGNAL", "SIGNOPE", "signal"),
    ("CERT_SIDECAR_RELOAD_URL", "ftp://x", "http(s) URL"),
    ("CERT_SIDECAR_RELOAD_COMMAND", "kill 'unclosed", "cannot split"),
    ("CERT_SIDECAR_LISTEN", "8081", "host:port"),
    ("CERT_SIDECAR_LOG_LEVEL", "loud", "debug, info"),
    ("CERT_SIDECAR_MODE", "forever", "run, once, check or wait"),
]


@pytest.mark.parametrize("variable, value, hint", BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_a_wrong_setting_names_its_variable_and_flag(variable, value, hint):
    with pytest.raises(SettingsError) as caught:
        load([], {**BASE, variable: value})
    message = str(caught.value)
    named, sep, _ = message.partition(" (--")
    assert sep and variable in named.split(" or "), message  # the variable actually set
    assert hint in message and "\n" not in message


def test_run_needs_a_common_name_but_check_does_not():
    with pytest.raises(SettingsError, match=r"^CERT_SIDECAR_COMMON_NAME \(--common-name\): is req"):
        load([], {})
    assert load(["check"], {}).request is None


def test_flags_win_over_variables_and_aws_variables_are_honoured():
    settings = load(
        ["once", "--lifetime-days", "7", "--region", "eu-west-2"],
        {
            **BASE,
            "CERT_SIDECAR_LIFETIME_DAYS": "3",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9",
            "AWS_PROFILE": "ci",
            "CERT_SIDECAR_SANS": '{"DNS_NAME": ["a.example.com"], "IP_ADDRESS": "10.0.0.1"}',
            "CERT_SIDECAR_RENEWAL_POINT": "720h",
            "CERT_SIDECAR_RELOAD_SIGNAL": "usr1",
            "CERT_SIDECAR_SERVERLESS_CA_NAMES": "true",
            "CERT_SIDECAR_COMBINED_FILE": "combined.pem",
            "CERT_SIDECAR_MIN_RENEWAL_INTERVAL": "0",
        },
    )
    assert settings.mode == "once"
    assert settings.request.lifetime_days == 7
    assert (settings.ca.region, settings.ca.endpoint_url, settings.ca.profile) == (
        "eu-west-2",
        "http://127.0.0.1:9",
        "ci",
    )
    assert settings.request.sans == (
        San("DNS_NAME", "a.example.com"),
        San("IP_ADDRESS", "10.0.0.1"),
    )
    assert settings.renewal_point.before_expiry == timedelta(hours=720)
    assert settings.reload.signal == signal.SIGUSR1
    assert settings.names.private() == {"tls.key", "client-key.pem", "combined.pem"}
    assert settings.min_renewal_interval == timedelta(0)


def test_the_docs_table_lists_every_option():
    text = DOCS.read_text()
    assert markdown_table() in text, "regenerate with: python -m sidecar.settings"
    for option in OPTIONS:
        assert option.variables[0] in text and option.flag in text


def test_metrics_are_valid_prometheus_text():
    from datetime import UTC, datetime

    state = State(not_after=datetime(2030, 1, 1, tzinfo=UTC), ready=True)
    state.issuances["DoesNotExist"] += 1
    state.issuances["Renewing"] += 2
    state.failures['Weird"Reason'] += 1
    state.last_issuance_seconds = 0.25
    families = {f.name: f for f in text_string_to_metric_families(render_metrics(state))}
    issued = {s.labels["reason"]: s.value for s in families["cert_sidecar_issuances"].samples}
    assert issued == {"DoesNotExist": 1.0, "Renewing": 2.0}
    assert families["cert_sidecar_failures"].samples[0].labels == {"reason": 'Weird"Reason'}
    not_after = families["cert_sidecar_certificate_not_after_timestamp_seconds"].samples[0]
    assert not_after.value == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert re.search(r"^cert_sidecar_ready 1\.0$", render_metrics(state), re.M)


def test_help_lists_every_setting_with_its_variable():
    import subprocess
    import sys

    from sidecar.settings import OPTIONS

    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option.variables[0] in result.stdout


def test_the_cas_maximum_lifetime_is_a_setting_defaulting_to_365():
    base = {"CERT_SIDECAR_COMMON_NAME": "app.example.com"}
    with pytest.raises(SettingsError) as caught:
        load([], {**base, "CERT_SIDECAR_LIFETIME_DAYS": "400"})
    assert "CERT_SIDECAR_LIFETIME_DAYS" in str(caught.value) and "365" in str(caught.value)
    settings = load(
        [], {**base, "CERT_SIDECAR_LIFETIME_DAYS": "400", "CERT_SIDECAR_MAX_LIFETIME_DAYS": "730"}
    )
    assert settings.request is not None and settings.request.lifetime_days == 400
    assert settings.ca.max_lifetime_days == 730
