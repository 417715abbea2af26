"""YAML configs with strict ``key=value`` overrides.

A config is a nested dict checked against a nested dict of defaults: every key must exist in the defaults (an unknown key
is an error that lists the valid ones), values keep the defaults' types where they are unambiguous.

    cfg = load_config("configs/backbone_2d.yaml", ["train.lr=1e-4", "model.base_channels=32"], DEFAULTS)

Every problem (missing file, YAML syntax, a top-level that is not a mapping, an unknown key, a wrong type, a value out
of range via `check_int` / `check_float` / `check_choice`) raises `ConfigError` (a ValueError) with a one-line message
saying what is wrong and what is accepted; `cli_error` turns it into argparse's ``prog: error: ...`` and exit code 2.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import re
import sys
from typing import Any

import yaml

from .io import atomic_path


class ConfigError(ValueError):
    """A config problem; the message is one line: what is wrong and what is accepted."""


class CLIError(SystemExit, ValueError):
    """Exit code 2 after ``prog: error: ...`` was printed (argparse's convention). Also a ValueError, so code that calls
    a script's ``main(argv)`` and catches ValueError (as it did before) still does."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def cli_error(parser: argparse.ArgumentParser, message: Any) -> CLIError:
    """Print usage and ``prog: error: message`` (one line) to stderr like ``parser.error``; return the CLIError to raise."""
    msg = " ".join(str(message).split())
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {msg}", file=sys.stderr)
    return CLIError(msg)


_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def _merge(base: dict, new: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    if not isinstance(new, dict):
        where = f"config section {path[:-1]!r}" if path else "the config"
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(new).__name__} {_short(new)}")
    for k, v in new.items():
        where = f"{path}{k}"
        if k not in base:
            raise ConfigError(f"unknown config key {where!r}; valid keys here: {sorted(base)}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"config key {where!r} must be a mapping with keys {sorted(base[k])}, got {_short(v)}")
            out[k] = _merge(base[k], v, where + ".")
        else:
            out[k] = _coerce(base[k], v, where)
    return out


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n - 3] + "..."


def _coerce(default: Any, v: Any, where: str) -> Any:
    if isinstance(default, bool) and not isinstance(v, bool):
        raise ConfigError(f"config key {where!r} must be true/false, got {_short(v)}")
    if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(v, float) and v.is_integer():
        return int(v)  # 1e3 (read as a float) for an integer key
    if isinstance(default, (list, tuple)) and isinstance(v, (list, tuple)):
        return list(v)
    if default is not None:
        ok = isinstance(v, type(default)) and not (isinstance(v, bool) and not isinstance(default, bool))
        if not ok:
            kind = _TYPE_NAMES.get(type(default), type(default).__name__)
            hint = " (quote it to make it a string)" if isinstance(default, str) else ""
            raise ConfigError(f"config key {where!r} expects {kind}{hint}, got {_short(v)}")
    return v


# ---- range checks (used by gen.train and task scripts) --------------------------------------------------------------
def check_int(where: str, v: Any, minimum: int | None = None, maximum: int | None = None, note: str = "") -> int:
    """`v` must be an int (not a bool) within [minimum, maximum]; else ConfigError (`note` explains special values)."""
    rng = _range_text(minimum, maximum, ">=", "<=") + (f" ({note})" if note else "")
    if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum) or \
            (maximum is not None and v > maximum):
        raise ConfigError(f"{where} must be an integer{rng}, got {_short(v)}")
    return v


def check_float(where: str, v: Any, low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False, note: str = "") -> float:
    """`v` must be a finite number in the interval given by low/high (open ends with low_open/high_open)."""
    rng = _range_text(low, high, ">" if low_open else ">=", "<" if high_open else "<=") + (f" ({note})" if note else "")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ConfigError(f"{where} must be a number{rng}, got {_short(v)}")
    return float(v)


def check_choice(where: str, v: Any, choices) -> Any:
    if v not in tuple(choices):
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, choices))}; got {_short(v)}")
    return v


def _range_text(lo, hi, lo_op: str, hi_op: str) -> str:
    parts = ([f"{lo_op} {lo:g}"] if lo is not None else []) + ([f"{hi_op} {hi:g}"] if hi is not None else [])
    return (" " + " and ".join(parts)) if parts else ""


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
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r} has an empty key part; write section.key=value (e.g. train.lr=1e-4)")
    out: dict = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)}); quote strings, "
                          f"write lists as [a, b]") from None
    cur[parts[-1]] = _numbers(parsed)
    return out


def _yaml_problem(e: Exception) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def read_yaml_file(path: str) -> Any:
    """yaml.safe_load of a file, with ConfigError (one line) for a missing/unreadable file or a syntax error."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a folder, not a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path!r} is not valid YAML: {_yaml_problem(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e}") from None


def load_config(path: str | None, overrides: list[str] | None, defaults: dict) -> dict:
    cfg = copy.deepcopy(defaults)
    if path:
        data = read_yaml_file(path)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"config file {path!r} must be a mapping of sections (like {sorted(defaults)}) at the top "
                              f"level, got a {type(data).__name__}")
        cfg = _merge(cfg, _numbers(data or {}))
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
