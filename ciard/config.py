"""Run configuration: frozen dataclasses, presets, validation and JSON round-trip.

A config is six small sections. Every field name is unique across sections, so the
CLI can offer one flag per field (``--push-weight 0``) and a JSON file can be written
either nested (``{"method": {"push_weight": 0}}``) or flat (``{"push_weight": 0}``).
Validation runs before any work starts and raises :class:`ConfigError` with one line
that names the bad value.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError
from .names import check_run_name
from .paths import path_problem, shorten, user_path


def parse_number(value: Any) -> float:
    """Accept 0.03, "0.03" and "8/255" (the way eps is usually written)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


#: where a run's images come from (ciard.data reads each)
SOURCES: tuple[str, ...] = ("default", "cifar10-archive", "cifar10", "cifar100", "folder")
METHODS = ("ciard", "mtard", "rslad", "ard", "pgd_at", "trades", "natural", "fgsm_at",
           "dgad", "adaad", "kdiga", "peeraid")
#: methods that distil from teachers, and which teachers each needs
TEACHERS_NEEDED = {
    "ciard": ("clean", "robust"),
    "mtard": ("clean", "robust"),
    "rslad": ("robust",),
    "ard": ("robust",),
    "dgad": ("robust",),
    "adaad": ("robust",),
    "kdiga": ("robust",),
    # peeraid trains its own peer (the student's architecture, from random weights): no teacher
}
#: the evaluation protocol's attacks by their command-line names, in the protocol's order
#: (``ciard.evaluate.protocol`` builds them; kept here so that ``eval`` refuses a bad name
#: without loading torch), and those crafted on a source model and transferred
EVAL_ATTACKS = ("clean", "fgsm", "pgd_sat", "pgd_trades", "cw", "apgd", "autoattack",
                "bb_pgd_trades", "bb_cw", "square", "square100")
TRANSFER_ATTACKS = ("bb_pgd_trades", "bb_cw")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
LR_SCHEDULES = ("ciard", "cosine", "constant", "triangle")
#: settings older versions wrote and this one ignores (the validation split is now
#: ``eval_size`` images, not a fraction of the training set)
LEGACY_KEYS = ("val_fraction",)


def _field(default: Any, help: str | None = None, choices: tuple[str, ...] = ()) -> Any:
    """A config field with its help text and choices, which the CLI flags and the Train form read
    (:func:`field_help`, :func:`field_choices`): one wording everywhere."""
    meta: dict[str, Any] = {}
    if help:
        meta["help"] = help
    if choices:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _field("default", "default (embedded CIFAR-10 subset), cifar10-archive, cifar10, cifar100, folder")
    data_path: str | None = _field(None, "archive file, image folder, or torchvision root")
    train_subset: int | None = None
    download: bool = False
    augment: bool = True


#: the teachers of each published setup a preset reproduces (``ModelConfig.paper_setup``)
PAPER_TEACHERS = {
    "paper-cifar10": "a WRN-34-10 TRADES robust teacher and a ResNet-56 clean teacher",
}


@dataclass(frozen=True)
class ModelConfig:
    student: str = _field("resnet20", "student architecture (resnet20, resnet18, mobilenetv2, smallcnn, wrn-16-4, ...)")
    #: checkpoint path, ``zoo:NAME`` or ``auto`` (the shipped teacher, else a quick one trained now)
    clean_teacher: str | None = _field("auto", "clean teacher: checkpoint, run directory, zoo:NAME or auto")
    robust_teacher: str | None = _field("auto", "robust teacher: checkpoint, run directory, zoo:NAME or auto")
    #: start the student from this checkpoint's weights (path, run directory or ``zoo:NAME``) instead
    #: of a random initialisation; same architecture and classes required
    student_init: str | None = None
    #: the published setup this config reproduces (a key of PAPER_TEACHERS): its teachers
    #: must then be given explicitly, since ``auto`` would silently distil from stand-ins
    paper_setup: str | None = None


