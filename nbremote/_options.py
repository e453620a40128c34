"""A remote function's settings: validated from keyword arguments, as JSON and back.

`function_options` turns ``@app.function(...)`` keywords into `FunctionOptions`; a deployed app
stores them as JSON (`settings_of`), and `Function.from_name` gets them back (`lookup`,
`options_from`). Apps, functions and classes all build on this module, which imports none of
them: a function looked up by name knows its app by name only (`DeployedApp`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from . import _session
from ._deprecation import rename_deprecated
from ._spec import resource_limit, worker_spec
from .errors import NbremoteError, NotFoundError, RunnerError
from .gpu import parse
from .image import Image
from .retries import Retries
from .secret import Secret, spec_secrets
from .volume import mounts_of
from .wire.http import DescribeApp, DescribeAppObject, FunctionScaling, GpuRequest

if TYPE_CHECKING:  # imported when a schedule is given: croniter is not every app's to load
    from .wire.schedule import Cron, Period


class AppLike(Protocol):
    """What a function needs of its app: its name (`nbremote.App`, or `DeployedApp`)."""

    @property
    def name(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class DeployedApp:
    """An app deployed on the runner, known here by its name only (``from_name`` lookups)."""

    name: str


@dataclasses.dataclass(frozen=True)
class FunctionOptions:
    """The settings of a remote function (see `App.function`)."""

    env: dict[str, str] = dataclasses.field(default_factory=dict)
    volumes: dict[str, str] = dataclasses.field(default_factory=dict)  # mount path -> volume
    secrets: tuple[Secret, ...] = ()
    timeout: float | None = None
    retries: Retries | None = None
    max_containers: int | None = None
    min_containers: int = 0
    scaledown_window: float = 60.0
    max_inputs: int = 1
    gpu: GpuRequest | None = None
    image: Image | None = None
    schedule: Cron | Period | None = None  # a deployed app fires it (a job of the runner's)
    web: dict[str, Any] | None = None  # a web decorator's settings: the runner serves it
    cpu: float | None = None  # cores; enforced as a limit
    memory: int | None = None  # MiB; a call beyond it fails
    block_network: bool = False
    single_use_containers: bool = False
    restrict_modal_access: bool = False

    def __post_init__(self) -> None:
        if self.max_inputs < 1:
            raise ValueError(f"max_inputs={self.max_inputs!r}: must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout={self.timeout!r}: must be a positive number of seconds")
        if self.max_containers is not None and self.max_containers < 1:
            raise ValueError(f"max_containers={self.max_containers!r}: must be at least 1")
        if self.min_containers < 0:
            raise ValueError(f"min_containers={self.min_containers!r}: must not be negative")
        if self.scaledown_window <= 0:
            raise ValueError(f"scaledown_window={self.scaledown_window!r}: must be positive")

    def pool(self, app_name: str, name: str) -> dict[str, Any]:
        """The runner's pool for the function (or class instance) ``name`` with these settings."""
        spec = worker_spec(
            self,
            block_network=self.block_network,
            single_use=self.single_use_containers,
            restrict_modal_access=self.restrict_modal_access,
        )
        scaling = FunctionScaling(
            max_containers=self.max_containers,
            min_containers=self.min_containers,
            scaledown_window=self.scaledown_window,
            max_inputs=self.max_inputs,
        )
        key = f"{app_name}:{name}:{spec.key()}:{scaling.model_dump_json()}"
        return {"key": key, "spec": spec.wire(), "scaling": scaling.model_dump()}


