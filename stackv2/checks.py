"""Range checks for the config dataclasses' ``__post_init__``.

A bad value fails when its config is built (loading, ``--set``, ``--dry-run``, ``dataclasses.replace``) with one
line naming its key and what it may be, not later deep inside a stage (``stackv2.config.from_dict`` turns it into
a ``ConfigError``). ``None`` (an optional setting left unset) passes.
"""

from __future__ import annotations


def _check(cfg: object, section: str, names: tuple[str, ...], ok, allowed: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not ok(value):
            raise ValueError(f"{section}.{name} must be {allowed}, got {value!r}")


def positive(cfg: object, section: str, *names: str) -> None:
    """Sizes, counts, timeouts: ``> 0``."""
    _check(cfg, section, names, lambda v: v > 0, "> 0")


def non_negative(cfg: object, section: str, *names: str) -> None:
    _check(cfg, section, names, lambda v: v >= 0, ">= 0")


def fraction(cfg: object, section: str, *names: str) -> None:
    """Rates, shares and probabilities: within ``[0, 1]``."""
    _check(cfg, section, names, lambda v: 0 <= v <= 1, "within [0, 1]")
