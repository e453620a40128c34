"""The Python version check made before anything is sent to a worker."""

from __future__ import annotations

import pytest

from nbremote._sessions import check_python
from nbremote.errors import VersionMismatch


def test_same_minor_version_passes() -> None:
    check_python("3.11.9", "3.11.7")


def test_other_minor_version_is_refused_with_advice() -> None:
    with pytest.raises(VersionMismatch) as caught:
        check_python("3.12.1", "3.11.7")
    message = str(caught.value)
    assert "3.12.1" in message and "3.11.7" in message
    assert "Start the runner with Python 3.11" in message
