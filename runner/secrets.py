"""Named secrets: sets of environment variables a worker is started with.

They are kept in ``secrets.json`` in the runner's data dir, readable by the runner's user only,
written atomically. Their values go to workers' environments and nowhere else: the API shows
names, keys and dates, never values, and no message names a value.

``Secret.from_dict`` values are not kept: they come with the request that needs them, inside the
worker spec (``inline_secrets``, a field that is never serialized back), under a name of the form
``inline:<digest>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from nbremote.wire.http import DescribeSecret, WorkerSpec

from .errors import Refusal

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretError(Refusal):
    """A secret request the runner refuses; ``kind`` is the API error type."""


def check_values(values: dict[str, str]) -> None:
    """Refuse keys that are not environment variable names (naming the key, not the value)."""
    if not values:
        raise SecretError("ValidationError", "a secret needs at least one KEY=VALUE")
    bad = sorted(key for key in values if not KEY.match(key))
    if bad:
        raise SecretError(
            "ValidationError",
            f"not environment variable names: {', '.join(map(repr, bad))} "
            "(letters, digits and '_', not starting with a digit)",
        )


class Secrets:
    """Every named secret of a runner."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._secrets: dict[str, dict[str, Any]] = {}  # name -> values, created_at, updated_at
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the secrets file (if any)."""
        if self._path.exists():
            self._secrets = json.loads(self._path.read_text())

    def missing(self, name: str) -> str:
        """The message for a secret that does not exist, listing those that do."""
        names = ", ".join(sorted(self._secrets)) or "none"
        return (
            f"no secret named {name!r} (there are: {names}); create it with "
            f"`nbremote secrets set {name} KEY=VALUE ...`"
        )

    def describe(self, name: str) -> DescribeSecret:
        """A secret without its values.

        Raises:
            SecretError: there is none by that name.
        """
        secret = self._secrets.get(name)
        if secret is None:
            raise SecretError("NotFound", self.missing(name))
        return DescribeSecret(
            name=name,
            keys=sorted(secret["values"]),
            created_at=secret["created_at"],
            updated_at=secret["updated_at"],
        )

    def list(self) -> list[DescribeSecret]:
        """Every secret, without values, by name."""
        return [self.describe(name) for name in sorted(self._secrets)]

    async def _save(self) -> None:
        document = json.dumps(self._secrets)
        await asyncio.get_running_loop().run_in_executor(None, self._write, document)

    def _write(self, document: str) -> None:
        # Created readable by the runner's user only, then renamed over the old file.
        tmp = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self._path)
        finally:
            tmp.unlink(missing_ok=True)

    async def set(self, name: str, values: dict[str, str]) -> tuple[DescribeSecret, bool]:
        """Create or replace a secret; its description, and whether it is new."""
        if not NAME.match(name):
            raise SecretError(
                "ValidationError",
                f"{name!r} is not a secret name: use letters, digits, '.', '_', '-' (at most 64)",
            )
        check_values(values)
        async with self._lock:
            now = time.time()
            created = name not in self._secrets
            created_at = now if created else self._secrets[name]["created_at"]
            self._secrets[name] = {"values": values, "created_at": created_at, "updated_at": now}
            await self._save()
        return self.describe(name), created

    async def delete(self, name: str) -> None:
        """Remove a secret (workers started with it keep their environment)."""
        self.describe(name)
        async with self._lock:
            del self._secrets[name]
            await self._save()

    def environment(self, spec: WorkerSpec) -> dict[str, str]:
        """The environment variables a worker for ``spec`` gets from its secrets (later ones win).

        Raises:
            SecretError: a named secret does not exist (naming it).
        """
        env: dict[str, str] = {}
        for name in spec.secrets:
            if name.startswith("inline:"):
                values = spec.inline_secrets.get(name)
                if values is None:
                    raise SecretError(
                        "NotFound",
                        f"the values of {name} did not come with the request; pass the "
                        "Secret.from_dict(...) object again",
                    )
            else:
                if name not in self._secrets:
                    raise SecretError("NotFound", self.missing(name))
                values = self._secrets[name]["values"]
            env.update(values)
        return env
