"""Typed configuration: Hydra YAML in configs/ composed with command-line overrides, checked against dataclasses.

`load_config("benchmark=smoke", "algo=moe_topk_sphere", "seeds=2")` returns a `Config`. Unknown keys and values of
the wrong type are errors (the dataclasses are the schema); `validate` checks the values. Every error is a
`ConfigError` with one line naming the field and what is allowed (closest valid names suggested). Nothing here imports
jax: a bad config fails in well under a second, before anything compiles (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
ACTOR_KINDS = ("dense", "moe_topk", "dense_moe", "ds_moe")
SPHERE_MODES = ("off", "loss", "grad")
# Kernel initialization of every network (networks.py, `layer_gains`): lecun = the official code's flax default.
NETWORK_INITS = ("lecun", "he")
# What the SPHERE penalty is computed on (sphere.py, `feature_penalty`): the paper's choice and its ablations.
SPHERE_TARGETS = ("last_layer", "all_layers", "per_expert", "grad_factor")
PHYSICS = ("mjx", "cpu", "warp")


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and what is allowed."""


def did_you_mean(value: str, allowed: Sequence[str]) -> str:
    """"; did you mean X?" for the closest allowed values (difflib), or "" when none is close."""
    close = difflib.get_close_matches(value, list(allowed), n=3)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def choice_error(name: str, value: Any, allowed: Sequence[str]) -> ConfigError:
    """`name: 'value' is not one of a, b, c; did you mean b?`: the one message for every value outside a list."""
    return ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}{did_you_mean(str(value), allowed)}")


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
    # lecun: every layer a plain flax nn.Dense (lecun_normal kernel, zero bias), as the official code;
    # he: He init on hidden layers, gain 0.01 on the expert heads and gate logits (this project's earlier default)
    init: str = "lecun"


@dataclass
class SphereConfig:
    mode: str = "off"  # off | loss (adaptive coefficient) | grad (gradient-norm ratio)
    ratio: float = 0.05
    # any mode: project the regularizer part of the gradient (SPHERE + gating) off the policy gradient when they
    # conflict (the official sphere_use_pcgrad)
    pcgrad: bool = False
    # > 0 adds the gating-isotropy penalty: "loss"/"off" with the adaptive coefficient gating_ratio |L_pi| / L_gating,
    # "grad" rescaled to gating_ratio x the policy-gradient norm (as the official code)
    gating_ratio: float = 0.0
    # last_layer: routing-weighted features of the last hidden expert layer (SPHERE); all_layers: the same penalty
    # summed over every hidden expert layer; per_expert: one penalty per expert on its own weighted features, summed;
    # grad_factor: the penalty on the backpropagated gradient factor of the last hidden expert layer
    target: str = "last_layer"


@dataclass
class PlasticityConfig:
    """Plasticity baselines applied to the actor (purejaxsphere/plasticity.py). The defaults turn all of them off."""

    l2_init: float = 0.0  # coefficient c of (c/2) ||theta - theta_0||^2, theta_0 = the run's first initialization
    parseval: float = 0.0  # coefficient of sum_l (64/d_l)^2 ||W_l^T W_l - 2 I||_F^2 over hidden weight matrices
    shrink: float = 1.0  # Shrink & Perturb at task boundaries: theta <- shrink * theta + perturb * theta_fresh
    perturb: float = 0.0
    redo_interval: int = 0  # ReDo: recycle tau-dormant hidden units every `redo_interval` PPO updates (0: off)
    redo_tau: float = 0.025


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
class DiagnosticsConfig:
    """Spectral diagnostics after every chunk on a fixed probe batch (purejaxsphere/metrics.py)."""

    enabled: bool = True
    probe_states: int = 32  # probe batch: states of a fixed-key random-action rollout of the task
    entk_states: int = 16  # the eNTK uses the first entk_states probe states (cost ~ states^2 x actions x params)
    dormant_tau: float = 0.0  # ReDo's tau for the dormant-neuron ratio


