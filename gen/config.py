"""YAML configs with strict ``key=value`` overrides.

A config is a nested dict checked against a nested dict of defaults: every key must exist in the defaults (an unknown key
is an error that lists the valid ones), values keep the defaults' types where they are unambiguous.

    cfg = load_config("configs/backbone_2d.yaml", ["train.lr=1e-4", "model.base_channels=32"], DEFAULTS)
"""
from __future__ import annotations

import argparse
import copy
import os
import re
from typing import Any

import yaml

from .io import atomic_path


def _merge(base: dict, new: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in (new or {}).items():
        where = f"{path}{k}"
        if k not in base:
            raise ValueError(f"unknown config key {where!r}; valid keys here: {sorted(base)}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ValueError(f"config key {where!r} must be a mapping with keys {sorted(base[k])}, got {v!r}")
            out[k] = _merge(base[k], v, where + ".")
        else:
            out[k] = _coerce(base[k], v, where)
    return out


def _coerce(default: Any, v: Any, where: str) -> Any:
    if isinstance(default, bool) and not isinstance(v, bool):
        raise ValueError(f"config key {where!r} must be true/false, got {v!r}")
    if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(default, (list, tuple)) and isinstance(v, (list, tuple)):
        return list(v)
    if default is not None and not isinstance(v, type(default)) and not (isinstance(default, float) and isinstance(v, float)):
        raise ValueError(f"config key {where!r} expects {type(default).__name__}, got {v!r}")
    return v


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _numbers(v: Any) -> Any:
    """PyYAML (YAML 1.1) reads '1e-4' as a string; read such strings as floats, recursively."""
    if isinstance(v, dict):
        return {k: _numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_numbers(x) for x in v]
    if isinstance(v, str) and _NUMBER.match(v):
        return float(v)
    return v


def parse_override(item: str) -> dict:
    """'train.lr=1e-4' → {'train': {'lr': 0.0001}} (the value parsed as YAML)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, value = item.split("=", 1)
    out: dict = {}
    cur = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = _numbers(yaml.safe_load(value) if value else "")
    return out


def load_config(path: str | None, overrides: list[str] | None, defaults: dict) -> dict:
    cfg = copy.deepcopy(defaults)
    if path:
        if not os.path.exists(path):
            raise ValueError(f"config file {path!r} does not exist")
        with open(path) as f:
            cfg = _merge(cfg, _numbers(yaml.safe_load(f) or {}))
    for item in overrides or []:
        cfg = _merge(cfg, parse_override(item))
    return cfg


def save_yaml(cfg: dict, path: str) -> None:
    """Write atomically (temp file in the same folder, then rename)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)


def train_argparser(description: str, default_config: str) -> argparse.ArgumentParser:
    """The common CLI of every train script: --config, --resume, --dry-run, then key=value overrides."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=default_config, help="YAML config file")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in train.output_dir")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=100 model.base_channels=32")
    return p