@dataclass(frozen=True)
class AttackConfig:
    """The attack used to make training examples (PGD on the student)."""
    eps: float = _field(8 / 255, "L-inf radius, e.g. 8/255")
    pgd_steps: int = 10
    pgd_step_size: float = 2 / 255
    eps_warmup: float = _field(0.0, "fraction of training over which the training attack's eps and step grow linearly from 0")


@dataclass(frozen=True)
class MethodConfig:
    method: str = _field("ciard", ", ".join(METHODS), METHODS)
    # CIARD push loss
    push_weight: float = _field(1.0, "lambda of the push loss (0 turns it off)")
    push_temp: float = _field(5.0, "T_push, the student's temperature inside the push loss")
    push_autoscale: bool = True       # power-of-ten factor s; off means s = 1
    # iterative teacher training (ITT)
    itt: bool = _field(True, "iterative training of the robust teacher")
    itt_lr: float = 1e-4
    itt_warmup: float = 1 / 6         # fraction of training with teacher lr 0
    itt_momentum: float = 0.1
    itt_weight_decay: float = 2e-4
    robust_teacher_train_mode: bool = True  # the reference runs R with batch statistics
    # entropy-balanced temperatures and KD weights (B-MTARD)
    adaptive_temp: bool = True
    temp_lr: float = 1e-3
    temp_min: float = 1.0
    temp_max: float = 10.0
    adaptive_weights: bool = False    # False: w_adv = w_nat = 1 (the published code)
    weight_lr: float = 0.025
    # baselines
    trades_beta: float = 6.0
    ard_temp: float = 30.0
    ard_alpha: float = 1.0
    fgsm_alpha: float = 1.25          # FGSM-RS step, in units of eps
    label_smoothing: float = 0.0      # natural training's CE target smoothing (the clean teacher)
    # newer distillation baselines (defaults: the official CIFAR-10 commands; see each method)
    dgad_beta: float = 1.0            # DGAD: weight of the predictive-consistency (ALP) term
    adaad_alpha: float = 1.0          # AdaAD: weight of KL(T(x')||S(x')); 1 - it on KL(T(x)||S(x))
    kdiga_alpha: float = 0.5          # KDIGA: KD weight (1 - it on the CE); the author's script's default
    kdiga_temp: float = 1.0           # KDIGA: KD temperature; the author's script's default
    kdiga_gamma: float = 0.5          # KDIGA: input-gradient alignment weight (the term is gamma/N ||.||_2);
                                      # the author's script's default
    peeraid_temp: float = 5.0         # PeerAiD: T of the student's KD terms
    peeraid_lambda1: float = 0.0      # PeerAiD: student's CE(S(x'), y)
    peeraid_lambda2: float = 1.0      # PeerAiD: student's KL(P(x') || S(x'))
    peeraid_lambda3: float = 1.0      # PeerAiD: student's KL(S(x) || S(x'))
    peeraid_gamma1: float = 1.0       # PeerAiD: peer's CE(P(x'), y)
    peeraid_gamma2: float = 0.1       # PeerAiD: peer's KL(S(x') || P(x'))
    peeraid_peer_temp: float = 1.0    # PeerAiD: temperature of the peer's KL term


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 2e-4
    lr_schedule: str = _field("ciard", None, LR_SCHEDULES)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: str = _field("auto", "auto (CUDA, else Apple MPS, else CPU), cpu, cuda, cuda:N, mps")
    precision: str = _field("auto", "auto (bf16 where the hardware is fast at it), fp32, bf16", PRECISIONS)
    channels_last: bool = True
    fold_bn: bool = True              # fold eval-mode BatchNorm into convs for attacks / frozen teachers
    compile: str = _field("auto", None, COMPILE_MODES)  # torch.compile the attack: on, off, auto (on for long runs)
    log_every: int = 0                # steps between metric writes (0: 1 on CPU, 20 on GPU)
    eval_size: int = 500              # training images held out for validation, checked after each epoch
    eval_pgd_steps: int = 10
    eval_teachers: bool = True
    test_size: int = 1000             # test images for the final PGD-20 check (0: skip)
    out_dir: str = "runs"
    name: str | None = None
    checkpoint_every: int = 200       # steps between mid-epoch checkpoints (0: epoch ends only)
    threads: int = 0                  # 0: torch's default
    log: str | None = _field(None, "also send every metric to: tensorboard (RUN_DIR/tensorboard), mlflow (MLFLOW_TRACKING_URI); comma list")
    progress: bool = True


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    # -- JSON round trip -------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: "Config | None" = None) -> "Config":
        """Nested or flat dict -> Config (validated types, unknown keys rejected)."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in SECTION_NAMES and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        for key in LEGACY_KEYS:
            flat.pop(key, None)
        return (base or cls()).override(**flat)

    def override(self, **values: Any) -> "Config":
        """Return a copy with fields set by their (unique) names, values coerced."""
        sections = {name: getattr(self, name) for name in SECTION_NAMES}
        changes: dict[str, dict[str, Any]] = {name: {} for name in SECTION_NAMES}
        for key, value in values.items():
            key = key.replace("-", "_")
            if key not in FIELD_INDEX:
                raise ConfigError(f"unknown setting '{key}'")
            section, f = FIELD_INDEX[key]
            changes[section][key] = _coerce(f, value)
        new = {name: replace(sections[name], **changes[name]) for name in SECTION_NAMES}
        return Config(**new)

    def flat(self) -> dict[str, Any]:
        return {k: v for section in self.to_dict().values() for k, v in section.items()}


SECTION_NAMES = ("data", "model", "attack", "method", "optim", "run")
FIELD_INDEX: dict[str, tuple[str, dataclasses.Field]] = {}
for _section_cls, _name in zip(
        (DataConfig, ModelConfig, AttackConfig, MethodConfig, OptimConfig, RunConfig),
        SECTION_NAMES):
    for _f in fields(_section_cls):
        assert _f.name not in FIELD_INDEX, _f.name
        FIELD_INDEX[_f.name] = (_name, _f)


def field_help(name: str) -> str:
    """The help text of a config field ('' where it has none)."""
    return FIELD_INDEX[name][1].metadata.get("help", "")


def field_choices(name: str) -> tuple[str, ...]:
    """The values a config field accepts, where it is one of a fixed few (else ())."""
    return FIELD_INDEX[name][1].metadata.get("choices", ())


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn a CLI string or JSON value into the field's type, or raise ConfigError."""
    kind = str(f.type)
    name = f.name
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
        if "None" in kind:
            return None
        raise ConfigError(f"{name} needs a value")
    try:
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind.startswith("int"):
            number = parse_number(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind.startswith("float"):
            return parse_number(value)
        return str(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise ConfigError(f"{name} = {value!r} is not a valid {kind.split(' ')[0]}") from None


# -- presets ---------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = {
    # The embedded default dataset, ResNet-20s, a short attack: about 2 minutes on a 2-core
    # fp32-only CPU. From scratch a student needs ~6 epochs of the 4,800 images to clear 40 %
    # clean / 15 % PGD-20 (46.4 % / 18.3 % in 5 m 45 s on such a CPU), so the demo's student
    # starts from the shipped robust ResNet-20 (a warm start, shown in the form and the run's
    # config) and distils for 4 epochs of 768 images with PGD-2 (a first validation point
    # within 30 s of Start; see README "Set-up" for the timing). Measured, 3 epochs of 2,400:
    # on the embedded test split (1,000 images, PGD-20), fp32, from the robust teacher 69.5 % / 29.0 %;
    # from the clean teacher 70.5 % / 12.1 % (PGD-3, 4 epochs: its non-robust features do not
    # unlearn in 2 minutes); from scratch at this budget see README "Set-up".
    "demo": dict(
        dataset="default", student="resnet20", clean_teacher="auto", robust_teacher="auto",
        student_init="zoo:cifar10-robust-resnet20", train_subset=768,
        epochs=4, batch_size=128, lr=0.1, lr_schedule="ciard", pgd_steps=2, pgd_step_size=4 / 255,
        eval_size=200, eval_pgd_steps=5, itt_lr=1e-3, checkpoint_every=20, name="demo",
    ),
    # The paper's configuration (CIFAR-10, GPU): ResNet-18 student, WRN-34-10 robust teacher.
    "paper-cifar10": dict(
        dataset="cifar10-archive", student="resnet18", epochs=300, batch_size=128, lr=0.1,
        lr_schedule="ciard", eps=8 / 255, pgd_steps=10, pgd_step_size=2 / 255,
        push_weight=1.0, push_temp=5.0, itt=True, itt_lr=1e-4, adaptive_temp=True,
        adaptive_weights=False, eval_size=1000, eval_pgd_steps=10, name="paper-cifar10",
        paper_setup="paper-cifar10",
    ),
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return Config().override(**PRESETS[name])


def load_config_file(path: str | os.PathLike, base: Config | None = None) -> Config:
    p = user_path(path, "config file")
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start} is not)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests its JSON too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {shorten(path)}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return Config.from_dict(data, base)


