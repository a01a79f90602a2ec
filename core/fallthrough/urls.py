"""Backend URLs: parsing, naming, and keeping their secrets out of text.

URLs are parsed by SQLAlchemy's :func:`~sqlalchemy.engine.make_url`, so
``name+driver://user:password@host:port/database?option=value`` means what
it means in SQLAlchemy. Nothing here imports a driver.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import InvalidInput

SECRET_QUERY_KEYS = frozenset({"api_key", "apikey"})
"""Query options whose values are masked in every URL, whatever its backend.

So is every option whose name holds one of :data:`SECRET_QUERY_WORDS`. A
plugin adds its own (libpq's ``scram_client_key``, say) with the
``fallthrough_secret_url_keys`` hook; the core never names a backend's.
"""
SECRET_QUERY_WORDS = ("password", "secret", "token")
"""An option whose name holds one of these (``sslpassword``, ``access_token``) is a secret."""
MASK = "***"
MAX_PORT = 65535


def parse_url(url: str | URL) -> URL:
    """Parse ``url``; the error never repeats it, since it may hold a password.

    A port outside 1 to 65535 is refused here, so that a mistyped URL is
    invalid input at ``connect`` rather than an outage at the first call.
    """
    if isinstance(url, URL):
        parsed = url
    elif not isinstance(url, str):
        raise InvalidInput(f"a backend URL must be a str or sqlalchemy URL, not {type(url).__name__}")
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise InvalidInput(
                f"cannot parse the backend URL (scheme {scheme!r}); expected name[+driver]://..., with any "
                "'@', ':', '/', '?' or '#' in the user name or password percent-encoded "
                "(urllib.parse.quote(password, safe=''))"
            ) from None
    if isinstance(url, str) and _credentials_misread(url, parsed):
        raise InvalidInput(
            f"the {parsed.drivername}:// URL has an '@' that may cut its user name or password: an '@' in the "
            "password, a '/' in the user name, and any '@' after them must be percent-encoded (%40, %2F: "
            "urllib.parse.quote(value, safe='')), or part of them is read as the host, the database or an option"
        )
    if isinstance(url, str):
        valueless = _valueless_options(url)
        if valueless:
            raise InvalidInput(
                f"the {parsed.drivername}:// URL gives the options {valueless} no value; give each a value, or "
                "leave it out (a value lost on its way through a configuration would otherwise mean the default)"
            )
    if parsed.port is not None and not 1 <= parsed.port <= MAX_PORT:
        raise InvalidInput(f"the {parsed.drivername}:// URL's port must be 1 to {MAX_PORT}, got {parsed.port}")
    return parsed


_USER_INFO = re.compile(r"[^:/]*(?::[^@]*)?@")
"""The user name and password ahead of the host, as SQLAlchemy's URL pattern reads them."""


def _after_user_info(url: str) -> str:
    """``url``'s text after the scheme and the user name and password, as SQLAlchemy finds them."""
    rest = url.split("://", 1)[1]
    user_info = _USER_INFO.match(rest)
    return rest[user_info.end() :] if user_info else rest


def _valueless_options(url: str) -> list[str]:
    """The options ``url``'s query names with nothing after them (``?timeout=``, ``?timeout``).

    SQLAlchemy drops them while parsing, so a plugin would never see them: the
    query is found as SQLAlchemy finds it, at the first ``?`` after the user
    name and password (which may hold a ``?`` of its own).
    """
    query = _after_user_info(url).partition("?")[2]
    options = (part.partition("=") for part in query.split("&") if part)
    return [name for name, _, value in options if not value]


_HOST_PORT = re.compile(r"(?:\[[^\]/?]*\]|[^:/?@\[]*)(?::[0-9]*)?")
"""A host (a name, an address, an IPv6 address in brackets) and its port, at the start of a URL's remaining text."""


def _credentials_misread(url: str, parsed: URL) -> bool:
    """Whether a raw ``@`` in ``url`` may have cut its user name or password, which messages would then show.

    SQLAlchemy reads the user name up to a ``:`` or ``/``, and the password
    up to the first ``@`` after it. A password with a raw ``@`` is cut there,
    the rest of it read as the host (or the database, or an option); a user
    name with a raw ``/`` (or credentials after a third ``/``) are not read
    as such at all, and ``user:password@host`` lands in the database or the
    options. Either way every message and ``repr`` shows them in the clear.
    So a raw ``@`` is refused anywhere after a password, and, where no
    password was read, after a ``:`` past the host and port (where a
    password not read as one would stand). An ``@`` that belongs there reads
    the same percent-encoded (``%40``).
    """
    after = _after_user_info(url)
    if parsed.password is not None:
        return "@" in after
    host_port = _HOST_PORT.match(after)
    beyond_host = after[host_port.end() if host_port else 0 :]
    colon = beyond_host.find(":")
    return colon >= 0 and "@" in beyond_host[colon + 1 :]


def backend_name(url: URL) -> str:
    """The backend part of the scheme: ``postgresql`` for ``postgresql+psycopg``."""
    return url.get_backend_name()


def plugin_names(url: URL) -> list[str]:
    """Entry point names to try for ``url``, most specific first.

    ``qdrant+edge://`` tries ``qdrant.edge`` and then ``qdrant``, as
    SQLAlchemy maps ``a+b://`` to the dialect ``a.b``.
    """
    name = url.get_backend_name()
    if "+" in url.drivername:
        return [f"{name}.{url.get_driver_name()}", name]
    return [name]


def _is_secret(key: str, extra: Collection[str]) -> bool:
    folded = key.lower()
    return (
        folded in SECRET_QUERY_KEYS
        or any(word in folded for word in SECRET_QUERY_WORDS)
        or any(folded == name.lower() for name in extra)
    )


def secrets_of(url: URL, secret_keys: Collection[str] = ()) -> list[str]:
    """The password and secret query values of ``url``, for redaction.

    :param url: the backend URL.
    :param secret_keys: query options that hold secrets besides
        :data:`SECRET_QUERY_KEYS` (what the plugin declared); compared
        case-insensitively.
    """
    found = [url.password] if url.password else []
    for key, value in url.query.items():
        if _is_secret(key, secret_keys):
            found.extend([value] if isinstance(value, str) else value)
    return [str(secret) for secret in found if secret]


def mask_url(url: URL, secret_keys: Collection[str] = (), *, inside_options: bool = True) -> str:
    """``url`` as text with its password and secret query values masked.

    :param url: the backend URL.
    :param secret_keys: as for :func:`secrets_of`.
    :param inside_options: also mask those secrets where they stand as a
        whole word inside another option's value (libpq's ``options=-c
        password=...``), as error text masks them. False gives the text
        that names the store (a durable journal's identity), which must not
        change with the password.
    """
    hidden = [key for key in url.query if _is_secret(key, secret_keys)]
    masked = url.update_query_dict({key: MASK for key in hidden}) if hidden else url
    if inside_options:
        secrets = secrets_of(url, secret_keys)
        if secrets:
            masked = masked.update_query_dict(
                {key: _mask_words(value, secrets) for key, value in masked.query.items() if key not in hidden}
            )
    # The query string percent-encodes the mask; show it as in the password.
    return masked.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def _mask_words(value: str | tuple[str, ...], secrets: Collection[str]) -> str | tuple[str, ...]:
    """``value`` with each secret masked where it is a whole word: between spaces, ``=``, ``,``, quotes or the ends.

    Whole words only: a short password ("a", "1") would otherwise mask its
    letters throughout harmless options.
    """
    if not isinstance(value, str):
        return tuple(str(_mask_words(item, secrets)) for item in value)
    for secret in sorted(set(secrets), key=len, reverse=True):
        value = re.sub(rf"(?<![^\s=,'\"]){re.escape(secret)}(?![^\s,'\"])", MASK, value)
    return value


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


_QUOTED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"`<>(){}]+")


