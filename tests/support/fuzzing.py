"""Hypothesis settings for the client-side fuzz tests (cacore, sidecar, certs-gitops, ca-cert).

The suite runs a bounded number of examples per property (a few seconds in all); a long run by
hand sets ``LCC_FUZZ_EXAMPLES`` (docs/fuzzing.md records what the long runs found):

    LCC_FUZZ_EXAMPLES=20000 python -m pytest -q --timeout=0 -k fuzz \
        tests/core tests/sidecar tests/gitops
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(examples: int) -> settings:
    """A bounded budget, no deadline (a loaded CI machine is slow, not wrong), no example
    database (each run starts fresh), and no health check that only says the input is big."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
        ],
    )


EXAMPLES = int(os.environ.get("LCC_FUZZ_EXAMPLES", "80"))
FUZZ = fuzz_settings(EXAMPLES)

# Text as hostile input comes: any code point (controls, surrogates, bidi overrides, NUL), mixed
# with text made of the characters the parsers split on, so both paths get exercised.
any_character = st.characters(exclude_categories=())
hostile_text = st.one_of(
    st.text(alphabet=any_character, max_size=80),
    st.text(alphabet=st.sampled_from('abc.-*:,=/@"[]{} 0123456789%hmsdIPDNURLEMAIL'), max_size=40),
)
# JSON values of any shape, small.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hostile_text, inner, max_size=5),
    max_leaves=20,
)
