"""The normaliser removes only what differs between two local runs, nothing a user would
notice as a difference between a local and a remote cell."""

from __future__ import annotations

import pytest

from tests.fidelity.compare import CellView, diff, normalise, view


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("<Foo object at 0x7f3a2b1c4d50>", "<Foo object at 0x7f00deadbeef>"),
        (
            "1.23 ms ± 45.6 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)",
            "812 µs ± 9.1 µs per loop (mean ± std. dev. of 7 runs, 10,000 loops each)",
        ),
        (
            "CPU times: user 1.2 ms, sys: 0 ns, total: 1.2 ms\nWall time: 2.31 s",
            "CPU times: user 3 ms, sys: 12 µs, total: 3.01 ms\nWall time: 2.4 s",
        ),
        ("real\t0m0.009s", "real\t0m1.105s"),
        (
            "The slowest run took 4.03 times longer than the fastest. This could mean",
            "The slowest run took 4.73 times longer than the fastest. This could mean",
        ),
        (
            "1.14 μs ± 2 ns per loop (mean ± std. dev. of 7 runs, 1,000,000 loops each)",
            "<timeit line>",
        ),
        ("10.0k/10.0k [00:00<00:00, 9.64Mepoch/s]", "10.0k/10.0k [00:01<00:00, 1.05s/epoch]"),
        ("10/10 [00:01<00:00,  9.84it/s, loss=1]", "10/10 [00:00<?, ?it/s, loss=1]"),
        ("\r 50%|█████     | 5/10\r100%|██████████| 10/10\n", "\r100%|██████████| 10/10\n"),
        (
            "3rd loop:  18%|█▊        | 9/50 [00:00<00:00]\x1b[A",
            "3rd loop:  20%|██        | 10/50 [00:00<00:00]\x1b[A",
        ),
        ("kernel pid 4242", "kernel pid 17"),
        (
            "<DisplayHandle display_id=01ab2e1412dbf8793a0c4301fdd0a142>",
            "<DisplayHandle display_id=fa4c677bbd6d843cbc0a3f7313df971c>",
        ),
        (
            '<div id="05dfa372-b1ea-4eb0-80f1-0c8134213c1f">',
            '<div id="3cd3d2ca-aee6-45d0-9a5c-24e307639f03">',
        ),
        ("/tmp/ipykernel_123/456.py:3: UserWarning", "/tmp/ipykernel_9/456.py:3: UserWarning"),
        ("/var/tmp/fidelity-nb-ab_c1/data.txt", "/var/tmp/fidelity-nb-zz9/data.txt"),
    ],
)
def test_what_differs_between_two_local_runs_is_normalised(first: str, second: str) -> None:
    assert normalise(first) == normalise(second)


@pytest.mark.parametrize(
    ("local", "remote"),
    [
        # A terminal's %timeit and tqdm (issue 15 item 5) stay differences.
        (
            "1.23 ms ± 45.6 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)",
            "1.23 ms +- 45.6 us per loop (mean +- std. dev. of 7 runs, 1,000 loops each)",
        ),
        ("100%|██████████| 10/10", "100%|##########| 10/10"),
        ("100%|██████████| 10/10", " 90%|█████████ | 9/10"),  # a bar that stopped short
        ("Wall time: 2.31 µs", "Wall time: 2.31 us"),
        ("[1, 2, 3]", "[1, 2, 3, 4]"),
        ("/home/me/project", "/tmp/worker-scratch"),
    ],
)
def test_what_a_user_would_notice_is_kept(local: str, remote: str) -> None:
    assert normalise(local) != normalise(remote)


def _display(kind: str, **data: str) -> dict[str, object]:
    return {"output_type": kind, "data": data, "metadata": {}}


def test_a_result_shown_as_display_data_differs_from_an_execute_result() -> None:
    local = view([_display("execute_result", **{"text/plain": "2"})])
    remote = view([_display("display_data", **{"text/plain": "2"})])
    assert "[outputs]" in diff(local, remote)


def test_streams_are_compared_by_text_not_by_how_they_were_chunked() -> None:
    chunks = [{"output_type": "stream", "name": "stdout", "text": t} for t in ("a", "b\n")]
    whole = [{"output_type": "stream", "name": "stdout", "text": "ab\n"}]
    assert view(chunks) == view(whole) == CellView("ab\n", "", ("stream",), (), (), ())
