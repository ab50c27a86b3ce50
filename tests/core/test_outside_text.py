"""Text from outside is made safe once, in the core: a CA's message, a subject, a file name
cannot move a terminal's cursor, recolour it or flood a log."""

import pytest

from cacore.errors import CAFunctionError, CARefused, InvalidRequest
from cacore.request import CertificateRequest, San, Subject, validate
from cacore.text import for_terminal, printable, unsafe_character


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain words", "plain words"),
        ("\x1b[31mred", "\\u001b[31mred"),
        ("bell\x07", "bell\\u0007"),
        ("del\x7f", "del\\u007f"),
        ("line\nbreak", "line\\u000abreak"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("café ✓", "café ✓"),
    ],
)
def test_control_format_and_surrogate_characters_are_escaped(text, shown):
    assert printable(text) == shown


def test_long_text_is_cut_with_a_note():
    assert printable("x" * 1000, 10) == "x" * 10 + "... (990 more characters)"


def test_a_block_keeps_its_lines():
    assert for_terminal("one\ntwo\x1b") == "one\ntwo\\u001b"


def test_the_ca_words_reach_errors_escaped_and_bounded():
    refused = CARefused("no \x1b]0;owned\x07 way" + "!" * 5000)
    assert unsafe_character(refused.message) is None and len(refused.message) < 1100
    crashed = CAFunctionError("Err\x1b", "boom\x1b[2J")
    assert "\x1b" not in str(crashed) and "\\u001b[2J" in crashed.error_message


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (CertificateRequest(Subject("app\x1b[2J.example.com")), "common_name"),
        (CertificateRequest(Subject("app", organization="Ex\u202eample")), "organization"),
        (CertificateRequest(Subject("app", locality="lone \ud800")), "locality"),
        (
            CertificateRequest(Subject("app"), sans=(San("DNS_NAME", "a\x00.example.com"),)),
            "sans[0]",
        ),
    ],
)
def test_names_with_control_characters_are_refused(request_, field):
    with pytest.raises(InvalidRequest) as caught:
        validate(request_)
    assert caught.value.field == field and "control character" in caught.value.message
