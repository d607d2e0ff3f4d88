"""Optimizers and learning-rate schedules built from a config (optax).

Config fields (``config.optim``): ``name`` ('adam' or 'adamw'), ``lr`` (peak rate), ``b1``, ``b2``,
``eps``, ``weight_decay`` (AdamW only), ``schedule`` ('constant', 'cosine', 'warmup_cosine',
'piecewise'), ``warmup_steps``, ``final_lr`` (the cosine's end value, e.g. 1e-7 as NAFNet),
``boundaries`` and ``scales`` (piecewise: multiply the rate by ``scales[i]`` from step
``boundaries[i]`` on), and ``clip_norm`` (global-norm gradient clipping; 0 disables it).
"""
import ml_collections
import optax

from jdeblur.checks import check_choice, check_positive
from jdeblur.errors import UserError

SCHEDULES = ("constant", "cosine", "warmup_cosine", "piecewise")
OPTIMIZERS = ("adam", "adamw")


def default_optim_config() -> ml_collections.ConfigDict:
    """AdamW with warmup and cosine decay, global-norm clipping at 1 (a robust default for image restoration)."""
    return ml_collections.ConfigDict(
        dict(
            name="adamw",
            lr=1e-3,
            b1=0.9,
            b2=0.99,
            eps=1e-8,
            weight_decay=1e-4,
            schedule="warmup_cosine",
            warmup_steps=100,
            final_lr=1e-6,
            boundaries=(),
            scales=(),
            clip_norm=1.0,
        )
    )


def check_optim_config(cfg) -> None:
    """Raises UserError, naming the field, unless ``config.optim`` builds an optimizer."""
    check_choice(cfg.name, "config.optim.name", OPTIMIZERS)
    check_choice(cfg.schedule, "config.optim.schedule", SCHEDULES)
    check_positive(cfg.lr, "config.optim.lr")
    for field in ("final_lr", "warmup_steps", "weight_decay", "clip_norm"):
        check_positive(cfg[field], f"config.optim.{field}", allow_zero=True)
    if len(cfg.boundaries) != len(cfg.scales):
        raise UserError(
            f"config.optim.boundaries={tuple(cfg.boundaries)} and config.optim.scales={tuple(cfg.scales)}: "
            f"expected the same length"
        )


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
    """The learning-rate schedule named by ``cfg.schedule`` over ``total_steps``."""
    check_optim_config(cfg)
    total_steps = max(int(total_steps), 1)
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.lr)
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.lr, total_steps, alpha=cfg.final_lr / cfg.lr)
    if cfg.schedule == "warmup_cosine":
        warmup = min(int(cfg.warmup_steps), total_steps - 1)
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=cfg.lr, warmup_steps=warmup,
            decay_steps=total_steps, end_value=cfg.final_lr,
        )
    return optax.piecewise_constant_schedule(cfg.lr, dict(zip(map(int, cfg.boundaries), map(float, cfg.scales))))


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Returns the optimizer (with clipping) and its schedule, so the step can log the rate."""
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "adam":
        base = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    else:
        base = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.clip_norm:
        return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), base), schedule
    return base, schedule
