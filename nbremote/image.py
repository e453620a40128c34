"""Images: the environment remote code runs in, built step by step, as in Modal.

An `Image` is an immutable chain of steps. Each step is a cached layer on the runner, keyed by
the hash of its parent layer and its own content (packages, commands, the bytes of the files it
copies); the image's id is its last layer's id. Changing the last step rebuilds that step only.

On the process backend an image is a virtual environment built with uv, layered over a base that
holds what the worker itself needs; ``apt_install`` only checks that the host has the packages,
and ``from_registry``/``from_dockerfile`` need the docker backend.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import importlib.util
import os
import platform
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._client import build
from .errors import NbremoteError
from .wire.images import CreateImage, ImageStep, image_id

MAX_LOCAL_BYTES = 64 << 20  # beyond this, data belongs in a Volume, not an image
_SKIPPED = ("__pycache__", ".git", ".ipynb_checkpoints", ".venv", "node_modules")


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
            root = _module_source(module)
            if root.is_file():
                relative = Path(*module.split("."))
                files[f"{relative}.py"] = root.read_bytes()
            else:
                prefix = Path(*module.split("."))
                for rel, content in _read_tree(root, list(ignore), only_py=True):
                    files[str(prefix / rel)] = content
        step, blobs = _copy_step("add_local_python_source", list(modules), {}, files)
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
        files = dict(_read_tree(root, list(ignore), only_py=False))
        options = {"local_path": str(local_path), "remote_path": remote_path}
        step, blobs = _copy_step("add_local_dir", [], options, files)
        return self._then(step, blobs)

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


def _module_source(module: str) -> Path:
    """The source file or package folder of an importable module, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise NbremoteError(f"add_local_python_source: cannot find {module!r} ({exc})") from None
    if spec is None:
        raise NbremoteError(
            f"add_local_python_source: no module {module!r} is importable here; run from the "
            "folder that holds it, or add that folder to sys.path"
        )
    if spec.submodule_search_locations:
        folders = list(spec.submodule_search_locations)
        return Path(folders[0])
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise NbremoteError(
            f"add_local_python_source: {module!r} is not Python source ({spec.origin})"
        )
    return Path(spec.origin)


def _read_tree(root: Path, ignore: list[str], only_py: bool) -> Iterator[tuple[str, bytes]]:
    total = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part in _SKIPPED for part in rel.parts):
            continue
        if only_py and path.suffix != ".py":
            continue
        if any(fnmatch.fnmatch(rel.as_posix(), pattern) for pattern in ignore):
            continue
        content = path.read_bytes()
        total += len(content)
        if total > MAX_LOCAL_BYTES:
            raise NbremoteError(
                f"{root} holds more than {MAX_LOCAL_BYTES >> 20} MiB: put data in a Volume "
                "(or pass ignore=[...] to leave files out)"
            )
        yield rel.as_posix(), content


def _copy_step(
    kind: str, args: list[str], options: dict[str, str], files: dict[str, bytes]
) -> tuple[ImageStep, dict[str, bytes]]:
    hashes = {rel: hashlib.sha256(content).hexdigest() for rel, content in files.items()}
    blobs = {hashes[rel]: content for rel, content in files.items()}
    step = ImageStep(kind=kind, args=args, options=options, files=hashes)  # type: ignore[arg-type]
    return step, blobs
