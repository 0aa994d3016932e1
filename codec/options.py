"""Typed codec options: each codec declares what it takes, once.

An :class:`Option` names a setting, its type, its range or choices, its default and its
help, and says whether it describes the stream (it goes into the bitstream header) or
only steers the encoder (time budget, steps, seed: they stay out of the header). The
``ncodec encode`` flags and the web app's widgets are generated from these declarations,
and every value is checked here, before any work starts, with a one-line error naming
the flag (``time_budget`` is ``--time-budget``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class Option:
    name: str  # key in the options dict; the flag is --name with '-' for '_'
    type: type  # int, float, str or bool
    default: Any  # None: unset (the codec decides, e.g. no time budget)
    help: str
    low: float | None = None  # inclusive range of a number
    high: float | None = None
    choices: tuple | None = None
    encoder_only: bool = False  # steers the encoder; never written into the bitstream
    in_app: bool = False  # the web app shows a widget for it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "given or not (a switch)"

        def number(x: float) -> str:
            return f"{int(x):,}" if self.type is int else f"{x:,.10g}"

        if self.low is not None and self.high is not None:
            return f"in {number(self.low)}..{number(self.high)}"
        return "a number" if self.type in (int, float) else "a value"

    def check(self, value: Any) -> Any:
        """``value`` converted to the option's type; UsageError naming the flag if it is
        of the wrong type, not finite, or out of range."""
        if value is None:
            return None
        wrong = UsageError(f"{self.flag} must be {self.describe_range()}, not {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise wrong
            return value
        if self.type in (int, float):
            if isinstance(value, bool):
                raise wrong
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise wrong from None
            if not math.isfinite(number):
                raise wrong
            if self.type is int:
                if number != int(number):
                    raise wrong
                number = int(number)
            if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
                raise wrong
            if self.choices is not None and number not in self.choices:
                raise wrong
            return number
        value = str(value)
        if self.choices is not None and value not in self.choices:
            raise wrong
        return value


def check_options(codec_name: str, declared: tuple[Option, ...], given: dict) -> dict:
    """Every declared option's checked value (its default where ``given`` has none);
    UsageError for a value out of range or an option this codec does not take."""
    by_name = {o.name: o for o in declared}
    unknown = sorted(k for k, v in given.items() if v is not None and k not in by_name)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        takes = ", ".join(o.flag for o in declared) or "no options"
        raise UsageError(f"{flags} does not apply to {codec_name} (it takes {takes})")
    return {o.name: o.check(given[o.name] if given.get(o.name) is not None else o.default) for o in declared}


# Options that several codecs share, declared once so that they mean the same everywhere.
TIME_BUDGET = Option(
    "time_budget",
    float,
    None,
    "seconds of training/fitting for the whole clip (instead of a step count)",
    low=1.0,
    high=30 * 24 * 3600.0,
    encoder_only=True,
    in_app=True,
)
SEED = Option("seed", int, 0, "random seed of the encoder's training", low=0, high=2**31 - 1, encoder_only=True)
PRESET_X26X = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
