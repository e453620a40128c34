"""Notebook-wide defaults of ``%%remote``'s worker flags, set by ``%remote config``.

ipyparallel's ``%pxconfig`` for nbremote: a notebook whose every cell wants ``--gpu A100 --pip
torch`` says so once. The rules, one per kind of flag:

- ``%remote config`` merges into the defaults: a single-valued flag (``--gpu``, ``--image``,
  ``--timeout``) replaces its default, a repeatable one adds to it (``--pip`` packages, ``--env``
  by key, ``--volume`` by mount path, ``--secret``); ``--reset`` clears them all first.
- A cell's own flag replaces that flag's default as a whole, as an argument of a Modal function
  replaces the app's: ``%%remote --pip six`` installs six, not six and the default packages; the
  defaults of the flags the cell does not give still apply.

The defaults are kept as the flags' text (quotes and all, as IPython splits a magic's line) and
converted by the magic at each cell, exactly as if the cell had given them: an ``--image`` or
``--secret`` variable is looked up when the cell runs.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from IPython.core.magic_arguments import argument

F = TypeVar("F", bound=Callable[..., Any])

# The flags that choose and shape a worker, shared by %%remote and %remote config.
_FLAGS = (
    argument("--timeout", type=float, metavar="S", help="stop the cell after S seconds"),
    argument("--env", action="append", default=[], metavar="K=V", help="environment variable"),
    argument("--gpu", metavar="SPEC", help="GPUs: any, A100, H100:2, 'H100|A100-80GB'"),
    argument("--volume", action="append", default=[], metavar="NAME:/path", help="mount a volume"),
    argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="a runner secret (or a notebook nr.Secret variable) in the environment",
    ),
    argument("--image", metavar="NAME", help="an nr.Image variable, or a cached image's id/name"),
    argument("--cpu", type=float, metavar="N", help="CPU cores the worker may use"),
    argument("--memory", type=int, metavar="MB", help="MiB of memory; beyond it the cell fails"),
    argument(
        "--pip",
        action="append",
        default=[],
        metavar='"PKG ..."',
        help="packages to install over the image (repeatable)",
    ),
)


def worker_flags(func: F) -> F:
    """Add the worker flags to a magic's parser (under ``magic_arguments``, like ``argument``)."""
    for flag in reversed(_FLAGS):  # decorators apply bottom-up; the parser lists them top-down
        func = flag(func)
    return func


@dataclass
class Defaults:
    """The worker flags that later ``%%remote`` cells get when they do not give them."""

    timeout: float | None = None
    cpu: float | None = None
    memory: int | None = None
    gpu: str | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # KEY -> its "KEY=VALUE" flag
    volume: dict[str, str] = field(default_factory=dict)  # mount path -> its "NAME:/path" flag
    secret: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)  # each --pip as given: "PKG ..."

    def add(self, args: Namespace) -> None:
        """Merge the (already checked) flags of one ``%remote config``."""
        for name in ("timeout", "cpu", "memory", "gpu", "image"):
            if getattr(args, name) is not None:
                setattr(self, name, getattr(args, name))
        self.env |= {pair.partition("=")[0]: pair for pair in args.env}
        self.volume |= {pair.partition(":")[2]: pair for pair in args.volume}
        self.secret += [name for name in args.secret if name not in self.secret]
        self.pip += args.pip

    def fill(self, args: Namespace) -> Namespace:
        """A cell's flags, with the defaults of those it does not give."""
        given = vars(args)
        filled = {
            "timeout": self.timeout,
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu": self.gpu,
            "image": self.image,
            "env": list(self.env.values()),
            "volume": list(self.volume.values()),
            "secret": list(self.secret),
            "pip": list(self.pip),
        }
        return Namespace(**given | {k: v for k, v in filled.items() if given[k] in (None, [])})

    def flags(self) -> str:
        """The defaults as the flags of the ``%remote config`` line that sets them."""
        single = {"gpu": self.gpu, "image": self.image}
        for name in ("timeout", "cpu", "memory"):
            if getattr(self, name) is not None:
                single[name] = f"{getattr(self, name):g}"
        pairs = [(name, value) for name, value in single.items() if value is not None]
        pairs += [("env", pair) for pair in self.env.values()]
        pairs += [("volume", pair) for pair in self.volume.values()]
        pairs += [("secret", name) for name in self.secret] + [("pip", pip) for pip in self.pip]
        return " ".join(f"--{name} {value}" for name, value in pairs)