# -- validation --------------------------------------------------------------
def _spec_problem(spec: str) -> str | None:
    """Why a checkpoint spec (path, run directory, zoo:NAME) names no checkpoint file, or None."""
    from . import specs   # torch-heavy (through the zoo and checkpoints): config stays light
    try:
        path = specs.resolve(spec)
    except ValueError as exc:   # CheckpointError: an unknown zoo name, a path that cannot be one
        return str(exc)
    return None if path.is_file() else f"checkpoint not found: {spec}"


def _check_student_init(spec: str, student: str) -> None:
    """The checkpoint exists, loads, and holds the student's architecture."""
    from . import checkpoints, specs   # torch-heavy: config stays light
    from .models import canonical_model_name
    if spec == "auto" or _spec_problem(spec):
        raise ConfigError(f"student_init: checkpoint not found: {spec} (a checkpoint, run directory or zoo:NAME)")
    try:
        arch = checkpoints.load(specs.resolve(spec))["model"]["arch"]
    except checkpoints.CheckpointError as exc:
        raise ConfigError(f"student_init: {exc}") from None
    if arch != canonical_model_name(student):
        raise ConfigError(f"student_init {spec} holds a {arch}, but the student is a {student}: "
                          f"choose student {arch}, or clear student_init to start from random weights")


