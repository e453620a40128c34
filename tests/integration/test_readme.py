"""Every Python example of the README runs, in order, in a real IPython shell on a real runner."""

from __future__ import annotations

import re
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from nbremote import _session

README = Path(__file__).parents[2] / "README.md"


def test_readme_python_examples_run(shell: InteractiveShell) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        result = shell.run_cell(block)
        assert result.success, f"README example failed:\n{block}\n{result.error_in_exec!r}"
    assert shell.user_ns["weights"].shape == (3,)
    assert shell.user_ns["call"].get(timeout=30) == [9, 5]
    assert shell.user_ns["scores"]["best"] == 0.93
    assert shell.user_ns["jobs"].get(timeout=10) == "next batch"
    assert shell.user_ns["on_volume"] == ["tiny.bin"]
    assert shell.user_ns["greeting"].remote() == "hello from six 1.16.0"
    assert shell.user_ns["report"] == {"rows": 5, "mean": 2.8}  # pulled from the job's run
    assert shell.user_ns["answer"] == {"price": 60.0}  # f.serve's endpoint, called over HTTP
    assert shell.user_ns["priced"] == {"item": "pear", "price": 3.0}  # a cell's endpoint
    _session.current_session().client.call("DELETE", "/api/v1/apps/discount")  # ends it
    _session.current_session().client.call("DELETE", "/api/v1/apps/quote")
    shell.user_ns["scores"].delete()
    shell.user_ns["jobs"].delete()
    shell.user_ns["vol"].delete()
