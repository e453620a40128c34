"""Deploying apps (``nbremote deploy``): every function and class of an app, sent to the runner.

Looking deployed objects up, and their settings as JSON, are `nbremote._options`'s. A class's
methods under web decorators go as its ``settings["web_methods"]`` (method -> web settings),
each served as ``label`` or ``{app}/{Class}.{method}``. A function deployed alone
(``f.schedule``, ``f.serve``) is an app of its own, named after its job or endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import typing
from typing import TYPE_CHECKING, Any, Protocol

from ._by_value import dumps_function
from ._options import FunctionOptions, settings_of
from .web import endpoint_name
from .wire.http import DeployApp, DeployObject, DescribeApp
from .wire.images import DescribeImage

if TYPE_CHECKING:
    from ._client import RunnerClient
    from .wire.schedule import Schedule


class AppToDeploy(Protocol):
    """What a deploy reads of an `nbremote.App` (which imports this module's importers)."""

    @property
    def name(self) -> str: ...

    @property
    def registered_functions(self) -> dict[str, Any]: ...

    @property
    def registered_classes(self) -> dict[str, Any]: ...


def _object(
    name: str,
    kind: str,
    target: Any,
    options: FunctionOptions,
    methods: list[str],
    extra: dict[str, Any] | None = None,
) -> DeployObject:
    if options.web:
        _resolve_annotations(target)
    payload = dumps_function(f"{kind} {name}", target)
    return DeployObject(
        name=name,
        kind=kind,
        methods=methods,
        settings=settings_of(options) | (extra or {}),
        payload=base64.b64encode(b"".join(bytes(part) for part in payload.parts)).decode(),
        sizes=[part.nbytes for part in payload.parts],
        hash=payload.hash,
    )


def _class(name: str, cls: Any) -> DeployObject:
    """A class to deploy, with its web methods' settings (their annotations resolved here)."""
    web = cls.web_methods
    for method in web:
        _resolve_annotations(getattr(cls.user_cls, method))
    extra = {"web_methods": web} if web else None
    return _object(name, "class", cls.user_cls, cls.options, cls.methods, extra)


def _resolve_annotations(fn: Any) -> None:
    """Evaluate a web function's annotations here, where its module's names are: under ``from
    __future__ import annotations`` they are strings, and a pydantic model named only there
    would not travel with the function (the endpoint would then miss its body's schema)."""
    with contextlib.suppress(Exception):  # one that cannot be resolved stays a string
        fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)


def _register_images(client: RunnerClient, images: list[Any]) -> None:
    """Make the runner know the images the objects run in (built ones, by their steps)."""
    for image in {image for image in images if image is not None and image.steps}:
        client.call("POST", "/api/v1/images", image.create_request(), response=DescribeImage)


def deploy(client: RunnerClient, app: AppToDeploy) -> DescribeApp:
    """Send every function and class of ``app`` to the runner; the runner's description of it.
    A function with ``schedule=`` becomes a job of the runner's (``{app}.{function}``)."""
    for name, fn in app.registered_functions.items():
        if fn.options.web:  # a name the runner would refuse is named before anything is sent
            endpoint_name(app.name, name, fn.options.web)
    for name, cls in app.registered_classes.items():
        for method, web in cls.web_methods.items():
            endpoint_name(app.name, f"{name}.{method}", web)
    images = [fn.options.image for fn in app.registered_functions.values()]
    images += [cls.options.image for cls in app.registered_classes.values()]
    _register_images(client, images)
    objects = [
        _object(name, "function", fn.raw_f, fn.options, [])
        for name, fn in app.registered_functions.items()
    ] + [_class(name, cls) for name, cls in app.registered_classes.items()]
    body = DeployApp(objects=objects)
    return client.call("PUT", f"/api/v1/apps/{app.name}", body, response=DescribeApp)


def deploy_alone(
    client: RunnerClient,
    function: tuple[str, Any, FunctionOptions],
    name: str,
    extra: dict[str, Any] | None = None,
) -> DescribeApp:
    """Deploy a function (its name, the function, its options) alone as the app ``name``
    (``f.schedule``, ``f.serve``): deploying it again replaces it."""
    qualname, target, options = function
    _register_images(client, [options.image])
    obj = _object(qualname, "function", target, options, [], extra)
    body = DeployApp(objects=[obj])
    return client.call("PUT", f"/api/v1/apps/{name}", body, response=DescribeApp)


def deploy_scheduled(
    client: RunnerClient,
    function: tuple[str, Any, FunctionOptions],
    schedule: Schedule,
    name: str,
) -> DescribeApp:
    """Deploy a function alone as the app ``name``, fired on ``schedule`` as the job ``name``
    (``f.schedule``): deploying it again replaces the job's function and schedule."""
    qualname, target, options = function
    options = dataclasses.replace(options, schedule=schedule)
    return deploy_alone(client, (qualname, target, options), name, {"job": name})


def deploy_served(
    client: RunnerClient, function: tuple[str, Any, FunctionOptions], web: dict[str, Any]
) -> DescribeApp:
    """Deploy a function alone as the app ``web["label"]``, served as the endpoint of that name
    with the settings ``web`` (``f.serve``; a schedule it has is not the endpoint's)."""
    qualname, target, options = function
    options = dataclasses.replace(options, web=web, schedule=None)
    return deploy_alone(client, (qualname, target, options), web["label"])
