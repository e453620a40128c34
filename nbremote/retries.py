"""Retry policies for remote functions (Modal's ``Retries``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retries:
    """How often, and how patiently, a failed input is retried.

    The n-th retry waits ``initial_delay * backoff_coefficient ** n`` seconds, at most
    ``max_delay``.

    Args:
        max_retries: retries after the first attempt (0 to 10).
        backoff_coefficient: growth of the delay between retries (1.0 to 10.0).
        initial_delay: seconds before the first retry (0 to 60).
        max_delay: the longest wait between retries (1 to 60).

    Example:
        >>> Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=0.5)
        Retries(max_retries=3, backoff_coefficient=2.0, initial_delay=0.5, max_delay=60.0)
    """

    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        checks = (
            ("max_retries", self.max_retries, 0, 10),
            ("backoff_coefficient", self.backoff_coefficient, 1.0, 10.0),
            ("initial_delay", self.initial_delay, 0.0, 60.0),
            ("max_delay", self.max_delay, 1.0, 60.0),
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"Retries({name}={value!r}): must be between {low} and {high}")
        if not isinstance(self.max_retries, int):
            raise TypeError(f"Retries(max_retries={self.max_retries!r}): must be an int")

    @classmethod
    def parse(cls, retries: int | Retries | None) -> Retries | None:
        """``retries=`` as given to a function: an int means that many retries, 1 s apart."""
        if retries is None or isinstance(retries, Retries):
            return retries
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError(f"retries must be an int or nr.Retries, not {type(retries).__name__}")
        return cls(max_retries=retries, backoff_coefficient=1.0, initial_delay=1.0)

    def to_wire(self) -> dict[str, float]:
        """The policy as the worker reads it."""
        return {
            "max_retries": self.max_retries,
            "backoff_coefficient": self.backoff_coefficient,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
        }
