"""Which ``loss.*`` config keys each semantic loss takes.

Kept apart from the losses (no Keras import) so ``validate_config`` can reject a key the chosen
loss would ignore before any data is read: ``loss=dice loss.class_weights=auto`` used to count
the whole train split and then drop the weights.
"""

from __future__ import annotations

from collections.abc import Mapping

# config key → constructor argument, per semantic loss (every loss also takes ``ignore_index``)
LOSS_PARAMETERS: dict[str, dict[str, str]] = {
    "ce": {"class_weights": "class_weights"},
    "focal": {"alpha": "alpha", "gamma": "gamma", "class_weights": "class_weights"},
    "dice": {},
    "tversky": {"tversky_alpha": "alpha", "tversky_beta": "beta"},
}
# keys of the objective as a whole, whatever the semantic loss
OBJECTIVE_KEYS = ("semantic", "boundary_weight", "boundary_pos_weight", "ignore_index")
# a key the run reads, not a loss: the epochs over which the class weights fade (ClassWeightFade)
FADE_KEY = "class_weight_epochs"


def semantic_parts(semantic: str) -> list[str]:
    """The losses ``loss.semantic`` names: one, or the parts of a sum such as ``focal+dice``."""
    return [part.strip() for part in semantic.split("+")]


def loss_setting_problems(semantic: str, settings: Mapping[str, object]) -> list[str]:
    """One line per problem of the flat loss config: an unknown loss, ``semantic_weights`` that
    do not give one weight per part of a sum, or a key set (not null) that no part takes."""
    parts = semantic_parts(semantic)
    unknown = [part for part in parts if part not in LOSS_PARAMETERS]
    if unknown:
        return [
            f"loss.semantic={semantic}: unknown loss {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(LOSS_PARAMETERS)} or a sum of them such as focal+dice"
        ]
    problems = []
    weights = settings.get("semantic_weights")
    if weights is not None and len(parts) == 1:
        problems.append(
            f"loss.semantic_weights={weights}: not used by loss.semantic={semantic} (used by sums such as focal+dice)"
        )
    elif weights is not None and len(weights) != len(parts):
        problems.append(
            f"loss.semantic_weights={weights}: needs one weight per part of loss.semantic={semantic} ({len(parts)})"
        )
    fade = settings.get(FADE_KEY)
    if fade is not None and settings.get("class_weights") is None:
        problems.append(
            f"loss.{FADE_KEY}={fade}: fades loss.class_weights, which is null; "
            "set loss.class_weights (auto, auto_share, auto_inverse or a list) or drop it"
        )
    for key, value in settings.items():
        if value is None or key in (*OBJECTIVE_KEYS, FADE_KEY, "semantic_weights") or key.startswith("_"):
            continue
        if any(key in LOSS_PARAMETERS[part] for part in parts):
            continue
        users = [name for name, keys in LOSS_PARAMETERS.items() if key in keys]
        where = f"used by {', '.join(users)}" if users else "no loss uses it"
        problems.append(f"loss.{key}={value}: not used by loss.semantic={semantic} ({where})")
    return problems
