"""``enable_output``: Modal's switch for showing what remote code prints.

Modal prints nothing of a remote function unless asked; nbremote always shows it — remote
stdout and stderr stream into the cell (or the terminal) as they are written, image builds log,
and a long ``.map`` shows a progress bar — so this has nothing to turn on. It is here so that
Modal code (``with modal.enable_output(): with app.run(): ...``) runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Show remote output inside the block: nbremote always does, so this changes nothing.

    Args:
        show_progress: accepted for Modal's signature; a long map's progress bar shows anyway.

    Example:
        >>> import nbremote as modal
        >>> with modal.enable_output():
        ...     pass
    """
    yield
