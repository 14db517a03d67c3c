"""The env backend's variable names are injective: no two (project, service) pairs share one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions import InvalidParams, MissingCredentials
from consumer.credentials.env import (
    EnvCredentials,
    decode_name,
    parse_variable_name,
    variable_name,
)

# Names of the contract's alphabet that the old spelling folded together.
LOOKALIKES = ["demo-project", "demo_project", "DEMO.Project", "demo.project", "Demo-Project"]

names = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True).filter(
    lambda n: n not in {".", ".."}
)


def test_simple_names_keep_their_spelling() -> None:
    assert variable_name("demo", "slack") == "PURAIFY_CRED_DEMO__SLACK"
    assert variable_name("p1", "notion") == "PURAIFY_CRED_P1__NOTION"


def test_every_other_character_is_escaped_as_hex() -> None:
    assert variable_name("demo-project", "slack") == "PURAIFY_CRED_DEMO_2DPROJECT__SLACK"
    assert variable_name("a.b", "google_sheets") == "PURAIFY_CRED_A_2EB__GOOGLE_5FSHEETS"
    assert variable_name("Ab", "s") == "PURAIFY_CRED__41B__S"


def test_lookalike_projects_read_different_variables() -> None:
    spelled = {variable_name(project, "slack") for project in LOOKALIKES}
    assert len(spelled) == len(LOOKALIKES)


async def test_one_projects_variable_is_not_read_for_a_lookalike_project() -> None:
    env = EnvCredentials({variable_name("demo-project", "slack"): "xoxb-demo-project"})
    assert (await env.fetch("demo-project", "slack")).get_secret_value() == "xoxb-demo-project"
    for other in LOOKALIKES[1:]:
        with pytest.raises(MissingCredentials):
            await env.fetch(other, "slack")


def test_the_separator_cannot_be_forged_by_a_name() -> None:
    assert variable_name("x__y", "slack") != variable_name("x", "y__slack")
    assert variable_name("x_", "_slack") != variable_name("x", "__slack")
    assert "__" not in variable_name("x__y", "s").removeprefix("PURAIFY_CRED_")[:-3]


async def test_a_forged_separator_reads_nothing_of_the_other_pair() -> None:
    env = EnvCredentials({variable_name("x", "y__slack"): "xoxb-of-project-x"})
    with pytest.raises(MissingCredentials):
        await env.fetch("x__y", "slack")


def test_pairs_over_a_small_alphabet_never_collide() -> None:
    # Every name of up to 3 characters over the characters that can collide: exhaustive.
    alphabet = "aA_-.1"
    short = [
        "".join(chars)
        for n in (1, 2, 3)
        for chars in itertools.product(alphabet, repeat=n)
        if "".join(chars) not in {".", ".."}
    ]
    seen: dict[str, tuple[str, str]] = {}
    for project, service in itertools.product(short, ["s", "_s", "s_", "a__s", "S"]):
        name = variable_name(project, service)
        assert seen.setdefault(name, (project, service)) == (project, service)


@given(project=names, service=names)
def test_a_variable_name_gives_back_its_project_and_service(project: str, service: str) -> None:
    name = variable_name(project, service)
    assert parse_variable_name(name) == (project, service)
    assert name.isascii() and name.replace("_", "").isalnum() and name.upper() == name


@pytest.mark.parametrize("name", ["café", "a/b", "..", ".", "", "a b", "x" * 129])
async def test_names_it_cannot_map_are_refused(name: str) -> None:
    with pytest.raises(InvalidParams, match="not a valid project/service name"):
        await EnvCredentials({}).fetch(name, "slack")
    with pytest.raises(InvalidParams, match="not a valid project/service name"):
        await EnvCredentials({}).fetch("demo", name)


@pytest.mark.parametrize("encoded", ["", "a", "_2", "_ZZ", "A__B", "_2E"])
def test_what_is_not_an_encoding_is_refused(encoded: str) -> None:
    with pytest.raises(ValueError, match="not an encoded name"):
        decode_name(encoded)


async def test_the_old_spelling_is_named_but_not_read() -> None:
    env = EnvCredentials({"PURAIFY_CRED_DEMO_PROJECT__SLACK": "xoxb-old"})
    with pytest.raises(MissingCredentials) as refused:
        await env.fetch("demo-project", "slack")
    message = str(refused.value)
    assert "set PURAIFY_CRED_DEMO_2DPROJECT__SLACK" in message
    assert "PURAIFY_CRED_DEMO_PROJECT__SLACK is set but no longer read" in message
    assert "xoxb-old" not in message
