"""http_request's circuit name: `url_upstream` (cached by authority) is `upstream_of` exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions.base import upstream_of
from actions.builtin.http_request import url_upstream

_AUTHORITY_CHARS = st.sampled_from([*"abcXYZ019.-_:@[]%\t\n \\", "é", "\u3002"])
_TAIL_CHARS = st.sampled_from([*"ab/?#:@.%\\ \t", "é"])


@pytest.mark.parametrize(
    "url",
    [
        "http://api.test/d/50/key/1",
        "https://API.Test:8443/x?y=1#z",
        "http://127.0.0.1:8080",
        "http://[::1]:9000/path",
        "http://user:pw@host.test:81/p",
        "http://host.test?q=/x",
        "http://host.test#frag/x",
        "https://xn--caf-dma.test/",
        "http://caf\u00e9.test/x",
        "http://ho\tst.test/x",
        "http://:80/x",
        "http:///x",
        "mailto:someone@host.test",
        "ftp://files.test/x",
        "not a url",
        "http://[]@",
        "",
    ],
)
def test_known_urls_name_the_same_upstream(url: str) -> None:
    assert url_upstream(url) == _upstream_of(url)


def _upstream_of(url: str) -> str | None:
    try:
        return upstream_of(url)
    except IndexError:  # yarl on `http://[]@`: no upstream, not an engine bug
        return None


@given(
    st.sampled_from(["http://", "https://", "HTTP://", "http:/", ""]),
    st.text(_AUTHORITY_CHARS, max_size=20),
    st.text(_TAIL_CHARS, max_size=20),
)
def test_any_url_names_the_same_upstream_cached_or_not(
    scheme: str, authority: str, tail: str
) -> None:
    url = scheme + authority + tail
    assert url_upstream(url) == _upstream_of(url)
    assert url_upstream(url) == _upstream_of(url)  # and again, from the cache