#: experiment trackers ``--log`` can feed (besides the run store, which is always written)
LOGGERS = ("tensorboard", "mlflow")


#: devices a run may ask for
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def check_device(name: str) -> str:
    """``name`` if this machine has that device, else ConfigError (the CLI's eval shares it)."""
    if not isinstance(name, str) or not DEVICE_RE.fullmatch(name):
        raise ConfigError(f"unknown device {shorten(name)}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") or name == "mps":
        import torch   # only when a GPU is asked for: config stays light
        if name == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' asked for, but this machine has no Apple GPU (use cpu or auto)")
        if name.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = int(name.split(":")[1]) if ":" in name else 0
            if count == 0:
                raise ConfigError(f"device '{name}' asked for, but this machine has no CUDA GPU (use cpu or auto)")
            if index >= count:
                raise ConfigError(f"device '{name}' asked for, but this machine has {count} CUDA GPU(s): "
                                  f"cuda:0 to cuda:{count - 1}")
    return name


def _check_finite(cfg: Config) -> None:
    """nan and inf pass every range check written as a comparison: refuse them first."""
    for section in SECTION_NAMES:
        for f in fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} = {value} is not a finite number")


def _check_teacher_path(flag: str, spec: str) -> None:
    if spec != "auto" and not spec.startswith("zoo:"):
        problem = path_problem(spec)
        if problem:
            raise ConfigError(f"{flag}: {problem}")


