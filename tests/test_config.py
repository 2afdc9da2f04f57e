"""Configuration: Hydra composition into the typed schema, and clear errors (exit code 2) for bad input."""

import pytest

from purejaxsphere.cli import main
from purejaxsphere.config import ConfigError, load_config, seed_list


def test_defaults_and_groups():
    cfg = load_config()
    assert (cfg.algo, cfg.benchmark, cfg.sphere.mode, cfg.sphere.ratio) == ("moe_topk_sphere", "smoke", "loss", 0.05)
    assert seed_list(cfg) == [0, 1]
    grad = load_config("algo=moe_topk_sphere_gradscale", "seeds=[3,5]")
    assert (grad.sphere.mode, grad.sphere.ratio, seed_list(grad)) == ("grad", 0.001, [3, 5])
    assert load_config("algo=ppo").network.actor == "dense"
    rl = load_config("protocol=rl")
    assert not (rl.carry.params or rl.carry.optimizer or rl.carry.normalizer)
    hb = load_config("benchmark=humanoidbench_h1")
    assert (hb.num_envs, hb.ppo.n_steps, hb.ppo.minibatch_size, hb.ppo.update_epochs, len(hb.tasks)) == (
        128, 16, 64, 10, 5)


def test_metaworld_settings_official_base_and_humanoidbench_one_override_apart():
    # sphere-rl/sphere's base PPO config (configs/algo/ppo/ppo.yaml, base.yaml) and its HumanoidBench scripts.
    keys = lambda c: (c.num_envs, c.ppo.n_steps, c.ppo.minibatch_size, c.ppo.update_epochs, c.ppo.lr_schedule,  # noqa: E731
                      c.ppo.learning_rate, c.ppo.normalize_obs, c.total_timesteps, c.eval.interval, c.tasks)
    base, hb = load_config("benchmark=metaworld_cw10"), load_config("benchmark=metaworld_cw10_hb_ppo")
    cw10 = [f"metaworld/{t}-v3" for t in ("hammer", "push-wall", "faucet-close", "push-back", "stick-pull",
                                          "handle-press-side", "push", "shelf-place", "window-close",
                                          "peg-unplug-side")]
    assert keys(base) == (8, 2048, 256, 10, "linear", 3e-4, False, 1_000_000, 100_000, cw10)
    assert (base.ppo.final_learning_rate, base.ppo.decay_fraction) == (1e-4, 1.0)  # lin_3e-4_1e-4 over the task
    assert keys(hb) == (128, 16, 64, 10, "adaptive", 3e-4, True, 1_000_000, 100_000, cw10)
    assert hb.ppo.target_kl == 0.03 and hb.benchmark == "metaworld_cw10_hb_ppo"


@pytest.mark.parametrize(
    "override,message",
    [
        ("foo=1", "foo"),
        ("network.top_k=9", "network.top_k"),
        ("algo=nope", "algo: 'nope' is not one of"),
        ("ppo.minibatch_size=1000", "ppo.minibatch_size"),
        ("sphere.mode=sometimes", "sphere.mode"),
        ("sphere.ratio=-1", "sphere.ratio"),
        ("seeds=0", "seeds"),
        ("num_envs=0", "num_envs"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(override)


def test_cli_exits_2_with_one_line(capsys):
    assert main(["train", "tasks=[brax/reachr]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean brax/reacher" in err[0]
    assert main(["train", "network.top_k=9"]) == 2
