"""Settings: every field read from its environment variable, parsed and range-checked, and the
app refusing to start on a bad one with one line (no traceback)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from restoration.hub.catalogue import load_available_restorers
from restoration.settings import RENAMED, REPO, Settings, SettingsError, _kind, env_name
from tests.support import make_weights_dir


def test_every_field_is_read_from_its_variable():
    examples = {Path: "/tmp/somewhere", str: "hub", int: "7", float: "2.5", bool: "yes"}
    for f in dataclasses.fields(Settings):
        kind = _kind(f)
        raw = examples[kind]
        if kind is int and (f.metadata.get("min") or 0) > 7:
            raw = str(f.metadata["min"] + 1)  # in range, and not the default
        if kind is float and f.metadata.get("max") is not None and f.metadata["max"] < 2.5:
            raw = str(f.metadata["max"] / 2)  # a share
        if f.metadata.get("choices"):
            raw = f.metadata["choices"][-1]
        if f.name == "tile_size":
            raw = "256"
        settings = Settings.from_env({env_name(f.name): raw})
        assert getattr(settings, f.name) == (True if kind is bool else kind(raw)), f.name
    assert env_name("threads") == "RESTORATION_THREADS" and env_name("votes_db") == "RESTORATION_VOTES_DB"
    assert Settings.from_env({"RESTORATION_THREADS": "  "}) == Settings()  # empty means the default


def test_a_renamed_variable_still_works_with_one_line(capsys):
    assert RENAMED["RESTORATION_JUDGE_VAL_POOL"] == "RESTORATION_SCENE_VAL_IMAGES"
    assert Settings.from_env({"RESTORATION_JUDGE_VAL_POOL": "7"}).scene_val_images == 7
    assert capsys.readouterr().err == ("RESTORATION_JUDGE_VAL_POOL is now RESTORATION_SCENE_VAL_IMAGES; "
                                       "the old name still works for now\n")
    # Both set: the new name wins (the line is still printed, so the old one gets removed).
    both = {"RESTORATION_JUDGE_VAL_POOL": "7", "RESTORATION_SCENE_VAL_IMAGES": "9"}
    assert Settings.from_env(both).scene_val_images == 9
    assert Settings.from_env({"RESTORATION_SCENE_VAL_IMAGES": "9"}).scene_val_images == 9
    assert capsys.readouterr().err.count("\n") == 1
    assert Settings.from_env({"RESTORATION_BATTLE_POOL": "5"}).scene_pool == 5
    assert capsys.readouterr().err == ("RESTORATION_BATTLE_POOL is now RESTORATION_SCENE_POOL; "
                                       "the old name still works for now\n")
    for old, new in RENAMED.items():  # every new name is a setting's variable
        assert new in {env_name(f.name) for f in dataclasses.fields(Settings)}, old


@pytest.mark.parametrize("name, raw, message", [
    ("RESTORATION_THREADS", "two", "RESTORATION_THREADS='two': expected an int from 1 to 1024"),
    ("RESTORATION_CONCURRENCY", "0", "RESTORATION_CONCURRENCY=0: out of range, expected int from 1 to 64"),
    ("RESTORATION_TILE_SIZE", "0", "RESTORATION_TILE_SIZE=0: out of range, expected int of at least 16"),
    ("RESTORATION_TILE_OVERLAP", "600", "must be under half of RESTORATION_TILE_SIZE"),
    ("RESTORATION_MIN_VOTE_SECONDS", "nan", "expected a number"),
    ("RESTORATION_MIN_VOTE_SECONDS", "-1", "out of range"),
    ("RESTORATION_VOTES_PER_MINUTE", "2.5", "expected an int of at least 1"),
    ("RESTORATION_SHOW_ORIGINAL", "maybe", "expected 1/0, true/false"),
    ("RESTORATION_MODEL_SOURCE", "ftp", "expected one of local, hub"),
    ("RESTORATION_VOTES_DB", "mysql://arena@127.0.0.1/arena", "expected a SQLite file path or a postgresql://"),
    ("RESTORATION_VOTES_DB", "postgresql://arena@127.0.0.1:5432/arena", "RESTORATION_ARENA_SECRET must be set"),
])
def test_bad_values_are_one_clear_line(name, raw, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")) as e:
        Settings.from_env({name: raw})
    assert "\n" not in str(e.value)


def test_the_vote_store_is_a_file_or_a_postgresql_url():
    url = "postgresql://arena@127.0.0.1:5432/arena"
    assert Settings.from_env({"RESTORATION_VOTES_DB": url, "RESTORATION_ARENA_SECRET": "s" * 32}).votes_db == url
    assert Settings.from_env({"RESTORATION_VOTES_DB": "/tmp/v.db"}).votes_db == Path("/tmp/v.db")


def test_the_secret_never_shows_in_a_printed_settings():
    settings = Settings.from_env({"RESTORATION_ARENA_SECRET": "hunter2-very-secret"})
    assert settings.arena_secret == "hunter2-very-secret" and "hunter2" not in repr(settings)


def run_app(env, tmp_path, timeout=60):
    env = {**os.environ, "RESTORATION_VOTES_DB": str(tmp_path / "votes.db"), **env}
    return subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("name, raw", [("RESTORATION_CONCURRENCY", "0"), ("RESTORATION_THREADS", "two"),
                                       ("RESTORATION_VOTES_DB", "/proc/x.db")])
def test_the_app_exits_with_one_line_on_a_bad_setting(name, raw, tmp_path):
    result = run_app({name: raw}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Cannot start: ") and name in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_model_that_fails_in_any_way_is_skipped_with_a_line(tmp_path):
    """A config that makes torch raise (a negative channel count) costs that model, not the app."""
    weights = make_weights_dir(tmp_path / "w")
    config = weights / "unet-perceptual" / "config.json"
    broken = json.loads(config.read_text()) | {"nfs": [8, -16, 32]}
    config.write_text(json.dumps(broken))
    models, problems = load_available_restorers(weights)
    assert [m.entry.name for m in models] == ["unet-mse", "unet-crossconv"]
    assert len(problems) == 1 and problems[0].startswith("Perceptual U-Net: not loaded (")
    assert "\n" not in problems[0]
