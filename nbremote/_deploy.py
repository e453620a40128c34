"""Deploying apps (``nbremote deploy``) and looking deployed objects up (``from_name``)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ._by_value import dumps_function
from .errors import NbremoteError, RunnerError
from .functions import FunctionOptions
from .gpu import parse
from .retries import Retries
from .secret import Secret

if TYPE_CHECKING:
    from ._client import RunnerClient
    from .app import App


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
    return {
        "env": options.env,
        "volumes": options.volumes,
        "secrets": [secret.name for secret in options.secrets],
        "timeout": options.timeout,
        "retries": retries,
        "max_containers": options.max_containers,
        "min_containers": options.min_containers,
        "scaledown_window": options.scaledown_window,
        "gpu": str(options.gpu) if options.gpu else None,
        "image": options.image.object_id if options.image else None,
    }


def options_from(settings: dict[str, Any]) -> FunctionOptions:
    """Function settings back from JSON."""
    from .image import Image

    retries, image = settings.get("retries"), settings.get("image")
    secrets = tuple(Secret.from_name(name) for name in settings.get("secrets", []))
    return FunctionOptions(
        **{
            **settings,
            "retries": Retries(**retries) if retries else None,
            "gpu": parse(settings.get("gpu")),
            "secrets": secrets,
            "image": Image.from_id(image) if image else None,
        }
    )


def _object(
    name: str, kind: str, target: Any, options: FunctionOptions, methods: list[str]
) -> dict[str, Any]:
    payload = dumps_function(f"{kind} {name}", target)
    return {
        "name": name,
        "kind": kind,
        "methods": methods,
        "settings": settings_of(options),
        "payload": base64.b64encode(b"".join(bytes(part) for part in payload.parts)).decode(),
        "sizes": [part.nbytes for part in payload.parts],
        "hash": payload.hash,
    }


def deploy(client: RunnerClient, app: App) -> dict[str, Any]:
    """Send every function and class of ``app`` to the runner; the runner's description of it."""
    images = [fn.options.image for fn in app.registered_functions.values()]
    images += [cls.options.image for cls in app.registered_classes.values()]
    for image in {image for image in images if image is not None and image.steps}:
        client.request("POST", "/api/v1/images", image.create_request())
    objects = [
        _object(name, "function", fn.raw_f, fn.options, [])
        for name, fn in app.registered_functions.items()
    ] + [
        _object(name, "class", cls.user_cls, cls.options, cls.methods)
        for name, cls in app.registered_classes.items()
    ]
    described: dict[str, Any] = client.request(
        "PUT", f"/api/v1/apps/{app.name}", {"objects": objects}
    )
    return described


def lookup(app_name: str, name: str, kind: str) -> dict[str, Any]:
    """The runner's description of a deployed function or class.

    Raises:
        NbremoteError: the app is not deployed, or has no such object (listing what there is).
    """
    from . import _session

    try:
        app: dict[str, Any] = _session.current_session().client.request(
            "GET", f"/api/v1/apps/{app_name}"
        )
    except RunnerError as exc:
        raise NbremoteError(exc.message) from None
    found = {obj["name"]: obj for obj in app["objects"] if obj["kind"] == kind}
    if name not in found:
        raise NbremoteError(
            f"app {app_name!r} has no deployed {kind} {name!r}; its {kind}s: "
            f"{', '.join(sorted(found)) or 'none'}"
        )
    described: dict[str, Any] = found[name]
    return described
