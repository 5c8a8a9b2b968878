"""The text toolkit: which separator a line uses."""

import pytest

from movierec.data.parsing import sniff_separator


@pytest.mark.parametrize(
    ("line", "sep"),
    [("a\tb\tc", "\t"), ("a,b,c", ","), ("a;b;c", ";"), ("a|b|c", "|"), ("a::b::c", "::")],
)
def test_sniff_separator(line, sep):
    assert sniff_separator(line) == sep
