"""A URL's circuit name: `upstream_of` (parsed once per authority) is what yarl reads from the
whole URL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from actions.base import upstream_of

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
    assert upstream_of(url) == _whole_url_upstream(url)


def _whole_url_upstream(url: str) -> str | None:
    """The reference: yarl's host and explicit port of the whole URL."""
    try:
        parsed = URL(url)
        host = parsed.raw_host
    except (ValueError, TypeError, IndexError):  # IndexError: yarl on `http://[]@`
        return None
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return host if parsed.explicit_port is None else f"{host}:{parsed.explicit_port}"


@given(
    st.sampled_from(["http://", "https://", "HTTP://", "http:/", ""]),
    st.text(_AUTHORITY_CHARS, max_size=20),
    st.text(_TAIL_CHARS, max_size=20),
)
def test_any_url_names_the_same_upstream_cached_or_not(
    scheme: str, authority: str, tail: str
) -> None:
    url = scheme + authority + tail
    assert upstream_of(url) == _whole_url_upstream(url)
    assert upstream_of(url) == _whole_url_upstream(url)  # and again, from the cache
