"""Every wandb sweep in sweeps/ and every Optuna search in configs/hparams_search/ yields valid runs.

A sweep is only checked by the server when runs start failing, hours later; here each
parameter value (for distributions: min, midpoint and max, typed as the sweep server
types them) is rendered exactly as ``wandb agent`` renders ``${args_no_hyphens}``,
composed with Hydra's compose API and checked by ``validate_config`` — and the value
must actually land in the composed config (an experiment file or a missing key could
otherwise swallow it).  Parameters that pick a config group (``encoder``) are combined
with every parameter under that group (``encoder.hidden_dim``), since a key that exists
in one option may not exist in another.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

import kpremia
from kpremia.app.config_checks import validate_config

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
CONFIGS = Path(kpremia.__file__).parent / "configs"
SEARCHES = sorted(p.stem for p in (CONFIGS / "hparams_search").glob("*.yaml"))
COMMAND = ["${env}", "${interpreter}", "-m", "kpremia", "fit", "${args_no_hyphens}"]
METHODS = {"grid", "random", "bayes"}


def _quantize(x: float, q: float | None) -> float:
    return x if q is None else round(x / q) * q


def sample_points(name: str, spec: dict[str, Any]) -> list[Any]:
    """The values of one wandb parameter a test must try, typed like the sweep server's."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    dist = spec.get("distribution") or ("int_uniform" if all(isinstance(spec[k], int) for k in ("min", "max"))
                                        else "uniform")
    lo, hi, q = spec["min"], spec["max"], spec.get("q")
    if dist == "int_uniform":
        return [int(lo), int((lo + hi) // 2), int(hi)]
    if dist in ("uniform", "q_uniform"):
        return [_quantize(float(x), q) for x in (lo, (lo + hi) / 2, hi)]
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        return [_quantize(float(x), q) for x in (lo, math.sqrt(lo * hi), hi)]
    raise AssertionError(f"{name}: distribution {dist!r} has no test points here; add them to sample_points")


def agent_overrides(params: dict[str, Any]) -> list[str]:
    """``${args_no_hyphens}`` exactly as the wandb agent builds it from one run's parameters."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args_no_hyphens"]


def _lookup(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def check_lands(cfg: dict[str, Any], params: dict[str, Any]) -> None:
    """Each parameter's value is what the composed config holds (group choices: the option's name)."""
    for key, value in params.items():
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: resolved against other keys, checked by validate_config's caller
        if (CONFIGS / key).is_dir():
            if key in cfg and isinstance(cfg[key], dict) and "name" in cfg[key]:
                assert cfg[key]["name"] == value, f"{key}={value} composed to {cfg[key]['name']}"
            continue
        got = _lookup(cfg, key)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, (key, value, got)


def combinations(parameters: dict[str, dict[str, Any]], grid: bool) -> list[dict[str, Any]]:
    """Grids: every combination.  Otherwise each value of each parameter with the others at their
    first value, plus every combination of group choices with the parameters under those groups."""
    points = {k: sample_points(k, spec) for k, spec in parameters.items()}
    first = {k: v[0] for k, v in points.items()}
    if grid:
        keys = list(points)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*points.values())]
    runs = [{**first, key: value} for key, values in points.items() for value in values]
    groups = [k for k in points if "." not in k and (CONFIGS / k).is_dir()]
    coupled = groups + [k for k in points if k.split(".")[0] in groups and "." in k]
    for combo in itertools.product(*(points[k] for k in coupled)):
        runs.append({**first, **dict(zip(coupled, combo, strict=True))})
    unique = {tuple(sorted((k, repr(v)) for k, v in run.items())): run for run in runs}
    return list(unique.values())


def load_sweep(path: Path) -> dict[str, Any]:
    from wandb.sdk.launch.sweeps.utils import load_sweep_config

    config = load_sweep_config(str(path))  # the loader `wandb sweep` uses
    assert config, f"{path} is empty or not YAML"
    return config


def test_there_are_sweeps_and_searches():
    assert {p.name for p in SWEEPS} >= {"ppo_bayes.yaml", "encoders_grid.yaml"}
    assert "ppo_optuna" in SEARCHES


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_file_shape(path):
    config = load_sweep(path)
    assert config["method"] in METHODS
    assert config["metric"] == {"name": "val/excess_return", "goal": "maximize"}  # algo.monitor
    assert config["command"] == COMMAND, "every parameter must reach `python -m kpremia fit` as a Hydra override"
    params = config["parameters"]
    assert params["logger"] == {"value": "wandb"}
    for name, spec in params.items():
        kinds = [k for k in ("value", "values", "distribution", "min") if k in spec]
        assert kinds, f"{name}: needs value, values or a distribution"
        if config["method"] == "grid":
            assert "value" in spec or "values" in spec, f"{name}: a grid sweep takes only value/values"
    # the agent's argv, macros expanded as wandb_agent does it
    from wandb.sdk.launch.sweeps.utils import create_sweep_command

    run = {k: v[0] for k, v in ((k, sample_points(k, s)) for k, s in params.items())}
    expanded = {"env": ["/usr/bin/env"], "interpreter": ["python"], "args_no_hyphens": agent_overrides(run)}
    argv = [part for chunk in create_sweep_command(list(config["command"]))
            for part in (expanded.get(chunk[2:-1], []) if chunk.startswith("${") else [chunk])]
    assert argv[:5] == ["/usr/bin/env", "python", "-m", "kpremia", "fit"] and "logger=wandb" in argv


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_sweep_value_composes_and_validates(compose_cfg, path):
    config = load_sweep(path)
    runs = combinations(config["parameters"], grid=config["method"] == "grid")
    assert runs
    for params in runs:
        overrides = agent_overrides(params)
        cfg = compose_cfg(*overrides)
        validate_config(cfg)
        check_lands(cfg, params)
        if "experiment_name" in params:
            assert "${" not in str(cfg["experiment_name"])


def test_rendering_matches_hydra_types(compose_cfg):
    """Floats as the agent prints them (1e-05, 0.30000000000000004) parse as floats, ints as ints."""
    overrides = agent_overrides({"algo.lr": 1e-05, "algo.clip_epsilon": 0.1 + 0.2, "algo.update_epochs": 3,
                                 "encoder": "lstm", "encoder.hidden_dim": 32})
    assert overrides == ["algo.lr=1e-05", "algo.clip_epsilon=0.30000000000000004", "algo.update_epochs=3",
                         "encoder=lstm", "encoder.hidden_dim=32"]
    cfg = compose_cfg(*overrides)
    assert cfg["algo"]["lr"] == 1e-05 and isinstance(cfg["algo"]["update_epochs"], int)
    assert cfg["encoder"]["name"] == "lstm" and cfg["encoder"]["hidden_dim"] == 32


def test_encoders_without_hidden_dim_are_not_swept_with_it():
    """``encoder.hidden_dim`` exists only in some encoder configs; a sweep must not pair it with others."""
    import yaml

    has_width = {p.stem for p in (CONFIGS / "encoder").glob("*.yaml") if "hidden_dim" in yaml.safe_load(p.read_text())}
    assert {"gru_attn", "lstm"} <= has_width
    for path in SWEEPS:
        params = load_sweep(path)["parameters"]
        if "encoder.hidden_dim" in params:
            assert set(sample_points("encoder", params["encoder"])) <= has_width, path.name


def _optuna_points(sweep: Any) -> list[Any]:
    """Test points of one Optuna sweeper parameter (Hydra sweep syntax)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    if isinstance(sweep, ChoiceSweep):
        return list(sweep.list)
    if isinstance(sweep, RangeSweep):
        return list(range(int(sweep.start), int(sweep.stop), int(sweep.step or 1)))
    if isinstance(sweep, IntervalSweep):
        lo, hi = sweep.start, sweep.end
        mid = math.sqrt(lo * hi) if "log" in sweep.tags else (lo + hi) / 2
        if isinstance(lo, int) and isinstance(hi, int):
            return [lo, int(mid), hi]
        return [float(lo), float(mid), float(hi)]
    raise AssertionError(f"unsupported sweep {sweep!r}")


@pytest.mark.parametrize("search", SEARCHES)
def test_every_optuna_search_value_composes_and_validates(search):
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="kpremia.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hparams_search={search}"], return_hydra_config=True)
        sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)
        assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"
        assert sweeper["storage"] is None, "in-memory by default: sqlite needs SQLAlchemy < 2 (docs/scale.md)"
        assert sweeper["sampler"].get("seed") is not None, "a seeded sampler makes the search reproducible"
        parser = OverridesParser.create()
        points = {}
        for key, text in sweeper["params"].items():
            (override,) = parser.parse_overrides([f"{key}={text}"])
            points[key] = _optuna_points(override.value())
        first = {k: v[0] for k, v in points.items()}
        runs = [{**first, key: value} for key, values in points.items() for value in values]
        for params in runs:
            composed = compose(config_name="config", overrides=[f"hparams_search={search}",
                                                               *(f"{k}={v}" for k, v in params.items())])
            resolved = OmegaConf.to_container(composed, resolve=True)
            validate_config(resolved)
            check_lands(resolved, params)
