"""Central DP settings a process's rounds would ignore or could never prove (and the spread
rule's, which they would ignore too), refused before it starts, in one sentence naming
what set them: ``omega serve``'s flags or the ``OMEGA_COWATCH_*`` variables ``omega
serve`` and ``omega worker`` both read."""

from __future__ import annotations

import os
from typing import Any

from omega.errors import ConfigError

__all__ = [
    "DELTA_VARIABLE",
    "EPSILON_VARIABLE",
    "SPREAD_VARIABLE",
    "check_cowatch_dp",
    "check_cowatch_spread",
    "in_environment",
    "named",
]

EPSILON_VARIABLE = "OMEGA_COWATCH_DP_EPSILON"
DELTA_VARIABLE = "OMEGA_COWATCH_DP_DELTA"
SPREAD_VARIABLE = "OMEGA_COWATCH_SPREAD"
#: How the mechanism (``omega.federation.cowatch_dp``) names the two settings.
_EPSILON_FLAG, _DELTA_FLAG = "--cowatch-dp-epsilon", "--cowatch-dp-delta"


def named(flag: str, value: object, variable: str) -> str:
    """What set a setting, as an error names it: the flag if given, else its variable."""
    return flag if value is not None else variable


def in_environment(variable: str) -> bool:
    """Whether ``variable`` is set (any case: the settings read it so)."""
    return any(name.upper() == variable for name in os.environ)


def check_cowatch_dp(
    settings: Any,
    *,
    helper_url: str | None,
    epsilon_flag: str,
    delta_flag: str,
    delta_given: bool,
) -> None:
    """Refuse central DP settings the rounds would ignore, or that no threshold proves.

    DP acts on the co-watch step of rounds, which runs only with a helper (``helper_url``)
    and a threshold above 0, and δ only with an ε above 0. ``epsilon_flag`` and
    ``delta_flag`` name what set ε and δ (a flag or a variable); ``delta_given``: δ was
    set at all (its default is never refused)."""
    epsilon = settings.cowatch_dp_epsilon
    if not epsilon:
        if delta_given:
            raise ConfigError(
                f"{delta_flag} has no effect while central DP is off: give "
                f"{epsilon_flag} above 0 too, or drop {delta_flag}"
            )
        return
    from omega.federation.cowatch_dp import CowatchPrivacy

    # ε and δ OpenDP cannot prove at any threshold: refused now, not in a round
    try:
        CowatchPrivacy(epsilon, settings.cowatch_dp_delta, per_epoch=settings.cowatch_per_epoch)
    except ConfigError as exc:
        said = str(exc).replace(_EPSILON_FLAG, epsilon_flag).replace(_DELTA_FLAG, delta_flag)
        raise ConfigError(said) from None
    if not helper_url:
        raise ConfigError(
            f"{epsilon_flag} {epsilon:g} has no effect without a helper (the co-watch step "
            f"of rounds folds the helper's batches): give --helper-url, or drop {epsilon_flag}"
        )
    if not settings.cowatch_threshold:
        raise ConfigError(
            f"{epsilon_flag} {epsilon:g} has no effect with co-watch off "
            f"(OMEGA_COWATCH_THRESHOLD=0): set a threshold, or drop {epsilon_flag}"
        )


def check_cowatch_spread(settings: Any, *, helper_url: str | None, spread_flag: str) -> None:
    """Refuse a spread rule the rounds would ignore: it acts in the co-watch step, which
    runs only with a helper and a threshold above 0 (``spread_flag``: what set it)."""
    if settings.cowatch_spread and not (helper_url and settings.cowatch_threshold):
        raise ConfigError(
            f"{spread_flag} {settings.cowatch_spread:g} has no effect without the co-watch "
            f"step of rounds (a helper and OMEGA_COWATCH_THRESHOLD above 0): give "
            f"--helper-url, or drop {spread_flag}"
        )
