"""Secrets stay out of messages in the odd cases too: a raw '@' in a password, a journal's old URLs, bad Unicode."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fallthrough
from fallthrough.errors import InvalidInput, JournalError
from fallthrough.journal import SqliteJournal
from fallthrough.urls import mask_url, parse_url
from fallthrough.validation import check_key

PASSWORD = "s3cret@Hostile-pa55word"
HIDDEN = "Hostile-pa55word"  # what SQLAlchemy reads as the host once the password ends at its '@'


def test_a_password_with_a_raw_at_sign_is_refused_without_showing_what_follows_it() -> None:
    with pytest.raises(InvalidInput, match="must be percent-encoded") as refused:
        fallthrough.connect(f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/app")
    assert HIDDEN not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{PASSWORD}@db/app",  # the rest of the password as the host
        "postgresql+psycopg://app:s3cret@Hostile/pa55word@db/app",  # as the database
        "postgresql+psycopg://app:s3cret@Hostile?pa55word=@db/app",  # as an option
        "postgresql+psycopg://app:pw@db/app?application_name=me@there",  # or an option's own '@'
        "postgresql+psycopg://svc/app:s3cret@db/app",  # a "/" in the user name: all of it the database
        "qdrant://svc/app:s3cret@db:6333",
        "postgresql+psycopg:///app:s3cret@db/app",  # a third '/': the credentials in the database
        "postgresql+psycopg://ops@corp/dba:s3cret@db/app",  # an '@' in the user name, before its '/'
        "postgresql+psycopg://ops@/app:?s3cret@db",  # the password as an option's name
    ],
)
def test_every_raw_at_sign_that_may_cut_credentials_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="percent-encoded"):
        parse_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql+psycopg://app:{urllib.parse.quote(PASSWORD, safe='')}@db/app", ("app", PASSWORD, "db")),
        ("postgresql+psycopg://app:pw@db/app?application_name=me%40there", ("app", "pw", "db")),
        ("postgresql+psycopg://user@corp:pw@db/app", ("user@corp", "pw", "db")),  # before the ':', as SQLAlchemy
        ("postgresql+psycopg://app@db/app?application_name=me@there", ("app", None, "db")),  # no password
        ("postgresql+psycopg://db/app?application_name=me@there", (None, None, "db")),
        ("postgresql+psycopg://db/a@b", (None, None, "db")),
        ("postgresql+psycopg://svc%2Fapp:s3cret@db/app", ("svc/app", "s3cret", "db")),
        ("postgresql+psycopg://u:p@[::1]:5432/app?host=/var/run/postgresql", ("u", "p", "::1")),
        ("sqlite:///exports/prices@2026.db", (None, None, None)),
    ],
)
def test_an_at_sign_that_cannot_be_part_of_a_password_is_taken(url: str, expected: tuple[object, ...]) -> None:
    parsed = parse_url(url)
    assert (parsed.username, parsed.password, parsed.host) == expected


URL_CHARACTERS = st.sampled_from([*"abcXYZ019", *"@:/?#%=&"])
SECRET = "SeKr3tToKeN"


@settings(max_examples=3000, deadline=None)
@given(
    user=st.text(URL_CHARACTERS, max_size=6),
    before=st.text(URL_CHARACTERS, max_size=3),
    after=st.text(URL_CHARACTERS, max_size=3),
    host=st.sampled_from(["db", "db:5432", "[::1]", ""]),
    shape=st.sampled_from(["{u}:{p}@{h}/app", "/{u}:{p}@{h}/app", "{h}/{u}:{p}@{h}/app", "{u}:{p}@{h}?sslmode=on"]),
)
def test_a_password_typed_into_a_url_never_shows_in_its_masked_form_or_its_refusal(
    user: str, before: str, after: str, host: str, shape: str
) -> None:
    """Whatever characters a user name and password hold, raw: SQLAlchemy reads them or the URL is refused."""
    url = "postgresql+psycopg://" + shape.format(u=user, p=before + SECRET + after, h=host)
    try:
        parsed = parse_url(url)
    except InvalidInput as refused:
        assert SECRET not in str(refused)
    else:
        assert SECRET not in mask_url(parsed)


def test_a_journal_names_an_earlier_stores_url_without_its_option_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal keeps a store's URL masked by option names only, so a password inside another option is there.

    The file must hold it (the identity must not change with the password),
    but the line saying that a later Store lacks that URL must not.
    """
    path = tmp_path / "hints.db"
    earlier = SqliteJournal(path)
    earlier.bind({"pg": f"postgresql+psycopg://app:***@db/app?options=-c+app.note%3D{HIDDEN}"})
    assert earlier.record("pg", "fallthrough_delete_batch", {"batch_id": uuid.uuid4()}, "records")
    earlier.close()
    later = SqliteJournal(path)
    try:
        with caplog.at_level(logging.WARNING, logger="fallthrough"):
            later.bind({"pg": "postgresql+psycopg://app:***@db/app"})
    finally:
        later.close()
    named = [record.getMessage() for record in caplog.records if "a URL this Store does not have" in record.message]
    assert named == [
        "the journal holds writes missed by postgresql+psycopg://app:***@db/app?options=*** (then named pg), "
        "a URL this Store does not have; they stay under that name"
    ]
    assert HIDDEN not in caplog.text


def test_a_journal_in_a_directory_that_is_not_there_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open the journal"):
        fallthrough.connect("sqlite://", journal=f"sqlite:///{tmp_path}/not-mounted/hints.db")


def test_a_lone_surrogate_is_refused_without_the_string_on_the_error() -> None:
    token = "sk-LIVE-TOKEN-abc\ud800"
    with pytest.raises(InvalidInput, match="lone surrogate") as refused:
        check_key(token)
    assert refused.value.__context__ is None and refused.value.__cause__ is None
