"""The Train form's fields, their presets and the validation glue (no Streamlit here).

Every field is a :class:`ciard.config.Config` field by its own name, so a submitted form is
``preset(name).override(**values)`` followed by :func:`ciard.config.validate`: the same
coercion, rules and one-line messages as ``python -m ciard train``. Numbers that people write
as fractions (eps "8/255", lr "1e-4") are text boxes, parsed by the config's own coercion.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..config import (FIELD_INDEX, PRESETS, SOURCES, Config, ConfigError, field_choices, field_help, preset,
                      validate)
from ..models import MODEL_NAMES
from ..teachers import check_teachers

DEFAULT_PRESET = "demo"
#: the ``key=`` of each form widget is this prefix + the field name (browser tests use them)
KEY_PREFIX = "tf_"


@dataclass(frozen=True)
class FieldSpec:
    name: str                 # the Config field
    label: str
    kind: str                 # "select" | "text" | "int" | "optional_int" | "bool"
    help: str
    options: tuple[str, ...] = ()
    new_options: bool = False  # a select that also accepts a typed value (e.g. wrn-40-2)

    @property
    def key(self) -> str:
        return KEY_PREFIX + self.name


def _help(name: str, text: str) -> str:
    """The config field's help text (the CLI flag's too) where it has one, then the form's own."""
    cli = field_help(name)
    return f"{cli}. {text}" if cli and text else (cli or text)


#: sections of the form, each a list of fields, in display order
SECTIONS: dict[str, list[FieldSpec]] = {
    "Method and models": [
        FieldSpec("method", "Method", "select", _help("method", "ciard: two teachers, push loss, ITT."),
                  field_choices("method")),
        FieldSpec("student", "Student architecture", "select", _help("student", "Type another name (e.g. wrn-16-8) to use it."),
                  tuple(MODEL_NAMES), new_options=True),
        FieldSpec("clean_teacher", "Clean teacher", "text", _help("clean_teacher", "auto: the shipped one, else a quick one trained once.")),
        FieldSpec("robust_teacher", "Robust teacher", "text", _help("robust_teacher", "auto: the shipped one, else a quick one trained once.")),
        FieldSpec("student_init", "Student starts from", "text",
                  "empty: random initialisation; or a checkpoint, run directory or zoo:NAME of the same "
                  "architecture (the demo starts from the shipped clean ResNet-20, so that two minutes suffice)"),
    ],
    "Optimisation": [
        FieldSpec("epochs", "Epochs", "int", "passes over the training data"),
        FieldSpec("batch_size", "Batch size", "int", "images per SGD step"),
        FieldSpec("lr", "Learning rate", "text", "student SGD learning rate (e.g. 0.1)"),
        FieldSpec("lr_schedule", "LR schedule", "select",
                  "ciard: the paper's step decay scaled to the run length; cosine; constant; triangle (warm-up, linear decay)",
                  field_choices("lr_schedule")),
        FieldSpec("precision", "Precision", "select", _help("precision", "evaluation is always fp32"),
                  field_choices("precision")),
        FieldSpec("seed", "Seed", "int", "same seed and config give the same run"),
    ],
    "Training attack (PGD)": [
        FieldSpec("eps", "eps (L-inf)", "text", _help("eps", "a number in (0, 1]; fractions like 8/255 are fine")),
        FieldSpec("pgd_steps", "PGD steps", "int", "attack steps per training batch"),
        FieldSpec("pgd_step_size", "PGD step size", "text", "size of each PGD step, e.g. 2/255"),
    ],
    "CIARD": [
        FieldSpec("push_weight", "Push weight λ", "text", _help("push_weight", "")),
        FieldSpec("push_temp", "T_push", "text", _help("push_temp", "")),
        FieldSpec("push_autoscale", "Push autoscale", "bool",
                  "scale the push loss by a power of ten to the size of the KD terms (off: s = 1)"),
        FieldSpec("itt", "ITT", "bool", _help("itt", "fine-tune the robust teacher on the student's adversarial examples")),
        FieldSpec("itt_lr", "ITT learning rate", "text", "the robust teacher's SGD learning rate"),
        FieldSpec("itt_warmup", "ITT warm-up fraction", "text", "fraction of training with the teacher lr at 0 (0 to 1)"),
        FieldSpec("adaptive_temp", "Adaptive τ", "bool", "entropy-balanced τ_adv, τ_nat (B-MTARD)"),
        FieldSpec("adaptive_weights", "Adaptive weights", "bool", "learn w_adv, w_nat (off: both 1, as the published code)"),
    ],
    "Data and run": [
        FieldSpec("dataset", "Dataset", "select", _help("dataset", ""), SOURCES),
        FieldSpec("data_path", "Data path", "text", _help("data_path", "not needed for the embedded default dataset")),
        FieldSpec("train_subset", "Train subset size", "optional_int",
                  "keep a class-balanced subset of this many training images (empty: all)"),
        FieldSpec("eval_size", "Validation images", "int", "training images held out (not trained on) and checked clean and under PGD after each epoch; they select the best student"),
        FieldSpec("eval_pgd_steps", "Validation PGD steps", "int", "0 checks clean accuracy only"),
        FieldSpec("test_size", "Final test images", "int", "test images for the final PGD-20 check (0: skip)"),
        FieldSpec("name", "Run name", "text", "directory under runs/; -2, -3... is added if taken"),
    ],
}
FIELDS: dict[str, FieldSpec] = {f.name: f for fields in SECTIONS.values() for f in fields}
assert set(FIELDS) <= set(FIELD_INDEX), set(FIELDS) - set(FIELD_INDEX)


