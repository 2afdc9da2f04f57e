"""Typed configuration: Hydra YAML in configs/ composed with command-line overrides, checked against dataclasses.

`load_config("benchmark=smoke", "algo=moe_topk_sphere", "seeds=2")` returns a `Config`. Unknown keys and values of
the wrong type are errors (the dataclasses are the schema); `validate` checks the values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
ACTOR_KINDS = ("dense", "moe_topk", "dense_moe", "ds_moe")
# Task suites whose MJX models hit the XLA:CPU fusion-emitter regression (MuJoCo issue 2957; 60x on MetaWorld).
XLA_CPU_WORKAROUND_SUITES = ("humanoidbench/", "metaworld/")
XLA_CPU_WORKAROUND_FLAG = "--xla_cpu_use_fusion_emitters=false"


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and what is allowed."""


@dataclass
class NetworkConfig:
    actor: str = "moe_topk"  # dense | moe_topk | dense_moe | ds_moe
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    gate_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    n_experts: int = 10
    top_k: int = 2
    temperature: float = 1.0
    n_shared: int = 1  # DS-MoE only: always-on shared experts


@dataclass
class SphereConfig:
    mode: str = "off"  # off | loss (adaptive coefficient) | grad (gradient-norm ratio)
    ratio: float = 0.05
    pcgrad: bool = False  # grad mode: project the SPHERE gradient off the policy gradient when they conflict
    gating_ratio: float = 0.0  # > 0 adds the gating-isotropy penalty with an adaptive coefficient


@dataclass
class PPOConfig:
    n_steps: int = 16
    minibatch_size: int = 64
    update_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    adam_eps: float = 1e-5
    # adaptive: KL-adaptive rate (starts at learning_rate, /1.5 or x1.5 after each minibatch by approx_kl against
    #           target_kl, clipped to [1e-5, 1e-2]; all epochs run)  -- the official SPHERE behaviour
    # linear:   linear from learning_rate to final_learning_rate over decay_fraction of the task, then constant
    # early_stop: the linear schedule plus stopping the epoch loop once approx_kl > 1.5 * target_kl
    lr_schedule: str = "adaptive"
    learning_rate: float = 3e-4
    final_learning_rate: float = 1e-4
    decay_fraction: float = 0.5
    target_kl: float = 0.03
    normalize_advantage: bool = True
    normalize_obs: bool = True
    obs_clip: float = 10.0


@dataclass
class CarryConfig:
    """What a task inherits from the previous one (continual RL). The RL protocol turns all of it off."""

    params: bool = True
    optimizer: bool = True
    normalizer: bool = True


@dataclass
class EvalConfig:
    interval: int = 100_000  # env steps per seed between evaluations = one chunk of the compiled program
    episodes: int = 10


@dataclass
class WandbConfig:
    mode: str = "offline"  # disabled | offline | online; the WANDB_MODE environment variable wins when set
    project: str = "purejaxsphere"
    entity: Optional[str] = None


@dataclass
class CheckpointConfig:
    """Orbax checkpoints of the whole carry at chunk boundaries (see purejaxsphere/checkpoint.py)."""

    enabled: bool = True
    every: int = 1  # chunks between checkpoints (a task's last chunk is always saved)
    keep_last: int = 3  # besides every task's final checkpoint, which is always kept


@dataclass
class FaultConfig:
    """Numerical faults (NaN/inf in losses, gradients, parameters, observations), checked after every chunk."""

    on_nan: str = "stop"  # stop: keep the last good checkpoint and exit | drop_seed: freeze the bad seed, go on
    # Test hook: inject a NaN into seed `inject_seed`'s policy loss during chunk `inject_chunk` of task `inject_task`.
    inject_seed: Optional[int] = None
    inject_task: int = 0
    inject_chunk: int = 0


