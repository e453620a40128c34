"""Modal's inference pattern with a tiny stand-in model: load once per container, serve many.

    nbremote deploy examples/inference.py
    nbremote apps logs inference --follow    # what its code prints

and from any notebook or process:

    model = nr.Cls.from_name("inference", "Model")()
    model.generate.remote("hello")
"""

import nbremote as modal

app = modal.App("inference")


@app.cls(max_containers=1, scaledown_window=300)
class Model:
    temperature: float = modal.parameter(default=0.0)

    @modal.enter()
    def load(self) -> None:
        # Stands in for loading weights from a volume: done once, when the container starts.
        import os

        self.vocabulary = ["the", "quick", "brown", "fox", "jumps"]
        self.loaded_by = os.getpid()

    @modal.method()
    def generate(self, prompt: str, max_tokens: int = 3) -> str:
        words = [
            self.vocabulary[(len(prompt) + i) % len(self.vocabulary)] for i in range(max_tokens)
        ]
        return f"{prompt} {' '.join(words)}"

    @modal.method()
    def loaded_in(self) -> int:
        return self.loaded_by


@app.function()
def tokenize(text: str) -> list[str]:
    print(f"tokenizing {text!r}")  # goes to the app's log: nbremote apps logs inference
    return text.split()


@app.local_entrypoint()
def main() -> None:
    model = Model()
    print(model.generate.remote("hello"))
    print(list(model.generate.map(["a", "bb", "ccc"])))
