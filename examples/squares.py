"""A Modal-style script: `nbremote run examples/squares.py` (or `::square` for one call)."""

import nbremote as modal

app = modal.App("squares")


@app.function(retries=1)
def square(x: int = 7) -> int:
    print(f"squaring {x} on the runner")
    return x * x


@app.local_entrypoint()
def main() -> None:
    total = sum(square.map(range(100)))
    print("sum of squares below 100:", total)