def format_value(value: Any, kind: str) -> Any:
    """A config value as its widget shows it (floats as text: 8/255 stays 8/255)."""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "optional_int":
        return None if value is None else int(value)
    if kind == "select":
        return str(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def format_float(value: float) -> str:
    """Short text that parses back to exactly ``value``: 8/255, 0.5, 1e-04, 1/6."""
    n = value * 255
    if 0 < value < 1 and n == round(n) and float(round(n)) / 255 == value:
        return f"{round(n)}/255"
    short = f"{value:.6g}"
    if float(short) == value:
        return short
    frac = Fraction(value).limit_denominator(1000)
    if frac.numerator / frac.denominator == value:
        return f"{frac.numerator}/{frac.denominator}"
    return repr(value)


def preset_values(name: str) -> dict[str, Any]:
    """The form's values for a preset, keyed by field name."""
    flat = preset(name).flat()
    return {f.name: format_value(flat[f.name], f.kind) for f in FIELDS.values()}


def build_config(preset_name: str, values: dict[str, Any], *, device: str = "auto") -> Config:
    """The submitted form as a validated Config; raises ConfigError with the CLI's message.

    Empty text means "no value": ``None`` where the field allows it (teachers, data path,
    run name), else the config's own "needs a value" error.
    """
    overrides = {k: v for k, v in values.items() if k in FIELDS}
    for k, v in list(overrides.items()):
        if isinstance(v, str):
            overrides[k] = v.strip()
    overrides["device"] = device
    cfg = validate(preset(preset_name).override(**overrides))
    check_teachers(cfg)   # as the CLI does (ciard.cli.config_from_args)
    return cfg


def preset_names() -> list[str]:
    return list(PRESETS)


# -- every problem at once, by the form's labels ------------------------------------------------
#: the key under which :func:`field_errors` files a problem that belongs to no single field
GENERAL = ""


def labelled(message: str) -> str:
    """A config message with config names (``push_temp``, ``--push-temp``) as the form's labels."""
    for name, spec in FIELDS.items():
        message = re.sub(rf"(?<![\w-])(--{name.replace('_', '-')}|{name})(?![\w-])", spec.label, message)
    return message


def _field_of(message: str) -> str:
    """The form field a config message is about (its name, or its flag, appears in it), else GENERAL."""
    for name in sorted(FIELDS, key=len, reverse=True):
        if re.search(rf"(?<![\w-])(--{name.replace('_', '-')}|{name})(?![\w-])", message):
            return name
    return GENERAL


def field_errors(preset_name: str, values: dict[str, Any], *, device: str = "auto") -> dict[str, str]:
    """Every problem of a submitted form at once: {field name (or GENERAL): message by labels}.

    Each field is first checked alone (the preset with only that value changed), which finds
    every bad value in one pass; the fields that pass are then checked together, which finds
    the problems between fields (a student_init of another architecture, a folder dataset
    without a path); each such problem is filed under the field it names and that field put
    back to the preset's value, until the rest passes. Empty: the form is valid.
    """
    def check(vals: dict[str, Any]) -> str | None:
        try:
            build_config(preset_name, vals, device=device)
        except (ConfigError, ValueError) as exc:
            return str(exc)
        return None

    if check(values) is None:
        return {}
    base = preset_values(preset_name)
    errors: dict[str, str] = {}
    for name in FIELDS:
        if name in values and values[name] != base.get(name):
            problem = check({**base, name: values[name]})
            if problem:
                errors[name] = labelled(problem)
    together = {k: v for k, v in values.items() if k not in errors}
    for _ in range(len(FIELDS) + 1):
        problem = check(together)
        if problem is None:
            break
        name = _field_of(problem)
        if name == GENERAL or name in errors or together.get(name) == base.get(name):
            errors.setdefault(GENERAL, labelled(problem))
            break
        errors[name] = labelled(problem)
        together[name] = base.get(name)
    return errors


# -- a run's settings: its preset, what differs, the form and the command that make it again -------
#: settings that say where or how a run is shown, not what it learns
NOT_HYPERPARAMETERS = ("name", "out_dir", "progress", "device", "log", "checkpoint_every", "threads")


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json (nested by section) as {field: value}, unknown keys dropped."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({k: v for k, v in value.items() if k in FIELD_INDEX})
        elif key in FIELD_INDEX:
            flat[key] = value
    return flat


def preset_differences(flat: dict[str, Any], preset_name: str) -> dict[str, Any]:
    """The hyperparameters of ``flat`` that are not as in the preset."""
    base = preset(preset_name).flat()
    return {k: flat[k] for k in in_form_order(flat)
            if k not in NOT_HYPERPARAMETERS and k in base and flat[k] != base[k]}


_ORDER = {name: i for i, name in enumerate(dict.fromkeys([*FIELDS, *FIELD_INDEX]))}


def in_form_order(names) -> list[str]:
    """Config field names sorted as the form shows them (then the config's order)."""
    return sorted(names, key=lambda n: _ORDER.get(n, len(_ORDER)))


def closest_preset(flat: dict[str, Any]) -> str:
    """The preset from which a config differs in the fewest hyperparameters (first on a tie)."""
    return min(PRESETS, key=lambda p: len(preset_differences(flat, p)))


def label_of(name: str) -> str:
    """The form's label of a config field, else its config name."""
    return FIELDS[name].label if name in FIELDS else name


def show_value(value: Any) -> str:
    """A config value short and exact, as the form writes it (8/255, 1e-04, on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return format_float(value)
    return "none" if value is None else str(value)


def form_values(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config as the Train form's values, keyed by field name (clone into the form)."""
    flat = flat_config(config)
    base = Config().flat()
    return {f.name: format_value(flat.get(f.name, base[f.name]), f.kind) for f in FIELDS.values()}


def cli_command(config: dict[str, Any]) -> str:
    """``python -m ciard train --preset P --flag V ...``: the command that trains this config again."""
    flat = flat_config(config)
    name = closest_preset(flat)
    base = preset(name).flat()
    words = ["python", "-m", "ciard", "train", "--preset", name]
    for key in in_form_order(flat):
        value = flat[key]
        if key in ("out_dir", "progress") or value == base.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, "none" if value is None else show_value(value)]
    return shlex.join(words)
