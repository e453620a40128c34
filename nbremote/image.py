"""Images: the environment remote code runs in, built step by step, as in Modal.

An `Image` is an immutable chain of steps. Each step is a cached layer on the runner, keyed by
the hash of its parent layer and its own content (packages, commands, the bytes of the files it
copies); the image's id is its last layer's id. Changing the last step rebuilds that step only.

On the process backend an image is a virtual environment built with uv, layered over a base that
holds what the worker itself needs; ``apt_install`` only checks that the host has the packages,
``from_registry``/``from_dockerfile`` need the docker backend, and conda/micromamba steps are
refused (the way out: ``pip_install``/``uv_pip_install``). ``entrypoint`` is recorded for the
docker backend: a process-backend worker is started by the runner, with no entrypoint.
"""

from __future__ import annotations

import base64
import contextlib
import os
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from . import _image_files as local
from ._client import build
from .errors import NbremoteError
from .wire.images import CreateImage, ImageStep, image_id

# Modal settings of run_function that a build step cannot have: it sees no secrets or volumes.
_BUILD_REFUSES = ("secrets", "volumes", "network_file_systems", "gpu", "cpu", "memory")


def _flatten(items: Iterable[str | Sequence[str]]) -> list[str]:
    """Modal takes ``pip_install("a", ["b", "c"])``: strings and lists of strings alike."""
    flat: list[str] = []
    for item in items:
        flat.extend([item] if isinstance(item, str) else item)
    return [item for item in flat if item]


def _kernel_python() -> str:
    return ".".join(platform.python_version_tuple()[:2])


