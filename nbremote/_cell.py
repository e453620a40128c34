"""One ``%%remote`` cell, from analysis to binding, independent of how it was invoked.

1. The cell's AST says which names it reads (inputs) and binds, mutates or deletes (outputs).
2. Inputs present in the namespace are serialized as one set (`nbremote.wire.aliases`): each on
   its own, but a reference to another input, or a view of its array, travels by that input's
   name, so that what they share is shared on the worker. A value the worker already holds goes
   by hash alone.
3. The worker runs the cell; its output frames go to the caller's ``on_frame`` as they come.
4. On success the worker sends back the outputs and, without ``--out``, every input whose hash
   the cell changed (a method call, a write through a view, an iterator's step) and every name
   the cell bound or deleted where the analysis cannot see (a star import, ``globals()``,
   ``exec``); again as one set. They are bound all at once, written into the notebook's own
   objects where the type allows (`nbremote._namespace.in_place`), so that other names of the
   same object see the change. With ``--out``, exactly the names it gives come back.
5. On failure nothing is bound, and the remote error is raised; the worker's copies the cell
   changed are replaced by the notebook's at the next cell (their hashes no longer match).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from ._analysis import analyse_cell
from ._imports_ahead import import_ahead, output_after, star_imported
from ._ipython_syntax import parse_cell
from ._namespace import Packed, pack, unpack
from ._output import inline_settings, notebook_shell, settle_result
from ._session import OnFrame, RemoteSession, Request
from ._sources import imported_modules, local_sources, modules_of
from ._spec import worker_spec
from .errors import SerializationError, WorkerDied, remote_error
from .secret import Secret
from .wire.codec import Header
from .wire.http import GpuRequest, WorkerSpec
from .wire.names import RESULT, travels
from .wire.ops import Op


@dataclass
class CellOptions:
    """The ``%%remote`` flags that shape one run."""

    inputs: list[str] | None = None
    outputs: list[str] | None = None
    fresh: bool = False
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    gpu: GpuRequest | None = None
    volumes: dict[str, str] = field(default_factory=dict)  # mount path -> volume name
    secrets: list[Secret] = field(default_factory=list)
    image: Any = None  # an nbremote.Image, or None for the runner's own environment
    cpu: float | None = None  # cores (--cpu)
    memory: int | None = None  # MiB (--memory)

    def spec(self) -> WorkerSpec:
        """The spec of the worker these flags ask for."""
        return worker_spec(self)


@dataclass
class CellOutcome:
    """What a successful cell changed in the namespace, and what it could not bring back."""

    bound: list[str]
    deleted: list[str]
    stayed_remote: dict[str, str]


def plan(
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    hidden: Container[str],
    stays_remote: Callable[[str], bool],
) -> tuple[list[str], list[str], list[str]]:
    """Inputs, outputs and deletions of a cell; ``--in``/``--out`` override the analysis."""
    try:
        names = analyse_cell(code)
    except SyntaxError:
        return [], [], []  # the worker reports it, with the cell's line numbers
    inputs = (
        options.inputs
        if options.inputs is not None
        else [
            name
            for name in names.reads
            if name in namespace and travels(name, hidden) and not stays_remote(name)
        ]
    )
    if options.outputs is not None:
        outputs = options.outputs
    else:
        outputs = [
            name for name in dict.fromkeys([*names.binds, *names.mutates]) if travels(name, hidden)
        ]
    return inputs, outputs, list(names.deletes)


@dataclass
class ExecRequest:
    """The ``exec`` frame a cell sends, with what a ``need`` for its inputs is answered from."""

    header: Header
    packed: Packed
    spec_key: str
    inputs: list[str]


def exec_request(
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    known: Callable[[str], Container[str]],
    *,
    hidden: Container[str] = (),
    stays_remote: Callable[[str], bool] = lambda name: False,
    execution_count: int | None = None,
) -> ExecRequest:
    """Build the ``exec`` request of ``code``: its inputs packed, those whose hash is in
    ``known(spec key)`` by hash alone (a promotion knows every hash: all go by hash).

    Raises:
        SerializationError: an input cannot be pickled (naming it, and the way out).
    """
    inputs, outputs, deletes = plan(code, namespace, options, hidden, stays_remote)
    spec = options.spec()
    spec_key = spec.key()
    try:
        packed = pack(inputs, namespace, known(spec_key))
    except SerializationError as exc:
        raise SerializationError(
            exc.name,
            f"{exc.reason}. Leave it out with --in (list the names the cell needs), "
            "or create it inside the remote cell",
        ) from None
    header: Header = {
        "op": Op.EXEC,
        "code": code,
        "inputs": packed.items,
        "outputs": outputs,
        "deletes": deletes,
        "spec": spec.wire(),
        "fresh": options.fresh,
        "timeout": options.timeout,
        "execution_count": execution_count,
        # Without --out, also what the cell bound or deleted where the analysis cannot see.
        "discover": options.outputs is None,
    }
    star = star_imported(code)
    if star:  # what `from m import *` bound comes back as imports, not pickles
        header["star"] = star
    sources = _cell_sources(code, inputs, namespace)
    if sources:
        header["sources"] = sources
    inline = inline_settings(notebook_shell())  # figures drawn as the notebook's would be
    if inline:
        header["inline"] = inline
    return ExecRequest(header, packed, spec_key, inputs)


def run_cell(
    session: RemoteSession,
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    on_frame: OnFrame,
    *,
    hidden: Container[str] = (),
    stays_remote: Callable[[str], bool] = lambda name: False,
    execution_count: int | None = None,
) -> CellOutcome:
    """Run ``code`` on the session's worker and bind its outputs into ``namespace``.

    Raises:
        SerializationError: an input cannot be pickled (nothing was sent).
        RemoteError: the cell raised remotely (nothing was bound).
        WorkerDied: the worker exited while running it.
    """
    built = exec_request(
        code,
        namespace,
        options,
        session.held,
        hidden=hidden,
        stays_remote=stays_remote,
        execution_count=execution_count,
    )
    packed = built.packed
    request = Request(built.header, packed.buffers, packed, built.spec_key, image=options.image)
    importing = import_ahead(code)  # here, while the worker runs the cell
    done, buffers = session.call(request, output_after(importing, on_frame))
    raise_for(done)
    if importing is not None:
        importing.join()
    values, failed = unpack(done["outputs"], buffers, namespace)
    if RESULT in values:  # the last expression's value, for _ and Out[n]
        settle_result(namespace, values.pop(RESULT))
    namespace.update(values)
    for name in done["deleted"]:
        namespace.pop(name, None)
    stayed = {item["name"]: item["reason"] for item in done["unreturnable"]} | failed
    stayed.pop(RESULT, None)  # an unpicklable result: Out[n] keeps how it was shown
    return CellOutcome(list(values), list(done["deleted"]), stayed)


def _cell_sources(code: str, inputs: list[str], namespace: Mapping[str, Any]) -> list[Header]:
    """Files of the notebook's folder that the cell imports or its inputs come from."""
    try:
        modules = imported_modules(parse_cell(code))
    except SyntaxError:
        modules = []
    return local_sources([*modules, *modules_of(inputs, namespace)])


def raise_for(done: Header) -> None:
    """Raise the error a failed ``done`` carries."""
    if done["ok"]:
        return
    error = done["error"]
    if error["ename"] == "UsageError":  # a magic's: IPython shows it as one line, as locally
        raise UsageError(error["evalue"])
    if error["ename"] == "WorkerDied":
        raise WorkerDied(
            f"{error['evalue']}. The next cell starts a new worker with an empty namespace"
        )
    traceback = error["traceback"] or [f"{error['ename']}: {error['evalue']}"]
    raise remote_error(error["ename"], error["evalue"], traceback, error.get("builtin"))