def validate(cfg: Config, parts: tuple[str, ...] | None = None) -> Config:
    """Check every value that can be checked without doing work; return cfg.

    ``parts`` (names of :data:`CHECKS`) limits the check to the settings a command uses: ``eval``
    and ``bench`` check theirs by the same rules and messages as ``train``.
    """
    _check_finite(cfg)
    for part in (parts or CHECKS):
        CHECKS[part](cfg)
    return cfg


def check_data(cfg: Config) -> None:
    d = cfg.data
    data_path = user_path(d.data_path, "data_path") if d.data_path else None
    if d.dataset not in SOURCES:
        raise ConfigError(f"unknown dataset '{d.dataset}'; choose one of: {', '.join(SOURCES)}")
    if d.dataset in ("folder",) and not d.data_path:
        raise ConfigError("dataset 'folder' needs --data-path DIR")
    if data_path and d.dataset != "cifar10" and d.dataset != "cifar100" and not data_path.exists():
        raise ConfigError(f"dataset path not found: {d.data_path}")
    if d.dataset == "cifar10-archive" and not (d.data_path or os.environ.get("CIARD_CIFAR10_ARCHIVE")):
        raise ConfigError("dataset 'cifar10-archive' needs --data-path FILE or CIARD_CIFAR10_ARCHIVE")
    if d.train_subset is not None and d.train_subset <= 0:
        raise ConfigError(f"train_subset = {d.train_subset} must be positive")


def check_models(cfg: Config) -> None:
    """The student's architecture, the teacher specs the method needs, the student's start."""
    from .models import check_buildable, is_point_model   # torch-heavy: config stays light
    m, me = cfg.model, cfg.method
    problem = check_buildable(m.student)
    if problem:
        raise ConfigError(problem)
    if is_point_model(m.student):
        raise ConfigError(f"student {m.student} takes 2-D points (the Playground), not images; choose an image model")
    needed = TEACHERS_NEEDED.get(me.method, ())
    if m.paper_setup is not None:
        if m.paper_setup not in PAPER_TEACHERS:
            raise ConfigError(f"unknown paper_setup '{m.paper_setup}'; choose one of: {', '.join(PAPER_TEACHERS)}")
        auto = [f"--{role}-teacher" for role in needed if getattr(m, f"{role}_teacher") == "auto"]
        if auto:
            raise ConfigError(
                f"{m.paper_setup} reproduces the paper, which used {PAPER_TEACHERS[m.paper_setup]}: "
                f"give {' and '.join(auto)} as a checkpoint, run directory or zoo:NAME, not 'auto'")
    for role, spec in (("clean", m.clean_teacher), ("robust", m.robust_teacher)):
        flag = f"{role}_teacher"
        if role in needed and not spec:
            raise ConfigError(f"method '{me.method}' needs --{flag.replace('_', '-')} (a checkpoint, zoo:NAME or auto)")
        if spec and role in needed:
            _check_teacher_path(flag, spec)
        if spec and role in needed and spec != "auto" and _spec_problem(spec):
            raise ConfigError(f"{flag}: checkpoint not found: {spec}")

    if m.student_init:
        _check_student_init(m.student_init, m.student)


def check_attack(cfg: Config) -> None:
    a = cfg.attack
    if not 0.0 < a.eps <= 1.0:
        raise ConfigError(f"eps = {a.eps:g} must be in (0, 1] (images are in [0, 1]; 8/255 is usual)")
    if a.pgd_steps < 1:
        raise ConfigError(f"pgd_steps = {a.pgd_steps} must be at least 1")
    if not 0.0 < a.pgd_step_size <= 1.0:
        raise ConfigError(f"pgd_step_size = {a.pgd_step_size:g} must be in (0, 1]")
    if not 0.0 <= a.eps_warmup < 1.0:
        raise ConfigError(f"eps_warmup = {a.eps_warmup:g} must be in [0, 1) (a fraction of training)")