@dataclass
class Config:
    benchmark: str = "smoke"
    algo: str = "moe_topk_sphere"
    tasks: list[str] = field(default_factory=list)
    episode_length: Optional[int] = None  # None: each task's own
    seeds: Any = 2  # n -> seeds 0..n-1; a list -> those seeds
    num_envs: int = 128
    total_timesteps: int = 10_000_000  # per task and seed (rounded up to whole chunks)
    physics: str = "mjx"  # mjx | cpu
    protocol: str = "crl"  # crl (carry between tasks) | rl (every task from scratch)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    sphere: SphereConfig = field(default_factory=SphereConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    carry: CarryConfig = field(default_factory=CarryConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: bool = False  # also write TensorBoard event files under RUN_DIR/tensorboard
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)
    run_dir: Optional[str] = None  # None: <runs_root>/<time>_<benchmark>_<algo>
    runs_root: str = "runs"
    resume: Optional[str] = None
    distributed: bool = False  # several hosts: jax.distributed.initialize() from the standard environment
    progress: bool = True


def load_config(*overrides: str, config_dir: str | Path | None = None) -> Config:
    """Compose configs/config.yaml with Hydra overrides (`key=value`, `group=option`) into a validated Config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException

    # The dataclass schema is the base of configs/config.yaml, so every field can be overridden as `key=value`.
    ConfigStore.instance().store(name="schema", node=Config)
    config_dir = Path(config_dir or CONFIG_DIR)
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            composed = compose(config_name="config", overrides=list(overrides))
    except HydraException as error:
        raise ConfigError(str(error).splitlines()[0]) from None
    return from_dict(OmegaConf.to_container(composed, resolve=True))


def from_dict(values: dict[str, Any]) -> Config:
    """Check a plain dict against the Config schema (unknown keys and wrong types are errors) and validate it."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), values)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"{key}: {str(error).splitlines()[0]}" if key else str(error).splitlines()[0]) from None
    cfg: Config = OmegaConf.to_object(merged)
    if cfg.protocol == "rl":
        cfg.carry = CarryConfig(params=False, optimizer=False, normalizer=False)
    validate(cfg)
    return cfg