@dataclass
class WandbConfig:
    mode: str = "offline"  # disabled | offline | online; the WANDB_MODE environment variable wins when set
    project: str = "purejaxsphere"
    entity: str | None = None


# Float hyperparameters that only enter the compiled update arithmetically, so a list of values runs as one more
# vmap axis of the same program (`sweep.key=sphere.ratio sweep.values=[0.01,0.05,0.1]`).
SWEEPABLE = (
    "sphere.ratio", "ppo.learning_rate", "ppo.ent_coef", "ppo.clip_eps", "ppo.vf_coef", "ppo.target_kl",
    "ppo.gae_lambda",
)


@dataclass
class SweepConfig:
    """One hyperparameter swept inside one compiled program: every (value, seed) pair is a member of the vmap axis."""

    key: str | None = None  # one of SWEEPABLE; None: no sweep
    values: list[float] = field(default_factory=list)


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


@dataclass
class Config:
    benchmark: str = "smoke"
    algo: str = "moe_topk_sphere"
    tasks: list[str] = field(default_factory=list)
    episode_length: int | None = None  # None: each task's own
    seeds: Any = 2  # n -> seeds 0..n-1; a list -> those seeds
    num_envs: int = 128
    total_timesteps: int = 10_000_000  # per task and seed (rounded up to whole PPO updates)
    physics: str = "mjx"  # mjx | cpu | warp (MJX's Warp implementation: mujoco-mjx >= 3.3.5, CUDA)
    protocol: str = "crl"  # crl (carry between tasks) | rl (every task from scratch)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    sphere: SphereConfig = field(default_factory=SphereConfig)
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    carry: CarryConfig = field(default_factory=CarryConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: bool = False  # also write TensorBoard event files under RUN_DIR/tensorboard
    video: bool = False  # render one episode per task at its end into RUN_DIR/videos and W&B (purejaxsphere/render.py)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)
    run_dir: str | None = None  # None: <runs_root>/<time>_<benchmark>_<algo>
    runs_root: str = "runs"
    resume: str | None = None
    # JAX's persistent compilation cache: a second run (or a resume) of the same programs skips compiling.
    # Empty string: off.
    compile_cache: str = "~/.cache/purejaxsphere/xla"
    distributed: bool = False  # several hosts: jax.distributed.initialize() from the standard environment
    progress: bool = True


def load_config(*overrides: str, config_dir: str | Path | None = None) -> Config:
    """Compose configs/config.yaml with Hydra overrides (`key=value`, `group=option`) into a validated Config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    # The dataclass schema is the base of configs/config.yaml, so every field can be overridden as `key=value`.
    ConfigStore.instance().store(name="schema", node=Config)
    config_dir = Path(config_dir or CONFIG_DIR)
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            composed = compose(config_name="config", overrides=list(overrides))
    except MissingConfigException as error:  # `algo=typo`: Hydra's first line names neither the options nor a fix
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        raise choice_error(group or "config", option, group_options(config_dir, group)) from None
    except (HydraException, ValueError) as error:  # ValueError: Hydra's parser on inputs like `=3`
        if isinstance(error.__cause__, OmegaConfBaseException):
            raise schema_error(error.__cause__) from None
        raise ConfigError(str(error).splitlines()[0]) from None
    return from_dict(OmegaConf.to_container(composed, resolve=True))


def group_options(config_dir: Path, group: str) -> list[str]:
    """The options of a config group: the YAML files in configs/<group>/ (e.g. algo: moe_topk_sphere, ppo, ...)."""
    return sorted(path.stem for path in (config_dir / group).glob("*.yaml"))


def schema_fields(schema: type = Config, prefix: str = "") -> dict[str, str]:
    """Every key of the schema, dotted, with its declared type: {"ppo.learning_rate": "float", ...}."""
    out: dict[str, str] = {}
    for item in dataclasses.fields(schema):
        key = prefix + item.name
        nested = item.default_factory if dataclasses.is_dataclass(item.default_factory) else None
        out[key] = nested.__name__ if nested else str(item.type)
        if nested:
            out.update(schema_fields(nested, key + "."))
    return out


def closest_keys(key: str, keys: Sequence[str]) -> str:
    """did_you_mean over dotted keys: by the whole key (`ppo.lerning_rate`), else by its last part (`learning_rate`
    given without its section suggests `ppo.learning_rate`)."""
    whole = did_you_mean(key, keys)
    if whole:
        return whole
    by_leaf: dict[str, list[str]] = {}
    for name in keys:
        by_leaf.setdefault(name.rpartition(".")[2], []).append(name)
    close = difflib.get_close_matches(key.rpartition(".")[2], list(by_leaf), n=3)
    names = [name for leaf in close for name in by_leaf[leaf]]
    return f"; did you mean {' or '.join(names)}?" if names else ""


def schema_error(error: Exception) -> ConfigError:
    """One line for an OmegaConf schema error: an unknown key (closest keys suggested) or a value of the wrong type."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    key = str(getattr(error, "full_key", "") or "")
    fields = schema_fields()
    if isinstance(error, (ConfigKeyError, ConfigAttributeError)) and key not in fields:
        parent = key.rpartition(".")[0]
        siblings = [name.rpartition(".")[2] for name in fields if name.rpartition(".")[0] == parent]
        where = f"keys of {parent}" if parent else "top-level keys"
        return ConfigError(f"{key}: unknown key{closest_keys(key, fields)} ({where}: {', '.join(siblings)})")
    declared = fields.get(key.split("[")[0])
    if declared is not None:
        return ConfigError(f"{key}: expected {declared}, got {getattr(error, 'value', None)!r}")
    return ConfigError(f"{key}: {str(error).splitlines()[0]}" if key else str(error).splitlines()[0])


def from_dict(values: dict[str, Any]) -> Config:
    """Check a plain dict against the Config schema (unknown keys and wrong types are errors) and validate it."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), values)
    except OmegaConfBaseException as error:
        raise schema_error(error) from None
    cfg: Config = OmegaConf.to_object(merged)
    if cfg.protocol == "rl":
        cfg.carry = CarryConfig(params=False, optimizer=False, normalizer=False)
    validate(cfg)
    return cfg


# Keys that earlier versions wrote into a run's config.yaml and that no longer exist (the fault-injection test hook,
# replaced by a test env that produces NaN: tests/faults.py); dropped when a run directory is read, so an older
# run's config.yaml still reads.
RETIRED_KEYS = {"fault": ("inject_seed", "inject_task", "inject_chunk")}


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
    for section, keys in RETIRED_KEYS.items():
        for key in keys:
            (values.get(section) or {}).pop(key, None)
    return from_dict(values)


def absolute_path(path: str | Path) -> Path:
    """`path` with `~` expanded, made absolute against the current directory (symlinks kept). Orbax and JAX's
    compilation cache refuse relative paths, and a run must not change meaning if the process changes directory."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def resolve_paths(cfg: Config, run_dir: str | Path) -> Config:
    """A copy of `cfg` whose paths are absolute: `run_dir` (the run's directory, typed or defaulted), `runs_root`,
    `resume` and `compile_cache` (empty: off, kept). Called once where a path enters (the CLI); everything after it
    sees absolute paths only."""
    return dataclasses.replace(
        cfg,
        run_dir=str(absolute_path(run_dir)),
        runs_root=str(absolute_path(cfg.runs_root)),
        resume=str(absolute_path(cfg.resume)) if cfg.resume else cfg.resume,
        compile_cache=str(absolute_path(cfg.compile_cache)) if cfg.compile_cache else cfg.compile_cache,
    )


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


def _require_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise choice_error(name, value, allowed)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MAX_SEED = 2**32 - 1  # jax.random.PRNGKey's range


def validate_seeds(seeds: Any) -> None:
    """`seeds: n` (n >= 1) or a non-empty list of distinct ints in [0, 2^32)."""
    allowed = f"a positive int n (seeds 0..n-1) or a non-empty list of distinct ints in 0..{MAX_SEED}"
    if _is_int(seeds):
        _require(seeds > 0, f"seeds: expected {allowed}, got {seeds!r}")
        return
    _require(
        isinstance(seeds, list) and len(seeds) > 0 and all(_is_int(s) and 0 <= s <= MAX_SEED for s in seeds),
        f"seeds: expected {allowed}, got {seeds!r}",
    )
    _require(len(set(seeds)) == len(seeds), f"seeds: expected {allowed}, got duplicates in {seeds}")


def validate_tasks(tasks: Sequence[str], physics: str) -> None:
    """Every task is registered (closest names suggested) and runs on the run's physics backend.

    Shapes never conflict: the trainer zero-pads observations and actions to the largest task of the sequence. What
    can conflict is the physics backend, one per run: every task's suite must support it (Brax tasks run on MJX only).
    """
    from envs.registry import SUITE_PHYSICS, list_tasks  # jax-free: the registry's static name table

    _require(len(tasks) > 0, "tasks: the task sequence is empty; give a list of task names, e.g. tasks=[brax/reacher]")
    known = list_tasks()
    for index, name in enumerate(tasks):
        _require_choice(f"tasks[{index}]", name, known)
        backends = SUITE_PHYSICS.get(name.split("/")[0])
        _require(
            backends is None or physics in backends,
            f"physics: {physics!r} is not available for {name} (tasks[{index}]); its suite runs on "
            f"{', '.join(backends or ())}, and all tasks of a sequence share the run's physics",
        )


def validate_network(cfg: Config) -> None:
    """network.*: the actor kind, layer sizes, experts and routing."""
    net = cfg.network
    _require_choice("network.actor", net.actor, ACTOR_KINDS)
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
    _require_choice("network.init", net.init, NETWORK_INITS)


def validate_regularizers(cfg: Config) -> None:
    """sphere.* and plasticity.*: modes, targets and non-negative coefficients."""
    sph = cfg.sphere
    _require_choice("sphere.mode", sph.mode, SPHERE_MODES)
    _require(sph.ratio >= 0, f"sphere.ratio: must be >= 0, got {sph.ratio}")
    _require(sph.gating_ratio >= 0, f"sphere.gating_ratio: must be >= 0, got {sph.gating_ratio}")
    _require(
        sph.target in SPHERE_TARGETS, f"sphere.target: {sph.target!r} is not one of {', '.join(SPHERE_TARGETS)}"
    )
    pla = cfg.plasticity
    for name in ("l2_init", "parseval", "perturb", "redo_interval", "redo_tau"):
        _require(getattr(pla, name) >= 0, f"plasticity.{name}: must be >= 0, got {getattr(pla, name)}")
    _require(0 <= pla.shrink <= 1, f"plasticity.shrink: must be in [0, 1], got {pla.shrink}")


def validate_ppo(cfg: Config) -> None:
    """ppo.*: the schedule, positive sizes and rates, coefficients in range, minibatches dividing the batch."""
    ppo = cfg.ppo
    _require_choice("ppo.lr_schedule", ppo.lr_schedule, ("adaptive", "linear", "early_stop"))
    for name in ("n_steps", "minibatch_size", "update_epochs"):
        _require(getattr(ppo, name) > 0, f"ppo.{name}: must be positive, got {getattr(ppo, name)}")
    for name in ("learning_rate", "final_learning_rate", "target_kl", "obs_clip", "adam_eps", "max_grad_norm",
                 "clip_eps"):
        _require(getattr(ppo, name) > 0, f"ppo.{name}: must be positive, got {getattr(ppo, name)}")
    for name in ("ent_coef", "vf_coef"):
        _require(getattr(ppo, name) >= 0, f"ppo.{name}: must be >= 0, got {getattr(ppo, name)}")
    for name in ("gamma", "gae_lambda", "decay_fraction"):
        _require(0 <= getattr(ppo, name) <= 1, f"ppo.{name}: must be in [0, 1], got {getattr(ppo, name)}")
    batch = cfg.num_envs * ppo.n_steps
    _require(
        batch % ppo.minibatch_size == 0,
        f"ppo.minibatch_size: {ppo.minibatch_size} does not divide the rollout batch num_envs x ppo.n_steps = {batch}",
    )


def validate(cfg: Config) -> None:
    """Check values that the schema cannot: choices, positivity, divisibility, tasks, seeds, paths."""
    validate_seeds(cfg.seeds)
    _require_choice("physics", cfg.physics, PHYSICS)
    validate_tasks(cfg.tasks, cfg.physics)
    if cfg.physics == "warp":
        from envs.warp import warp_stack_problem  # jax-free: package versions and the driver's files

        problem = warp_stack_problem()
        _require(problem is None, problem or "")
    _require_choice("protocol", cfg.protocol, ("crl", "rl"))
    for name in ("num_envs", "total_timesteps"):
        _require(getattr(cfg, name) > 0, f"{name}: must be positive, got {getattr(cfg, name)}")
    if cfg.episode_length is not None:
        _require(
            cfg.episode_length > 0,
            f"episode_length: must be positive (or null: each task's own), got {cfg.episode_length}",
        )
    validate_network(cfg)
    validate_regularizers(cfg)
    validate_ppo(cfg)
    _require(cfg.eval.interval > 0, f"eval.interval: must be positive, got {cfg.eval.interval}")
    _require(cfg.eval.episodes > 0, f"eval.episodes: must be positive, got {cfg.eval.episodes}")
    validate_sweep(cfg)
    diag = cfg.diagnostics
    _require(diag.probe_states > 0, f"diagnostics.probe_states: must be positive, got {diag.probe_states}")
    _require(
        0 < diag.entk_states <= diag.probe_states,
        f"diagnostics.entk_states: must be in 1..diagnostics.probe_states ({diag.probe_states}), "
        f"got {diag.entk_states}",
    )
    _require(diag.dormant_tau >= 0, f"diagnostics.dormant_tau: must be >= 0, got {diag.dormant_tau}")
    _require(cfg.checkpoint.every > 0, f"checkpoint.every: must be positive, got {cfg.checkpoint.every}")
    _require(cfg.checkpoint.keep_last >= 1, f"checkpoint.keep_last: must be >= 1, got {cfg.checkpoint.keep_last}")
    _require_choice("fault.on_nan", cfg.fault.on_nan, ("stop", "drop_seed"))
    _require_choice("wandb.mode", cfg.wandb.mode, ("disabled", "offline", "online"))
    if cfg.resume is not None:
        _require(
            Path(cfg.resume).is_dir(), f"resume: {cfg.resume!r} is not a directory; expected an existing run directory"
        )


def with_value(cfg: Config, key: str, value: Any) -> Config:
    """A copy of `cfg` with the dotted field `key` set to `value` (a float, or a traced scalar inside a program)."""
    section, name = key.split(".")
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})


def sweep_values(cfg: Config) -> list[float | None]:
    """The swept values, or [None] without a sweep."""
    return [float(v) for v in cfg.sweep.values] if cfg.sweep.key else [None]


def validate_sweep(cfg: Config) -> None:
    sweep = cfg.sweep
    if sweep.key is None:
        _require(not sweep.values, "sweep.values: given without sweep.key (one of " + ", ".join(SWEEPABLE) + ")")
        return
    _require_choice("sweep.key", sweep.key, SWEEPABLE)
    _require(len(sweep.values) > 0, f"sweep.values: a non-empty list of values for {sweep.key}")
    _require(len(set(sweep.values)) == len(sweep.values), f"sweep.values: duplicate values in {sweep.values}")
    for value in sweep.values:  # each point must be a valid config on its own
        point = with_value(dataclasses.replace(cfg, sweep=SweepConfig()), sweep.key, float(value))
        try:
            validate(point)
        except ConfigError as error:
            raise ConfigError(f"sweep.values: {sweep.key}={value}: {error}") from None