class Image:
    """A container image definition: a base, then steps, each one a cached layer.

    Build one with a constructor (`debian_slim`, `from_registry`, `from_dockerfile`) and chained
    methods; each method returns a new image (the one it was called on is unchanged).

    Example:
        >>> img = Image.debian_slim().pip_install("six==1.16.0").env({"MODE": "fast"})
        >>> img.object_id.startswith("im-")
        True
    """

    def __init__(
        self, steps: Sequence[ImageStep], files: dict[str, bytes] | None = None, ref: str = ""
    ) -> None:
        self._steps = tuple(steps)
        self._files = dict(files or {})  # sha256 -> content of the files steps copy
        self._ref = ref  # an image known to the runner by id or name (from_id), without steps
        self._registered: set[str] = set()  # session ids this image was sent to

    # -- constructors ----------------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: str | None = None, force_build: bool = False) -> Image:
        """A minimal image with Python (default: this kernel's major.minor).

        Args:
            python_version: ``"3.11"``; the runner must have that Python.
            force_build: accepted for Modal compatibility; layers are content-addressed.
        """
        version = python_version or _kernel_python()
        if not all(part.isdigit() for part in version.split(".")) or version.count(".") > 2:
            raise ValueError(f"python_version={python_version!r}: expected a version like '3.11'")
        return Image([ImageStep(kind="debian_slim", options={"python_version": version})])

    @staticmethod
    def from_registry(tag: str, *, add_python: str | None = None, **kwargs: Any) -> Image:
        """An image from a container registry (needs the docker backend).

        Args:
            tag: the image reference, ``"nvidia/cuda:12.4.1-runtime-ubuntu22.04"``.
            add_python: a Python version to install in it.
        """
        options = {"tag": tag} | ({"add_python": add_python} if add_python else {})
        return Image([ImageStep(kind="from_registry", options=options)])

    @staticmethod
    def from_dockerfile(path: str | os.PathLike[str], **kwargs: Any) -> Image:
        """An image built from a Dockerfile (needs the docker backend); its content is hashed."""
        dockerfile = Path(path)
        if not dockerfile.is_file():
            raise FileNotFoundError(f"from_dockerfile: {dockerfile} does not exist")
        options = {"path": str(dockerfile), "dockerfile": dockerfile.read_text()}
        return Image([ImageStep(kind="from_dockerfile", options=options)])

    @staticmethod
    def from_id(image_id: str) -> Image:
        """An image the runner already knows, by id (``im-...``) or name (`nbremote images ls`)."""
        return Image([], ref=image_id)

    # -- identity --------------------------------------------------------------------------------

    @property
    def object_id(self) -> str:
        """The image's id: a hash over all of its steps (or the id/name given to `from_id`)."""
        return self._ref or image_id(list(self._steps))

    @property
    def steps(self) -> tuple[ImageStep, ...]:
        """The image's steps, base first."""
        return self._steps

    @property
    def python_version(self) -> str | None:
        """The Python major.minor of the image, when its base says it."""
        for step in self._steps:
            version = step.options.get("python_version") or step.options.get("add_python")
            if version:
                return ".".join(version.split(".")[:2])
        return None

    def __repr__(self) -> str:
        return f"<nbremote.Image {self.object_id} ({len(self._steps)} steps)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.object_id == self.object_id

    def __hash__(self) -> int:
        return hash(self.object_id)

    def _then(self, step: ImageStep, files: dict[str, bytes] | None = None) -> Image:
        if not self._steps:
            raise NbremoteError(
                f"{self.object_id!r} was looked up by id: add steps to the image it was defined "
                "from instead (Image.debian_slim()...)"
            )
        return Image([*self._steps, step], self._files | (files or {}))

    # -- steps -----------------------------------------------------------------------------------

    def pip_install(
        self,
        *packages: str | Sequence[str],
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
    ) -> Image:
        """Install Python packages (pin them: ``"pandas==2.2.2"``, so the layer stays cached).

        Args:
            packages: requirement specifiers, as strings or lists of strings.
            index_url: the package index to use instead of PyPI.
            extra_index_url: another index to look in.
            pre: allow pre-releases.
            extra_options: more installer options, as one string.
        """
        return self._install(
            "pip_install", packages, index_url, extra_index_url, pre, extra_options
        )

    def uv_pip_install(
        self,
        *packages: str | Sequence[str],
        index_url: str | None = None,
        extra_index_url: str | None = None,
        pre: bool = False,
        extra_options: str = "",
    ) -> Image:
        """Install Python packages with uv (what `pip_install` does on this runner too)."""
        return self._install(
            "uv_pip_install", packages, index_url, extra_index_url, pre, extra_options
        )

    def _install(
        self,
        kind: str,
        packages: Iterable[str | Sequence[str]],
        index_url: str | None,
        extra_index_url: str | None,
        pre: bool,
        extra_options: str,
    ) -> Image:
        names = _flatten(packages)
        if not names:
            return self  # Modal accepts an empty install as a no-op
        options = {
            "index_url": index_url or "",
            "extra_index_url": extra_index_url or "",
            "pre": "1" if pre else "",
            "extra_options": extra_options,
        }
        step = ImageStep(kind=kind, args=names, options={k: v for k, v in options.items() if v})  # type: ignore[arg-type]
        return self._then(step)

    def pip_install_from_requirements(
        self, requirements_txt: str | os.PathLike[str], **kwargs: Any
    ) -> Image:
        """Install what a requirements file lists; the file's content is part of the step."""
        path = Path(requirements_txt)
        if not path.is_file():
            raise FileNotFoundError(f"pip_install_from_requirements: {path} does not exist")
        options = {"requirements": path.read_text()}
        return self._then(ImageStep(kind="pip_install_from_requirements", options=options))

    def run_commands(self, *commands: str | Sequence[str]) -> Image:
        """Run shell commands in the image (the image's ``python``/``pip`` come first on PATH)."""
        return self._then(ImageStep(kind="run_commands", args=_flatten(commands)))

    def env(self, vars: dict[str, str]) -> Image:
        """Set environment variables for later steps and for the image's workers."""
        bad = [key for key, value in vars.items() if not isinstance(value, str) or not key]
        if bad:
            raise TypeError(f"env: values must be strings; fix {', '.join(map(repr, bad))}")
        return self._then(ImageStep(kind="env", options=dict(vars)))

    def apt_install(self, *packages: str | Sequence[str]) -> Image:
        """Install Debian packages (on the process backend: they must be on the host already)."""
        return self._then(ImageStep(kind="apt_install", args=_flatten(packages)))

    def add_local_python_source(self, *modules: str, ignore: Sequence[str] = ()) -> Image:
        """Copy local Python modules or packages (their ``.py`` files) into the image.

        Args:
            modules: importable names (``"utils"``, ``"mypkg"``), found as this process would.
            ignore: glob patterns of files to leave out.
        """
        files: dict[str, bytes] = {}
        for module in modules:
            root = local.module_source(module)
            if root.is_file():
                relative = Path(*module.split("."))
                files[f"{relative}.py"] = root.read_bytes()
            else:
                prefix = Path(*module.split("."))
                for rel, content in local.read_tree(root, list(ignore), only_py=True):
                    files[str(prefix / rel)] = content
        step, blobs = local.copy_step("add_local_python_source", list(modules), {}, files)
        return self._then(step, blobs)

    def add_local_dir(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str,
        *,
        ignore: Sequence[str] = (),
        copy: bool = False,
    ) -> Image:
        """Copy a local folder into the image.

        On the process backend ``remote_path`` is relative to the worker's working directory;
        an absolute path under ``/root`` (Modal's working directory) is taken as such too.

        Args:
            local_path: the folder here.
            remote_path: where its files appear remotely.
            ignore: glob patterns of files to leave out.
            copy: accepted for Modal compatibility; files are always a layer here.
        """
        root = Path(local_path)
        if not root.is_dir():
            raise NotADirectoryError(f"add_local_dir: {root} is not a folder")
        files = dict(local.read_tree(root, list(ignore), only_py=False))
        options = {"local_path": str(local_path), "remote_path": remote_path}
        step, blobs = local.copy_step("add_local_dir", [], options, files)
        return self._then(step, blobs)

    def add_local_file(
        self, local_path: str | os.PathLike[str], remote_path: str, *, copy: bool = False
    ) -> Image:
        """Copy one local file into the image (``remote_path`` as for `add_local_dir`; one
        ending in ``/`` is a folder the file goes into).

        Args:
            local_path: the file here.
            remote_path: where it appears remotely.
            copy: accepted for Modal compatibility; files are always a layer here.
        """
        folder, name, content = local.local_file(local_path, remote_path)
        options = {"local_path": str(local_path), "remote_path": remote_path, "remote_dir": folder}
        step, blobs = local.copy_step("add_local_file", [], options, {name: content})
        return self._then(step, blobs)

    def workdir(self, path: str | PurePosixPath) -> Image:
        """The working directory of the image's workers and of later ``run_commands`` and
        ``run_function`` steps (what they write there is in the image). On the process backend
        it is relative to the worker's own folder (``/root/...`` is taken as such); workers may
        add files there, while the image's own files there are read-only."""
        return self._then(ImageStep(kind="workdir", options={"path": str(path)}))

    def entrypoint(self, entrypoint_commands: list[str]) -> Image:
        """The container's entrypoint (``.entrypoint([])`` clears a registry image's).

        Recorded in the image for the docker backend; a process-backend worker is started by
        the runner itself, so there it changes nothing.
        """
        if not isinstance(entrypoint_commands, list | tuple) or not all(
            isinstance(part, str) for part in entrypoint_commands
        ):
            raise TypeError("entrypoint takes a list of strings, e.g. entrypoint([])")
        return self._then(ImageStep(kind="entrypoint", args=list(entrypoint_commands)))

    def run_function(
        self,
        raw_f: Callable[..., Any],
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        force_build: bool = False,
        timeout: int | None = None,
        **settings: Any,
    ) -> Image:
        """Run a function at build time, in the image's environment (to download or prepare
        files); what it leaves in its working directory (the image's `workdir`) is part of the
        image. The step's cache key is the function's source and its arguments: edit the
        function and the step runs again.

        The function travels as source: it runs without the globals of your script, so it
        imports what it uses inside its body.

        Args:
            raw_f: a function defined with ``def``.
            args: positional arguments (JSON values).
            kwargs: keyword arguments (JSON values).
            force_build: accepted for Modal compatibility.
            timeout: accepted for Modal compatibility.

        Raises:
            NbremoteError: ``secrets=``, ``volumes=`` or ``gpu=`` were given (build steps see
                none of them), or the function's source cannot be read.
        """
        refused = sorted(key for key in settings if key in _BUILD_REFUSES and settings[key])
        unknown = sorted(key for key in settings if key not in _BUILD_REFUSES)
        if unknown:
            raise TypeError(f"run_function: unexpected arguments {', '.join(unknown)}")
        name = getattr(raw_f, "__name__", "function")
        if refused:
            raise NbremoteError(
                f"run_function({name}): {', '.join(f'{key}=' for key in refused)} not supported "
                "by nbremote's image builds (a build step sees no secrets, volumes or GPUs): "
                "do that work at run time, in a class's @nr.enter() method"
            )
        options = {
            "name": name,
            "source": local.function_source(raw_f),
            "call": local.call_json(name, tuple(args), dict(kwargs or {})),
        }
        return self._then(ImageStep(kind="run_function", options=options))

    def uv_sync(
        self,
        uv_project_dir: str | os.PathLike[str] = "./",
        *,
        force_build: bool = False,
        groups: Sequence[str] | None = None,
        extras: Sequence[str] | None = None,
        frozen: bool = True,
        extra_options: str = "",
        uv_version: str | None = None,
    ) -> Image:
        """Install the dependencies a uv project locks (its ``pyproject.toml`` and ``uv.lock``;
        the project itself is not installed). The files' content is part of the step.

        Args:
            uv_project_dir: the project's folder.
            groups: dependency groups to install too.
            extras: optional dependencies (extras) to install too.
            frozen: install what ``uv.lock`` says, without resolving again (it must exist).
            extra_options: more installer options, as one string.
            force_build: accepted for Modal compatibility.
            uv_version: accepted for Modal compatibility (the runner's uv is used).
        """
        files = local.uv_project(uv_project_dir, frozen)
        options = {
            "path": str(uv_project_dir),
            "groups": ",".join(groups or ()),
            "extras": ",".join(extras or ()),
            "frozen": "1" if frozen else "",
            "extra_options": extra_options,
        }
        step, blobs = local.copy_step(
            "uv_sync", [], {k: v for k, v in options.items() if v or k == "path"}, files
        )
        return self._then(step, blobs)

    # -- refused: conda ----------------------------------------------------------------------

    @staticmethod
    def micromamba(*args: Any, **kwargs: Any) -> NoReturn:
        """Refused: nbremote images are virtual environments built with uv, without conda."""
        _no_conda("Image.micromamba()")

    @staticmethod
    def conda(*args: Any, **kwargs: Any) -> NoReturn:
        """Refused, as `micromamba`."""
        _no_conda("Image.conda()")

    def micromamba_install(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused, as `micromamba`."""
        _no_conda(".micromamba_install()")

    def conda_install(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused, as `micromamba`."""
        _no_conda(".conda_install()")

    def conda_update_from_environment(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused, as `micromamba`."""
        _no_conda(".conda_update_from_environment()")

    # -- use -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Guard imports of packages that exist only in the image.

        Here, an ImportError in the block is swallowed; in a worker running this image it is
        raised as usual.

        Example:
            >>> with Image.debian_slim().pip_install("surely-not-here==1.0").imports():
            ...     import surely_not_here
        """
        try:
            yield
        except ImportError:
            if os.environ.get("NBREMOTE_IMAGE") == self.object_id:
                raise

    def create_request(self, name: str | None = None) -> CreateImage:
        """The body of ``POST /api/v1/images`` for this image.

        Raises:
            RunnerError: ``name`` is not an image name (letters, digits, ``_.-``).
        """
        files = {sha: base64.b64encode(data).decode() for sha, data in self._files.items()}
        return build(CreateImage, steps=list(self._steps), files=files, name=name or None)


def _no_conda(what: str) -> NoReturn:
    raise NbremoteError(
        f"{what} is not supported by nbremote: its images are virtual environments built with "
        "uv, without conda. Start from Image.debian_slim() and install Python packages with "
        ".pip_install(...) or .uv_pip_install(...) (system libraries: .apt_install(...))"
    )