def check_method(cfg: Config) -> None:
    me = cfg.method
    if me.method not in METHODS:
        raise ConfigError(f"unknown method '{me.method}'; choose one of: {', '.join(METHODS)}")
    for name in ("push_weight", "itt_lr", "itt_momentum", "itt_weight_decay", "temp_lr",
                 "weight_lr", "trades_beta", "ard_alpha", "dgad_beta", "kdiga_gamma",
                 "peeraid_lambda1", "peeraid_lambda2", "peeraid_lambda3", "peeraid_gamma1",
                 "peeraid_gamma2"):
        if getattr(me, name) < 0:
            raise ConfigError(f"{name} = {getattr(me, name):g} must not be negative")
    if not 0.0 <= me.label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing = {me.label_smoothing:g} must be in [0, 1)")
    for name in ("adaad_alpha", "kdiga_alpha"):
        if not 0.0 <= getattr(me, name) <= 1.0:
            raise ConfigError(f"{name} = {getattr(me, name):g} must be in [0, 1]")
    for name in ("push_temp", "ard_temp", "fgsm_alpha", "kdiga_temp", "peeraid_temp", "peeraid_peer_temp"):
        if getattr(me, name) <= 0:
            raise ConfigError(f"{name} = {getattr(me, name):g} must be positive")
    if not 0.0 <= me.itt_warmup <= 1.0:
        raise ConfigError(f"itt_warmup = {me.itt_warmup:g} must be in [0, 1]")
    if not 0.0 < me.temp_min <= me.temp_max:
        raise ConfigError(f"temperatures need 0 < temp_min <= temp_max (got {me.temp_min:g}, {me.temp_max:g})")


def check_optim(cfg: Config) -> None:
    o = cfg.optim
    if o.epochs < 1:
        raise ConfigError(f"epochs = {o.epochs} must be at least 1")
    if o.batch_size < 1:
        raise ConfigError(f"batch_size = {o.batch_size} must be at least 1")
    if o.lr < 0:
        raise ConfigError(f"lr = {o.lr:g} must not be negative")
    if not 0.0 <= o.momentum < 1.0:
        raise ConfigError(f"momentum = {o.momentum:g} must be in [0, 1)")
    if o.weight_decay < 0:
        raise ConfigError(f"weight_decay = {o.weight_decay:g} must not be negative")
    if o.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule '{o.lr_schedule}'; choose one of: {', '.join(LR_SCHEDULES)}")


def check_run(cfg: Config) -> None:
    r = cfg.run
    if r.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{r.precision}'; choose one of: {', '.join(PRECISIONS)}")
    if r.compile not in COMPILE_MODES:
        raise ConfigError(f"unknown compile mode '{r.compile}'; choose one of: {', '.join(COMPILE_MODES)}")
    check_device(r.device)
    user_path(r.out_dir, "out_dir")
    if r.name is not None:
        check_run_name(r.name)
    unknown_logs = [x for x in (r.log or "").split(",") if x.strip() not in LOGGERS + ("",)]
    if unknown_logs:
        raise ConfigError(f"unknown log '{unknown_logs[0]}'; choose from: {', '.join(LOGGERS)}")
    for name in ("eval_size", "eval_pgd_steps", "test_size", "checkpoint_every", "threads", "log_every"):
        if getattr(r, name) < 0:
            raise ConfigError(f"{name} = {getattr(r, name)} must not be negative")


#: the rules of :func:`validate`, by part, in the order they run
CHECKS = {"data": check_data, "models": check_models, "attack": check_attack, "method": check_method,
          "optim": check_optim, "run": check_run}
