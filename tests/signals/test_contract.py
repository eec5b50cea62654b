"""Contract test every registered signal type runs (an outside plug-in gets the same checks)."""

from __future__ import annotations

import pytest

from safeguard import registry
from safeguard.errors import InvalidInput
from safeguard.media import Media
from safeguard.signals import SignalType, compute_signals, get_signal_type
from tests.media_factory import image_bytes


@pytest.mark.parametrize("name", registry.signals.names())
def test_signal_type_contract(name: str) -> None:
    st = get_signal_type(name)
    assert isinstance(st, SignalType)
    assert st.name == name
    assert st.metric in ("exact", "hamming")
    assert st.examples, "every signal type ships example values"
    for ex in st.examples:
        v = st.validate(ex)
        assert st.validate(v) == v  # canonical form is stable
        assert st.distance(v, v) == 0
    with pytest.raises(InvalidInput):
        st.validate("not a signal value")
    media = Media.from_bytes(image_bytes(1))
    if st.applies_to(media):
        sigs = st.compute(media)
        assert sigs and all(s.type == name for s in sigs)
        for s in sigs:
            assert st.validate(s.value) == s.value


def test_compute_signals_covers_every_applicable_type() -> None:
    sigs = compute_signals(Media.from_bytes(image_bytes(2)))
    assert {s.type for s in sigs} >= {"sha256", "md5", "pdq"}
