"""The IPython magics: ``%%remote`` runs a cell on the runner, ``%remote ...`` manages it.

Thin by design: flags are parsed here, the work is done by `nbremote._cell` and
`nbremote._session`. User mistakes raise `UsageError`; remote output is re-published in the
cell through ``shell.display_pub``.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from argparse import Namespace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import _session, _sessions, _status, gpu, job
from ._analysis import analyse_cell
from ._cell import CellOptions, CellOutcome, raise_for, run_cell
from ._defaults import Defaults, worker_flags
from ._namespace import unpack
from ._output import show
from ._promote import job_flags, job_settings, promote_cell
from ._session import Request
from .cli._utils import format_bytes, render_table
from .errors import NbremoteError, RunnerError, SerializationError
from .image import Image
from .secret import Secret
from .wire.http import ListGpusResponse, ListSessionsResponse
from .wire.jobs import JobSettings
from .wire.mounts import check_mount_paths
from .wire.ops import Op

if TYPE_CHECKING:  # imported when a cell is served: the kernel does not load deploys for cells
    from ._serve_cell import Route

SUBCOMMANDS = (
    *("connect", "status", "pull", "push", "reset", "sessions", "attach", "config", "jobs"),
    "endpoints",
)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = (name.strip().strip("'\"") for name in value.split(","))  # `--in ''` means none
    return [name for name in names if name]


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _volumes(pairs: list[str]) -> dict[str, str]:
    mounts: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition(":")
        if not sep or not name or not path:
            raise UsageError(f"--volume takes NAME:/path, got {pair!r}")
        if path in mounts:
            raise UsageError(f"--volume mounts two volumes at {path}; one volume per path")
        mounts[path] = name
    try:
        check_mount_paths(mounts)
    except ValueError as exc:
        raise UsageError(f"--volume: {exc}") from None
    return mounts


def _packages(pips: list[str]) -> list[str] | None:
    """The packages of each ``--pip "PKG ..."``; None without ``--pip``."""
    if not pips:
        return None
    packages = [package for pip in pips for package in shlex.split(pip.strip("'\""))]
    if not packages:
        raise UsageError('--pip takes packages: --pip "six==1.16.0 idna==3.7"')
    return packages


def _secrets(names: list[str], namespace: dict[str, Any]) -> list[Secret]:
    # A notebook variable holding a Secret (from_dict, from_dotenv) goes as it is.
    secrets = []
    for name in names:
        value = namespace.get(name)
        try:
            secrets.append(value if isinstance(value, Secret) else Secret.from_name(name))
        except NbremoteError as exc:
            raise UsageError(f"--secret: {exc}") from None
    return secrets


@magics_class
class RemoteMagics(Magics):
    """``%%remote`` and ``%remote connect|status|pull|push|reset|sessions|attach|config|jobs``
    and ``%remote endpoints``."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        # Names whose newest value stayed on the worker, with the id of the (older) local value
        # then: while that local value is unchanged, it must not overwrite the remote one.
        self.remote_only: dict[str, int] = {}
        # Of those, the ones not yet told about, with why they stayed (see `before_cell`).
        self.untold: dict[str, str] = {}
        # The worker settings of the last %%remote cell: %remote pull/push talk to that worker.
        self.last_worker = CellOptions()
        # Worker flags of later %%remote cells that do not give their own (%remote config).
        self.defaults = Defaults()

    @property
    def ipython(self) -> InteractiveShell:
        """The shell these magics are registered in."""
        assert self.shell is not None
        return self.shell

    # -- output ------------------------------------------------------------------------------

    def _stays_remote(self, name: str) -> bool:
        return self.remote_only.get(name) == id(self.ipython.user_ns.get(name))

    def _report(self, outcome: CellOutcome) -> None:
        for name in outcome.bound:
            self.remote_only.pop(name, None)
            self.untold.pop(name, None)
        for name, reason in outcome.stayed_remote.items():
            if name not in self.remote_only:  # told once while it stays there, if ever
                self.untold[name] = reason
            self.remote_only[name] = id(self.ipython.user_ns.get(name))

    def before_cell(self, info: Any) -> None:
        """Before a local cell (IPython's ``pre_run_cell``): tell what stayed on the worker,
        once, if this cell reads it here. Said at the cell that made it, it would be noise in a
        notebook that only ever uses it in ``%%remote`` cells (a progress bar, a formatter)."""
        cell = getattr(info, "raw_cell", None)
        if not self.untold or not cell or cell.lstrip().startswith("%%remote"):
            return
        try:
            reads = analyse_cell(cell).reads
        except SyntaxError:
            return
        for name in reads:
            reason = self.untold.pop(name, None)
            if reason is not None and self._stays_remote(name):
                print(
                    f"nbremote: {name!r} stayed on the worker: {reason}. Use it in %%remote "
                    f"cells, or turn it into something picklable and `%remote pull {name}`",
                    file=sys.stderr,
                )

    def _image(self, name: str | None, packages: list[str] | None) -> Image | None:
        """The image of ``--image`` (a variable, else a cached image) with ``--pip`` on top."""
        if name is None and packages is None:
            return None
        image = Image.debian_slim()
        if name is not None:
            name = name.strip("'\"")
            value = self.ipython.user_ns.get(name)
            image = value if isinstance(value, Image) else Image.from_id(name)
        if packages is not None:
            if not image.steps:
                raise UsageError(
                    f"--pip cannot add to {name!r}: use the nr.Image it was built from"
                )
            image = image.pip_install(*packages)
        if name is not None and image.steps:
            _session.current_session().ensure_image(image, name if not packages else None)
        return image

    # -- the magic -----------------------------------------------------------------------------

    @magic_arguments()
    @argument("--in", dest="inputs", metavar="A,B", help="ship exactly these names")
    @argument("--out", dest="outputs", metavar="X,Y", help="bring back exactly these names")
    @argument("--fresh", action="store_true", help="start a new worker (empty namespace)")
    @worker_flags  # --timeout --env --gpu --volume --secret --image --pip (%remote config too)
    @job_flags  # --schedule --endpoint --public --name --tz --retries --notify ...
    @line_cell_magic
    def remote(self, line: str, cell: str | None = None) -> None:
        """Run the cell on the runner (with ``--schedule``: store it as a job there, not run;
        with ``--endpoint``: serve it over HTTP, not run), or manage it: ``%remote
        connect|status|pull|push|reset|sessions|attach|config|jobs|endpoints``.

        Example::

            %%remote --timeout 600 --image img
            model.fit(X, y)
        """
        if cell is None:
            self._subcommand(line)
            return
        args = self.defaults.fill(parse_argstring(self.remote, line))
        route = None  # checked, as the job's settings, before anything is sent
        if args.endpoint is not None or args.public:
            from ._serve_cell import endpoint_route

            route = endpoint_route(args)
        settings = job_settings(args)
        options = dataclasses.replace(
            self._worker_options(args),
            inputs=_names(args.inputs),
            outputs=_names(args.outputs),
            fresh=args.fresh,
            image=self._image(args.image, _packages(args.pip)),
        )
        missing = [name for name in options.inputs or [] if name not in self.ipython.user_ns]
        if missing:
            raise UsageError(f"--in names {', '.join(missing)}, not defined in this notebook")
        if settings is not None or route is not None:  # promoted, not run: nothing here changes
            self._promote(f"# %%remote {line}\n{cell}", options, settings, route)
            return
        if options.fresh:
            self.remote_only.clear()
            self.untold.clear()
        self.last_worker = dataclasses.replace(options, inputs=None, outputs=None, fresh=False)
        # The magic line stays as a comment, so remote tracebacks count lines as the cell does.
        code = f"# %%remote {line}\n{cell}"
        # The prompt's number (In[n]): IPython has counted the next cell before running this one.
        running = self.ipython.displayhook.exec_result
        count = running.execution_count if running is not None else self.ipython.execution_count
        with _status.cell():  # "starting a worker" while the cell waits, gone once it shows
            outcome = run_cell(
                _session.current_session(),
                code,
                self.ipython.user_ns,
                options,
                show,
                hidden=self.ipython.user_ns_hidden,
                stays_remote=self._stays_remote,
                execution_count=count,
            )
        self._report(outcome)

    def _promote(
        self, code: str, options: CellOptions, settings: JobSettings | None, route: Route | None
    ) -> None:
        """Store the cell as a job (``--schedule``) or serve it (``--endpoint``)."""
        hidden, namespace = self.ipython.user_ns_hidden, self.ipython.user_ns
        session = _session.current_session()
        if settings is not None:
            promote_cell(session, code, namespace, options, settings, hidden=hidden)
            return
        from ._serve_cell import serve_cell

        assert route is not None
        serve_cell(session, code, namespace, options, route, hidden=hidden)

    def _worker_options(self, args: Namespace) -> CellOptions:
        """The worker flags but the image, checked: a bad one is a UsageError naming it."""
        for flag in ("timeout", "cpu", "memory"):
            if getattr(args, flag) is not None and getattr(args, flag) <= 0:
                raise UsageError(f"--{flag} must be positive, got {getattr(args, flag):g}")
        try:
            gpus = gpu.parse(args.gpu.strip("'\"") if args.gpu else None, where="--gpu")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return CellOptions(
            gpu=gpus,
            timeout=args.timeout,
            env=_env(args.env),
            volumes=_volumes(args.volume),
            secrets=_secrets(args.secret, self.ipython.user_ns),
            cpu=args.cpu,
            memory=args.memory,
        )

    # -- %remote subcommands --------------------------------------------------------------------

    def _subcommand(self, line: str) -> None:
        verb, rest = [*line.split(maxsplit=1), "", ""][:2]
        if verb not in SUBCOMMANDS:
            raise UsageError(
                f"%remote takes one of: {', '.join(SUBCOMMANDS)} (or use %%remote over a cell)"
            )
        method = getattr(self, f"_{verb}")  # parsed by the parser its decorators built
        try:
            args = parse_argstring(method, rest)
        except UsageError as exc:
            # IPython's usage reads "::\n\n  %remote pull NAME ...": one line of it is enough.
            usage = " ".join(method.parser.format_usage().split()).removeprefix(":: ")
            raise UsageError(f"{exc}; usage: {usage}") from None
        method(args)

    @magic_arguments("remote connect")
    @argument("url", metavar="URL", help="the runner's URL")
    @argument("--token", help="its token (else NBREMOTE_TOKEN)")
    def _connect(self, args: Namespace) -> None:
        """Point this kernel at another runner."""
        session = _session.connect(args.url, args.token)
        self.remote_only.clear()
        self.untold.clear()
        print(f"nbremote: connected to {session.client.url}")

    @magic_arguments("remote status")
    def _status(self, args: Namespace) -> None:
        """Show the runner, this notebook's session, its workers and what they hold."""
        session = _session.current_session()
        described = session.describe()
        print(f"runner   {session.client.url}  (workers run Python {described.python})")
        print(f"session  {session.id}" + (f"  {session.notebook}" if session.notebook else ""))
        if not described.workers:
            print("worker   none yet: the next %%remote cell starts one")
        for worker in described.workers:
            state = "busy" if worker.busy else "idle"
            rss = format_bytes(worker.rss_bytes)
            print(
                f"worker   pid {worker.pid}, up {worker.uptime_s:.0f} s, "
                f"{rss} resident, {worker.cells_run} cells, {state}"
            )
            for obj in worker.objects:
                print(f"  {obj.name:<20} {obj.type:<20} {format_bytes(obj.nbytes)}")
        if any(worker.gpus for worker in described.workers):
            self._gpus(session)

    def _gpus(self, session: _session.RemoteSession) -> None:
        """The GPUs this notebook's workers hold, with their latest readings."""
        listed = session.client.call("GET", "/api/v1/gpus", response=ListGpusResponse)
        for device in listed.gpus:
            holder = device.holder
            if holder is None or holder.session != session.id:
                continue
            used, total = device.memory_used_bytes, device.memory_total_bytes
            busy = device.utilization_percent
            figures = f"{format_bytes(used)} of {format_bytes(total)} used" + (
                f", {busy:.0f}% busy" if busy is not None else ""
            )
            who = "cells" if holder.kind == "cell" else holder.name
            print(f"gpu      {device.index} {device.name}: {figures} (for {who})")

    @magic_arguments("remote pull")
    @argument("names", nargs="+", metavar="NAME", help="a name bound on the worker")
    @argument("--job", metavar="JOB", help="from the last run of this scheduled job instead")
    def _pull(self, args: Namespace) -> None:
        """Bring names from the last cell's worker (or a job's last run) into the notebook."""
        names: list[str] = args.names
        if args.job is not None:
            try:
                self.ipython.user_ns.update(job.pull(args.job, names))
            except NbremoteError as exc:
                raise UsageError(getattr(exc, "message", str(exc))) from None
            return
        session = _session.current_session()
        last = self.last_worker
        spec = last.spec()
        header = {"op": Op.PULL, "names": names, "spec": spec.wire()}
        done, buffers = session.call(Request(header, spec_key=spec.key(), image=last.image), show)
        raise_for(done)
        values, failed = unpack(done["outputs"], buffers, self.ipython.user_ns)
        self.ipython.user_ns.update(values)
        stayed = {item["name"]: item["reason"] for item in done["unreturnable"]} | failed
        self._report(CellOutcome(list(values), [], stayed))

    @magic_arguments("remote push")
    @argument("names", nargs="+", metavar="NAME", help="a name defined in this notebook")
    def _push(self, args: Namespace) -> None:
        """Send names of the notebook to the last cell's worker."""
        names: list[str] = args.names
        missing = [name for name in names if name not in self.ipython.user_ns]
        if missing:
            raise UsageError(f"not defined in this notebook: {', '.join(missing)}")
        options = dataclasses.replace(self.last_worker, inputs=names, outputs=[], timeout=None)
        try:
            run_cell(_session.current_session(), "", self.ipython.user_ns, options, show)
        except SerializationError as exc:
            raise UsageError(str(exc)) from None
        for name in names:
            self.remote_only.pop(name, None)

    @magic_arguments("remote reset")
    def _reset(self, args: Namespace) -> None:
        """Drop the remote namespace: the next cell starts a new worker."""
        _session.current_session().reset()
        self.remote_only.clear()
        self.untold.clear()
        print("nbremote: the remote namespace was dropped; the next cell starts a new worker")

    @magic_arguments("remote sessions")
    def _sessions(self, args: Namespace) -> None:
        """List this notebook's sessions on the runner (* marks this kernel's): a detached one,
        of a kernel that is gone, can be taken over with ``%remote attach ID``."""
        session = _session.current_session()
        listed = session.client.call("GET", "/api/v1/sessions", response=ListSessionsResponse)
        mine = [s for s in listed.sessions if session.notebook in (None, s.notebook)]
        if not mine:
            print("nbremote: no sessions of this notebook on the runner")
            return
        rows = [_sessions.row(described, session.id) for described in mine]
        print(_sessions.table(rows))

    @magic_arguments("remote attach")
    @argument("session", metavar="ID", help="a session's id, or its start (%%remote sessions)")
    def _attach(self, args: Namespace) -> None:
        """Use a gone kernel's session from now on: its workers, its live remote namespace."""
        session = _session.current_session()
        listed = session.client.call("GET", "/api/v1/sessions", response=ListSessionsResponse)
        try:
            found = _sessions.find(listed.sessions, args.session)
            described = session.attach(found.id)
        except (LookupError, RunnerError) as exc:
            raise UsageError(getattr(exc, "message", str(exc))) from None
        self.remote_only.clear()
        self.untold.clear()
        names = sorted({obj.name for worker in described.workers for obj in worker.objects})
        print(
            f"nbremote: this kernel now uses session {described.id[:8]}"
            + (f" of {described.notebook}" if described.notebook else "")
            + f" ({len(described.workers)} workers"
            + (f"; remote names: {', '.join(names)}" if names else "")
            + "). Its names stay on the worker: use them in %%remote cells, or %remote pull them"
        )

    @magic_arguments("remote jobs")
    def _jobs(self, args: Namespace) -> None:
        """List the scheduled jobs on the runner (`nr.Job(NAME)` for one)."""
        listed = job.Job.list()
        if not listed:
            print(
                "nbremote: no scheduled jobs; promote a cell with %%remote --schedule SPEC --name N"
            )
            return
        now = datetime.now(UTC)
        print(render_table(job.JOB_COLUMNS, [job.job_row(j, now) for j in listed]))

    @magic_arguments("remote endpoints")
    def _endpoints(self, args: Namespace) -> None:
        """List the web endpoints on the runner (`nr.Endpoint(NAME)` for one, with its token)."""
        from .endpoint import ENDPOINT_COLUMNS, Endpoint, endpoint_row

        listed = Endpoint.list()
        if not listed:
            print("nbremote: no endpoints; serve a function with ep = f.serve(name=...)")
            return
        print(render_table(ENDPOINT_COLUMNS, [endpoint_row(e) for e in listed]))

    @magic_arguments("remote config")
    @argument("--reset", action="store_true", help="clear the defaults (before setting any given)")
    @worker_flags
    def _config(self, args: Namespace) -> None:
        """Set defaults of the worker flags for later %%remote cells; alone, show them. A cell's
        own flag replaces that flag's default (nbremote/_defaults.py has the rules)."""
        self._worker_options(args)  # checked now, as a cell would check them
        _packages(args.pip)
        if args.reset:
            self.defaults = Defaults()
        self.defaults.add(args)
        given = [value for name, value in vars(args).items() if name != "reset"]
        if args.reset or any(value not in (None, []) for value in given):
            return
        shown = self.defaults.flags()
        print(
            f"nbremote: later %%remote cells default to {shown}"
            if shown
            else "nbremote: no defaults; set some with %remote config --gpu A100 --pip torch"
        )


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext nbremote``)."""
    magics = RemoteMagics(ipython)
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.before_cell)
