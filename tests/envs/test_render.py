"""Rendering as gymnasium expects: rgb_array pictures of the episode, ansi text lines, modes checked."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import kpremia  # noqa: F401  (registers kpremia/KPremia-v0)
from kpremia.core.errors import UserError
from kpremia.envs.gym_env import KPremiaGymEnv
from kpremia.envs.render import HEIGHT, WIDTH, EpisodeHistory, render_ansi, render_rgb

from .conftest import build_market, random_walk_close

ENV_ID = "kpremia/KPremia-v0"
BLUE = np.array([31, 119, 180], dtype=np.uint8)  # price line
GREEN = np.array([44, 160, 44], dtype=np.uint8)  # long position area
RED = np.array([214, 39, 40], dtype=np.uint8)  # short position area


@pytest.fixture
def market():
    return build_market(random_walk_close(300), valid_from=20)


def _panel(frame: np.ndarray, i: int) -> np.ndarray:
    edges = np.linspace(0, frame.shape[0], 5).round().astype(int)
    return frame[edges[i]:edges[i + 1]]


def _pixels(panel: np.ndarray, color: np.ndarray) -> np.ndarray:
    return (panel == color).all(axis=2)


def test_rgb_array_is_an_image_of_the_episode(market) -> None:
    env = gymnasium.make(ENV_ID, market=market, render_mode="rgb_array", env={"max_steps": 100})
    env.reset(seed=0)
    first = env.render()
    for _ in range(30):
        env.step(env.action_space.sample())
    frame = env.render()
    for img in (first, frame):
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (HEIGHT, WIDTH, 3)
    assert not np.array_equal(first, frame)  # the picture follows the episode


def test_picture_follows_the_series() -> None:
    """A rising price is drawn rising, and the position area sits where USDT was held."""
    close = np.linspace(1400.0, 1500.0, 60)
    m = build_market(close)
    h = EpisodeHistory()
    h.start(0, 1e6)
    for t in range(1, 60):
        h.append(t, 1.0 if t >= 30 else 0.0, 1e6)
    frame = render_rgb(m, h)
    price = _pixels(_panel(frame, 0), BLUE)
    rows_first = np.flatnonzero(price[:, 0])
    rows_last = np.flatnonzero(price[:, -1])
    assert rows_first.size and rows_last.size
    assert rows_first.min() > rows_last.max()  # row 0 is the top: the line ends higher than it starts
    position = _pixels(_panel(frame, 2), GREEN)
    cols = np.flatnonzero(position.any(axis=0))
    # held from step 30 of 59: the area covers the right half only
    assert cols.min() >= WIDTH * 29 // 59 - 2 and cols.max() == WIDTH - 1
    assert not _pixels(frame, RED).any()


def test_short_position_is_drawn_in_red() -> None:
    m = build_market(np.full(20, 1400.0))
    h = EpisodeHistory()
    h.start(0, 1e6)
    for t in range(1, 20):
        h.append(t, -0.5, 1e6)
    assert _pixels(_panel(render_rgb(m, h), 2), RED).any()


def test_ansi_is_a_text_line_with_the_bar(market) -> None:
    env = gymnasium.make(ENV_ID, market=market, render_mode="ansi", env={"max_steps": 100})
    env.reset(seed=1)
    _, _, _, _, info = env.step(1)
    line = env.render()
    t = env.unwrapped._history.t[-1]
    assert isinstance(line, str) and "\n" not in line
    assert f"{float(market.close[t]):,.2f}" in line
    assert f"{info['portfolio_value_krw']:,.0f}" in line and "step     1" in line
    assert render_ansi(market, EpisodeHistory()).startswith("no episode")


def test_env_checker_passes_in_every_render_mode(market) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in (None, "rgb_array", "ansi"):
            # made through gymnasium, the checker also re-makes the env in each listed mode
            check_env(gymnasium.make(ENV_ID, market=market, render_mode=mode, env={"max_steps": 20}).unwrapped)
    assert KPremiaGymEnv.metadata["render_modes"] == ["rgb_array", "ansi"]


def test_unknown_render_mode_is_refused(market) -> None:
    with pytest.raises(UserError, match="no render mode 'video'.*rgb_array"):
        KPremiaGymEnv(market, render_mode="video")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium warns first, then the env refuses
        with pytest.raises(UserError, match="no render mode"):
            gymnasium.make(ENV_ID, market=market, render_mode="video")


def test_rgb_array_list_through_gymnasium(market) -> None:
    """gymnasium wraps an env that lists rgb_array in RenderCollection for 'rgb_array_list'."""
    env = gymnasium.make(ENV_ID, market=market, render_mode="rgb_array_list", env={"max_steps": 10})
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    frames = env.render()
    assert len(frames) == 4 and all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
