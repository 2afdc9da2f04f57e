"""Render the MetaWorld parity and expert-success JSON files (scripts/metaworld_parity.py, metaworld_expert.py) as
the markdown tables of docs/parity_metaworld.md.

    python scripts/metaworld_report.py --parity /tmp/mw_parity_cpu.json --expert /tmp/mw_expert_refcpu.json \
        /tmp/mw_expert_mjx.json
"""

from __future__ import annotations

import argparse
import json

NAMES = ("hammer-v3", "push-wall-v3", "faucet-close-v3", "push-back-v3", "stick-pull-v3", "handle-press-side-v3",
         "push-v3", "shelf-place-v3", "window-close-v3", "peg-unplug-side-v3")


def _e(x: float) -> str:
    return f"{x:.1e}"


def parity_table(rows: list[dict]) -> str:
    out = ["| task | backend | mode | steps | reset obs | obs max (median) | hand+gripper | objects | goal | "
           "reward max (median) | worst info term | success flag mismatches (ref / port success steps) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        terms = {k: v for k, v in r["term_err"].items() if k != "unscaled_reward"}
        worst = max(terms, key=terms.get)
        out.append(
            f"| {r['name']} | {r['backend']} | {'one-step' if r['resync'] else 'open loop'} | {r['steps']} | "
            f"{_e(r['reset_obs_err'])} | {_e(r['obs_err'])} ({_e(r['obs_err_median'])}) | {_e(r['obs_err_hand'])} | "
            f"{_e(r['obs_err_objects'])} | {_e(r['obs_err_goal'])} | {_e(r['reward_err'])} "
            f"({_e(r['reward_err_median'])}) | {worst} {_e(terms[worst])} | {r['success_mismatch']} "
            f"({r['success_steps_ref']} / {r['success_steps_port']}) |")
    return "\n".join(out)


def expert_table(expert: dict) -> str:
    out = ["| task | package: ever | package: last step | CPU backend: ever | CPU: last | MJX: ever | MJX: last |",
           "|---|---|---|---|---|---|---|"]
    for name in NAMES:
        row = expert.get(name, {})

        def cell(side: str, key: str, row: dict = row) -> str:
            return f"{row[side][key]:.0%}" if side in row else "not run"

        out.append(f"| {name} | {cell('reference', 'ever')} | {cell('reference', 'last')} | {cell('cpu', 'ever')} | "
                   f"{cell('cpu', 'last')} | {cell('mjx', 'ever')} | {cell('mjx', 'last')} |")
    return "\n".join(out)


def timing_table(expert: dict) -> str:
    out = ["| task | envs | compile (s) | step of the batch (s) | env steps/s |", "|---|---|---|---|---|"]
    for name in NAMES:
        m = expert.get(name, {}).get("mjx")
        if m and "compile_s" in m:
            out.append(f"| {name} | {m['n_envs']} | {m['compile_s']:.0f} | {m['step_s']:.2f} | "
                       f"{m['n_envs'] / m['step_s']:.1f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parity", nargs="*", default=[])
    parser.add_argument("--expert", nargs="*", default=[])
    args = parser.parse_args()
    rows = []
    for path in args.parity:
        with open(path) as f:
            rows += list(json.load(f).values())
    expert: dict = {}
    for path in args.expert:
        with open(path) as f:
            for name, row in json.load(f).items():
                expert.setdefault(name, {}).update(row)
    mjx_parity = [expert[n]["mjx_parity_resync"] for n in NAMES if "mjx_parity_resync" in expert.get(n, {})]
    print("## Parity\n")
    print(parity_table(rows + mjx_parity))
    print("\n## Scripted experts\n")
    print(expert_table(expert))
    print("\n## MJX speed\n")
    print(timing_table(expert))


if __name__ == "__main__":
    main()