def function_options(
    settings: dict[str, Any], where: str, target: object = None
) -> FunctionOptions:
    """Validated function settings from keyword arguments (old Modal names accepted), with
    ``@nr.concurrent`` on ``target`` taken into account."""
    settings = rename_deprecated(settings, where, stacklevel=4)
    concurrent = getattr(target, "__nbremote_max_inputs__", None)
    if concurrent is not None:
        settings["max_inputs"] = concurrent
    settings["web"] = _web(settings.get("web"), where, target)
    known = {field for field in FunctionOptions.__dataclass_fields__}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(
            f"{where}: unexpected settings {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    image = settings.get("image")
    if image is not None and not isinstance(image, Image):
        raise TypeError(f"{where}: image= takes an nr.Image, got {type(image).__name__}")
    schedule = settings.get("schedule")
    if schedule is not None and not _is_schedule(schedule):
        raise TypeError(
            f"{where}: schedule= takes nr.Cron('0 2 * * *') or nr.Period(hours=1), "
            f"got {type(schedule).__name__}"
        )
    settings["retries"] = Retries.parse(settings.get("retries"))
    settings["env"] = dict(settings.get("env") or {})
    settings["gpu"] = parse(settings.get("gpu"), where)
    settings["volumes"] = mounts_of(settings.get("volumes"), where)
    settings["secrets"] = tuple(settings.get("secrets") or ())
    for name in ("cpu", "memory"):
        settings[name] = resource_limit(settings.get(name), name, where)
    spec_secrets(settings["secrets"])  # refuse what is not a Secret now, not at call time
    return FunctionOptions(**{key: value for key, value in settings.items() if value is not None})


def with_overrides(
    options: FunctionOptions, overrides: dict[str, Any], where: str, target: object = None
) -> FunctionOptions:
    """``options`` with ``overrides`` applied (``with_options``). Old names in ``overrides`` are
    renamed first, so that they replace the current setting rather than clash with it."""
    current = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    overrides = rename_deprecated(overrides, where, stacklevel=4)
    return function_options(current | overrides, where, target)


def _web(web: object, where: str, target: object) -> dict[str, Any] | None:
    """The web settings: given back (``with_options``) or a web decorator's mark on ``target``."""
    from .web import MARK, checked, methods_web

    if isinstance(target, type):  # its methods' marks are its own (`Cls.web_methods`)
        methods_web(target, where)
    web = getattr(target, MARK, None) if web is None else web
    return None if web is None else checked(web, where)


def _is_schedule(value: object) -> bool:
    from .wire.schedule import Cron, Period

    return isinstance(value, Cron | Period)


def settings_of(options: FunctionOptions) -> dict[str, Any]:
    """Function settings as JSON (secrets by name: a deployed app keeps no secret values).

    Raises:
        NbremoteError: a secret is a ``Secret.from_dict`` (its values would be stored).
    """
    if any(secret.inline for secret in options.secrets):
        raise NbremoteError(
            "a deployed app cannot carry Secret.from_dict values (the runner would store them): "
            "create a named secret with `nbremote secrets set NAME K=V` and use "
            "nr.Secret.from_name(NAME)"
        )
    retries = options.retries.to_wire() if options.retries else None
    return (
        {
            "env": options.env,
            "volumes": options.volumes,
            "secrets": [secret.name for secret in options.secrets],
            "timeout": options.timeout,
            "retries": retries,
            "max_containers": options.max_containers,
            "min_containers": options.min_containers,
            "scaledown_window": options.scaledown_window,
            "max_inputs": options.max_inputs,  # an endpoint's worker takes this many at once
            "gpu": str(options.gpu) if options.gpu else None,
            "image": options.image.object_id if options.image else None,
            "cpu": options.cpu,
            "memory": options.memory,
            "block_network": options.block_network,
            "single_use_containers": options.single_use_containers,
            "restrict_modal_access": options.restrict_modal_access,
        }
        | ({"schedule": options.schedule.wire()} if options.schedule else {})
        | ({"web": options.web} if options.web else {})
    )


def options_from(settings: dict[str, Any]) -> FunctionOptions:
    """Function settings back from JSON."""
    retries, image = settings.get("retries"), settings.get("image")
    secrets = tuple(Secret.from_name(name) for name in settings.get("secrets", []))
    schedule = settings.get("schedule")
    if schedule:
        from .wire.schedule import from_wire

        schedule = from_wire(schedule)
    known = FunctionOptions.__dataclass_fields__  # a job's name, say, is the runner's
    return FunctionOptions(
        **{
            **{key: value for key, value in settings.items() if key in known},
            "schedule": schedule or None,
            "retries": Retries(**retries) if retries else None,
            "gpu": parse(settings.get("gpu")),
            "secrets": secrets,
            "image": Image.from_id(image) if image else None,
        }
    )


def lookup(app_name: str, name: str, kind: str) -> DescribeAppObject:
    """The runner's description of a deployed function or class.

    Raises:
        NotFoundError: the app is not deployed, or has no such object (listing what there is).
    """
    try:
        client = _session.current_session().client
        app = client.call("GET", f"/api/v1/apps/{app_name}", response=DescribeApp)
    except RunnerError as exc:
        raise RunnerError(exc.kind, exc.message) from None  # no HTTP frames in the traceback
    found = {obj.name: obj for obj in app.objects if obj.kind == kind}
    if name not in found:
        raise NotFoundError(
            "NotFound",
            f"app {app_name!r} has no deployed {kind} {name!r}; its {kind}s: "
            f"{', '.join(sorted(found)) or 'none'}",
        )
    return found[name]