def read_run_config(run_dir: str | Path) -> Config:
    """The resolved configuration a run directory was trained with (its config.yaml)."""
    import yaml

    config_file = Path(run_dir) / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        values = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_file}: unreadable YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{config_file}: not a config mapping")
    return from_dict(values)


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def seed_list(cfg: Config) -> list[int]:
    """`seeds: n` means seeds 0..n-1; a list means exactly those seeds."""
    if isinstance(cfg.seeds, int):
        return list(range(cfg.seeds))
    return [int(seed) for seed in cfg.seeds]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(cfg: Config) -> None:
    """Check values that the schema cannot: choices, positivity, divisibility."""
    _require(len(cfg.tasks) > 0, "tasks: the task sequence is empty")
    seeds = cfg.seeds
    _require(
        (isinstance(seeds, int) and seeds > 0)
        or (isinstance(seeds, list) and len(seeds) > 0 and all(isinstance(s, int) for s in seeds)),
        f"seeds: expected a positive int or a non-empty list of ints, got {seeds!r}",
    )
    if isinstance(seeds, list):
        _require(len(set(seeds)) == len(seeds), f"seeds: duplicate seeds in {seeds}")
    _require(cfg.physics in ("mjx", "cpu"), f"physics: {cfg.physics!r} is not one of mjx, cpu")
    _require(cfg.protocol in ("crl", "rl"), f"protocol: {cfg.protocol!r} is not one of crl, rl")
    for name in ("num_envs", "total_timesteps"):
        _require(getattr(cfg, name) > 0, f"{name}: must be positive, got {getattr(cfg, name)}")
    if cfg.episode_length is not None:
        _require(cfg.episode_length > 0, f"episode_length: must be positive, got {cfg.episode_length}")
    net = cfg.network
    _require(net.actor in ACTOR_KINDS, f"network.actor: {net.actor!r} is not one of {', '.join(ACTOR_KINDS)}")
    for name in ("hidden_sizes", "gate_hidden_sizes", "critic_hidden_sizes"):
        sizes = getattr(net, name)
        _require(len(sizes) > 0 and all(s > 0 for s in sizes), f"network.{name}: need positive sizes, got {sizes}")
    _require(net.n_experts > 0, f"network.n_experts: must be positive, got {net.n_experts}")
    _require(
        0 < net.top_k <= net.n_experts,
        f"network.top_k: must be in 1..network.n_experts ({net.n_experts}), got {net.top_k}",
    )
    _require(net.temperature > 0, f"network.temperature: must be positive, got {net.temperature}")
    _require(net.n_shared > 0, f"network.n_shared: must be positive, got {net.n_shared}")
    sph = cfg.sphere
    _require(sph.mode in ("off", "loss", "grad"), f"sphere.mode: {sph.mode!r} is not one of off, loss, grad")
    _require(sph.ratio >= 0, f"sphere.ratio: must be >= 0, got {sph.ratio}")
    _require(sph.gating_ratio >= 0, f"sphere.gating_ratio: must be >= 0, got {sph.gating_ratio}")
    ppo = cfg.ppo
    _require(
        ppo.lr_schedule in ("adaptive", "linear", "early_stop"),
        f"ppo.lr_schedule: {ppo.lr_schedule!r} is not one of adaptive, linear, early_stop",
    )
    for name in ("n_steps", "minibatch_size", "update_epochs"):
        _require(getattr(ppo, name) > 0, f"ppo.{name}: must be positive, got {getattr(ppo, name)}")
    for name in ("learning_rate", "final_learning_rate", "target_kl", "obs_clip", "adam_eps", "max_grad_norm"):
        _require(getattr(ppo, name) > 0, f"ppo.{name}: must be positive, got {getattr(ppo, name)}")
    for name in ("gamma", "gae_lambda", "decay_fraction"):
        _require(0 <= getattr(ppo, name) <= 1, f"ppo.{name}: must be in [0, 1], got {getattr(ppo, name)}")
    batch = cfg.num_envs * ppo.n_steps
    _require(
        batch % ppo.minibatch_size == 0,
        f"ppo.minibatch_size: {ppo.minibatch_size} does not divide the rollout batch num_envs x ppo.n_steps = {batch}",
    )
    _require(cfg.eval.interval > 0, f"eval.interval: must be positive, got {cfg.eval.interval}")
    _require(cfg.eval.episodes > 0, f"eval.episodes: must be positive, got {cfg.eval.episodes}")
    _require(cfg.checkpoint.every > 0, f"checkpoint.every: must be positive, got {cfg.checkpoint.every}")
    _require(cfg.checkpoint.keep_last >= 1, f"checkpoint.keep_last: must be >= 1, got {cfg.checkpoint.keep_last}")
    _require(
        cfg.fault.on_nan in ("stop", "drop_seed"), f"fault.on_nan: {cfg.fault.on_nan!r} is not one of stop, drop_seed"
    )
    if cfg.fault.inject_seed is not None:
        _require(
            cfg.fault.inject_seed in seed_list(cfg),
            f"fault.inject_seed: {cfg.fault.inject_seed} is not one of the run's seeds {seed_list(cfg)}",
        )
    _require(
        cfg.wandb.mode in ("disabled", "offline", "online"),
        f"wandb.mode: {cfg.wandb.mode!r} is not one of disabled, offline, online",
    )


def needs_xla_cpu_workaround(cfg: Config) -> bool:
    """Whether MJX physics of a contact-rich suite runs in this process (then set XLA_CPU_WORKAROUND_FLAG before
    jax initialises its CPU backend). Not for network-only work or contact-free Brax tasks: there the flag makes
    the PPO update ~3x slower on CPU (measured on the smoke sequence)."""
    return cfg.physics == "mjx" and any(task.startswith(XLA_CPU_WORKAROUND_SUITES) for task in cfg.tasks)
