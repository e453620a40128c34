"""``nr.Secret``: environment variables a worker gets, without writing them in the notebook.

``Secret.from_name`` names a secret kept by the runner (``nbremote secrets set NAME K=V``);
``Secret.from_dict``, ``Secret.from_local_environ`` and ``Secret.from_dotenv`` carry their
values along with each request that starts a worker, and the runner never stores them. Values
never appear in a repr, a pickle or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import NbremoteError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Inline secrets are named by a keyed digest of their values: equal dicts share warm workers
# in this process, and the digest (shown in worker listings) says nothing about the values.
_DIGEST_KEY = os.urandom(32)


class Secret:
    """Environment variables for a function's or cell's workers.

    Example:
        >>> key = Secret.from_dict({"API_KEY": "sk-..."})
        >>> key
        <nbremote.Secret from_dict keys=['API_KEY']>
        >>> @nr.remote(secrets=[Secret.from_name("hf-token")])  # doctest: +SKIP
        ... def whoami():
        ...     return os.environ["HF_TOKEN"][:3]
    """

    def __init__(self, name: str, values: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._values = dict(values) if values is not None else None

    @classmethod
    def from_name(cls, name: str) -> Secret:
        """The secret called ``name`` on the runner (looked up when a worker starts).

        Raises:
            NbremoteError: ``name`` is not a secret name.
        """
        if not _NAME.match(name):
            raise NbremoteError(
                f"{name!r} is not a secret name: use letters, digits, '.', '_' and '-' (at most 64)"
            )
        return cls(name)

    @classmethod
    def from_dict(cls, env_dict: Mapping[str, str | None]) -> Secret:
        """A secret made of these variables, sent with each request and never stored.
        Entries whose value is None are left out (as in Modal).

        Raises:
            NbremoteError: a key is not an environment variable name, or a value is not a
                string (naming the key, never the value).
        """
        values = {key: value for key, value in env_dict.items() if value is not None}
        for key, value in values.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise NbremoteError(f"secret key {key!r} is not an environment variable name")
            if not isinstance(value, str):
                raise NbremoteError(
                    f"the value of secret key {key!r} is a {type(value).__name__}, not a string"
                )
        digest = hmac.new(_DIGEST_KEY, repr(sorted(values.items())).encode(), hashlib.sha256)
        return cls(f"inline:{digest.hexdigest()[:16]}", values)

    @classmethod
    def from_local_environ(cls, env_keys: Iterable[str]) -> Secret:
        """These variables of this process's environment, as `from_dict`.

        Raises:
            NbremoteError: a variable is not set here (naming it, never a value).

        Example:
            >>> Secret.from_local_environ(["HOME"])  # sent with each request, never stored
            <nbremote.Secret from_dict keys=['HOME']>
        """
        keys = [env_keys] if isinstance(env_keys, str) else list(env_keys)
        missing = [key for key in keys if key not in os.environ]
        if missing:
            raise NbremoteError(
                f"Secret.from_local_environ: {', '.join(missing)} not set in this environment; "
                "export it before starting Python (or leave it out of the list)"
            )
        return cls.from_dict({key: os.environ[key] for key in keys})

    @classmethod
    def from_dotenv(
        cls, path: str | os.PathLike[str] | None = None, *, filename: str = ".env"
    ) -> Secret:
        """The variables of a ``.env`` file, as `from_dict`.

        Args:
            path: the file; or a folder holding ``filename``; or a ``.py`` file next to it
                (``from_dotenv(__file__)``); default: ``filename`` in the current folder.
            filename: the file's name when ``path`` is not the file itself.

        Raises:
            NbremoteError: the file does not exist, or a line is not ``KEY=VALUE``.
        """
        where = Path(path) if path is not None else Path.cwd()
        if where.is_dir():
            where = where / filename
        elif where.suffix == ".py":
            where = where.parent / filename
        if not where.is_file():
            raise NbremoteError(f"no .env file at {where}")
        return cls.from_dict(parse_dotenv(where.read_text().splitlines(), str(where)))

    @property
    def inline(self) -> bool:
        """Whether the values travel with requests (from_dict / from_dotenv)."""
        return self._values is not None

    @property
    def keys(self) -> list[str]:
        """The variable names of an inline secret (a named one's are known to the runner)."""
        return sorted(self._values or {})

    def __repr__(self) -> str:
        if self._values is not None:
            return f"<nbremote.Secret from_dict keys={self.keys}>"
        return f"<nbremote.Secret {self.name!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (say, captured by a function) without its values: they only travel in specs.
        return (Secret, (self.name,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.name, self._values) == (
            other.name,
            other._values,
        )

    def __hash__(self) -> int:
        return hash(self.name)


def parse_dotenv(lines: Iterable[str], where: str = ".env") -> dict[str, str]:
    """``KEY=VALUE`` lines (``export``, quotes and ``#`` comments as in shells) as a dict.

    Raises:
        NbremoteError: a line is not ``KEY=VALUE`` (naming its number, not its content).
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            raise NbremoteError(f"{where}, line {number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def spec_secrets(secrets: Iterable[Secret]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The names a worker spec carries, and the values of the inline ones."""
    names: list[str] = []
    inline: dict[str, dict[str, str]] = {}
    for secret in secrets:
        if not isinstance(secret, Secret):
            raise NbremoteError(
                f"secrets= takes nr.Secret objects, got a {type(secret).__name__}; "
                "use nr.Secret.from_name(...) or nr.Secret.from_dict({...})"
            )
        names.append(secret.name)
        if secret._values is not None:
            inline[secret.name] = secret._values
    return names, inline