def redact_factory_text(text: str, url: URL) -> str:
    """``text`` from a plugin's factory, each URL it quotes shown without its password and option values.

    The factory runs before its plugin can declare its secret options
    (``fallthrough_secret_url_keys``), so which values are secret is not
    known yet: a URL quoted whole, the careless way to say what was refused,
    loses every option value. ``url``'s known secrets (:func:`secrets_of`)
    are masked first, where they stand as words (not inside ``connect_timeout``
    for a password ``timeout``), as given and percent-encoded. An
    option's value quoted alone stays (``sslmode='requird'``): a factory
    must not quote a secret option's value on its own.
    """
    secrets = secrets_of(url)
    # The secrets first: a password rendered with a space in it (as SQLAlchemy writes one) would cut the URL short.
    for secret in sorted({*secrets, *(quote(s, safe="") for s in secrets), *map(quote_plus, secrets)}, key=len)[::-1]:
        text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", MASK, text)
    return _QUOTED_URL.sub(_quoted_url_masked, text)


def _quoted_url_masked(match: re.Match[str]) -> str:
    return without_option_values(match.group())


def without_option_values(quoted: str) -> str:
    """A URL's text with its password and every option value masked; one that cannot be parsed keeps its scheme only.

    For URL text whose secrets are not known any more: a durable journal's
    identity of a store an earlier process had (masked by option names only,
    so a password may stand inside another option's value).
    """
    try:
        parsed = make_url(quoted)
    except (ArgumentError, ValueError):
        return quoted.split("://", 1)[0] + "://" + MASK
    masked = parsed.update_query_dict({key: MASK for key in parsed.query}) if parsed.query else parsed
    # The query string percent-encodes the mask; show it as in the password.
    return masked.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


__all__ = [
    "MASK",
    "SECRET_QUERY_KEYS",
    "backend_name",
    "mask_url",
    "parse_url",
    "plugin_names",
    "redact",
    "redact_factory_text",
    "secrets_of",
]
