"""``ciard <command>`` (or ``python -m ciard``): train, eval, bench, zoo, sweep, data. ``--help`` on each.

Every config field is a flag (``--push-weight 0``, ``--no-itt``, ``--eps 8/255``) whose help
text is the field's own (:func:`ciard.config.field_help`, which the Train form shows too); a
preset or ``--config FILE`` gives the starting point and flags override it. Bad values stop
the command with one line naming them (exit status 2) before any work starts; ``eval`` and
``bench`` check the settings they share with ``train`` by the same rules.

The commands import their modules when they run, so that ``ciard --help`` does not load torch.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import (EVAL_ATTACKS, FIELD_INDEX, PRESETS, TRANSFER_ATTACKS, Config, ConfigError, field_help,
                     load_config_file, preset, validate)
from .names import check_name
from .paths import shorten, user_path

log = logging.getLogger("ciard")

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for config errors
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for name, (section, f) in FIELD_INDEX.items():
        flag = "--" + name.replace("_", "-")
        help_text = field_help(name) or f"[{section}] default: {f.default}"
        if str(f.type).startswith("bool"):
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar="V", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ciard", description="CIARD Studio: adversarial robustness distillation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a student (or a teacher) with any method",
                       description="Train with a preset, a config file and per-flag overrides.")
    t.add_argument("--preset", choices=sorted(PRESETS), help="starting configuration")
    t.add_argument("--config", help="JSON config file (nested by section or flat)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or killed run from its last checkpoint")
    t.add_argument("--run-dir", help="write into this (new or empty) run directory instead of OUT_DIR/NAME")
    t.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    t.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_config_flags(t)

    e = sub.add_parser("eval", help="evaluate a checkpoint under the attack protocol")
    e.add_argument("--checkpoint", required=True, help="checkpoint file, run directory or zoo:NAME")
    e.add_argument("--role", default="student", choices=("student", "robust_teacher"),
                   help="which model of a training checkpoint")
    e.add_argument("--attacks", default="clean,fgsm,pgd_sat,pgd_trades,cw",
                   help="comma list from: clean, fgsm, pgd_sat, pgd_trades, cw, apgd, autoattack, "
                        "bb_pgd_trades, bb_cw, square, square100; or 'all'")
    e.add_argument("--n", type=int, default=1000, help="number of test images (class-balanced; 0 = all)")
    e.add_argument("--source", help="source model for the transfer (bb_*) attacks, e.g. the robust teacher")
    e.add_argument("--dataset", default="default")
    e.add_argument("--data-path")
    e.add_argument("--eps", default="8/255")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--aa-steps", type=int, default=100, help="APGD/FAB steps inside AutoAttack")
    e.add_argument("--square-queries", type=int, default=5000)
    e.add_argument("--device", default="auto", help=field_help("device"))
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--partial", metavar="FILE",
                   help="keep each finished attack's result in FILE, and take those already there "
                        "(same weights, images and settings) instead of running them again: an "
                        "interrupted evaluation resumes at its first unfinished attack")

    b = sub.add_parser("bench", help="time training steps against the reference implementation's structure",
                       description="Times the trainer's step and, for CIARD, a reference step that mirrors the "
                                   "published implementation (fp32, NCHW, separate passes), in one run.")
    b.add_argument("--method", default="ciard", help="training method to time")
    b.add_argument("--student", default="resnet20")
    b.add_argument("--clean-teacher", default="resnet56", help="clean teacher architecture")
    b.add_argument("--robust-teacher", default="resnet56", help="robust teacher architecture")
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--pgd-steps", type=int, default=10)
    b.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    b.add_argument("--device", default="auto", help=field_help("device"))
    b.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    b.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="fold eval-mode BatchNorm (attacks, frozen teachers)")
    b.add_argument("--compile", dest="compile_attack", action=argparse.BooleanOptionalAction, default=True,
                   help="torch.compile the attack, as a long training run does (compile time is not timed)")
    b.add_argument("--steps", type=int, default=3, help="timed steps per round")
    b.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    b.add_argument("--rounds", type=int, default=2, help="alternating timing rounds; the best is reported")
    b.add_argument("--no-reference", dest="reference", action="store_false", help="skip the reference step")
    b.add_argument("--eval", dest="eval_bench", action="store_true",
                   help="also time PGD-20 evaluation against torchattacks.PGD (fp32)")
    b.add_argument("--profile", action="store_true", help="per-operator time of one step of each")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    b.add_argument("--peak-size", type=int, default=0,
                   help="side of the square matmul timed as the machine's peak (0: 2048 on the CPU, 8192 on CUDA)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--playground", action="store_true",
                   help="instead: seconds of a default Playground run (2-D, four MLPs; budget 5 s), best of --rounds")

    z = sub.add_parser("zoo", help="list the shipped models, or register one")
    z.add_argument("action", nargs="?", default="list", choices=("list", "add", "merge-eval", "default"),
                   help="list; add a model; merge-eval: add a further evaluation report to an entry; "
                        "default: make teacher --name the one 'auto' picks for its role")
    z.add_argument("--name", help="add: entry name (the file becomes checkpoints/NAME.pt)")
    z.add_argument("--checkpoint", help="add: the checkpoint or run directory to ship")
    z.add_argument("--role", choices=("clean_teacher", "robust_teacher", "student"))
    z.add_argument("--dataset", default="cifar10", help="add: dataset it was trained on (cifar10, default, ...)")
    z.add_argument("--train-command", help="add: the command that trained it")
    z.add_argument("--train-seconds", type=float)
    z.add_argument("--train-log", metavar="FILE",
                   help="add: a training log, one line per session: its seconds, then the machine it "
                        "ran on (tools/train_zoo.sh writes RUN/train-seconds); gives the training "
                        "time and hardware instead of --train-seconds and this machine")
    z.add_argument("--default", action="store_true", help="add: the teacher 'auto' picks for its role")
    z.add_argument("--eval-json", help="add: output of `python -m ciard eval --json` for it")
    z.add_argument("--eval-command", help="add: the command that produced --eval-json")
    z.add_argument("--notes", default="")
    z.add_argument("--json", action="store_true")
    z.add_argument("--markdown", action="store_true", help="list: the results table in Markdown")
    z.add_argument("--compare-to", metavar="NAME",
                   help="list --markdown: also each entry minus NAME on the same images, with paired 95 %% CIs")
    z.add_argument("--dataset-filter", help="list: only entries trained on this dataset")

    sw = sub.add_parser("sweep", help="hyperparameter sweep with Optuna; each trial is a run in the run store",
                        description="Trials are ordinary runs (the app's Runs page shows them). The objective "
                                    "is w * clean + (1 - w) * PGD on the validation split, reported each epoch; "
                                    "weak trials are pruned. Several workers may share one --storage.")
    sw.add_argument("--study", required=True, help="study name (created, or joined if it exists)")
    sw.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUNS_DIR/sweeps.db; "
                                      "e.g. postgresql://user:pw@host/db for many workers)")
    sw.add_argument("--trials", type=int, default=10, help="trials this worker runs")
    sw.add_argument("--space", help="JSON search space, e.g. {\"push_weight\": {\"low\": 0.1, \"high\": 4, "
                                    "\"log\": true}} (default: push_weight, push_temp, itt_lr, eps_warmup; for dgad, "
                                    "adaad, kdiga and peeraid their own weights, see ciard/sweep.py)")
    sw.add_argument("--clean-weight", type=float, default=0.5, help="w in the objective (default 0.5)")
    sw.add_argument("--pruner", default="median", choices=("median", "none"))
    sw.add_argument("--runs-dir", default="runs", help="run store the trials go to")
    sw.add_argument("--jobs", type=int, default=1,
                    help="trials in flight at once (default 1); the run store's queue concurrency also bounds them")
    sw.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler (reproducible suggestions)")
    sw.add_argument("--preset", choices=sorted(PRESETS), help="base configuration of every trial")
    sw.add_argument("--config", help="JSON config file for the base configuration")
    _add_config_flags(sw)

    q = sub.add_parser("queue", help="start the run store's queued runs, concurrency at a time, until none is left",
                       description="Runs launched as queued (sweep trials, seed repeats) wait in the run store; "
                                   "this worker starts them while fewer than the store's concurrency "
                                   "(queue.json, default 1) are running. One worker per store; the app starts it.")
    q.add_argument("--runs-dir", default="runs", help="the run store")
    q.add_argument("--concurrency", type=int, help="set the store's concurrency first")

    a = sub.add_parser("app", help="serve CIARD Studio in the browser (streamlit run app.py)")
    a.add_argument("--port", type=int, default=8501)

    d = sub.add_parser("data", help="inspect or prepare a dataset")
    d.add_argument("action", choices=("info", "prepare"),
                   help="info: sizes and classes; prepare: decode and cache (archive sources)")
    d.add_argument("--dataset", default="default")
    d.add_argument("--data-path")
    d.add_argument("--download", action="store_true")
    d.add_argument("--json", action="store_true")
    return parser


# -- commands -----------------------------------------------------------------------
def config_from_args(args: argparse.Namespace) -> Config:
    """The preset, config file and flags as one validated Config, its teacher files opened."""
    cfg = preset(args.preset) if args.preset else Config()
    if args.config:
        cfg = load_config_file(args.config, cfg)
    overrides = {k: v for k, v in vars(args).items() if k in FIELD_INDEX}
    cfg = validate(cfg.override(**overrides))
    from .teachers import check_teachers   # torch: after the checks, which do not need it
    check_teachers(cfg)   # the Train form opens them the same way
    return cfg


def _run_dir_arg(text: str, flag: str, must_exist: bool) -> Path:
    """A run directory typed on the command line (``--resume``, ``--run-dir``), checked."""
    path = user_path(text, flag)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} needs a run directory; {shorten(text)} is a file")
    if must_exist and not path.is_dir():
        raise ConfigError(f"{flag}: no run directory at {shorten(text)}")
    return path


def cmd_train(args: argparse.Namespace) -> int:
    # the flags and config are checked before torch is imported: a bad one is refused at once
    if args.resume:
        path = _run_dir_arg(args.resume, "--resume", must_exist=True)
        if not (path / "config.json").is_file():
            raise ConfigError(f"not a run directory (no config.json): {args.resume}")
        cfg = load_config_file(path / "config.json")   # a damaged config.json is one line too
        allowed = {"device", "threads", "progress"}
        extra = {k: v for k, v in vars(args).items() if k in FIELD_INDEX}
        if set(extra) - allowed:
            raise ConfigError(f"--resume keeps the run's config; only {', '.join(sorted(allowed))} may change")
        cfg = validate(cfg.override(**extra))
    else:
        cfg = config_from_args(args)
        path = _run_dir_arg(args.run_dir, "--run-dir", must_exist=False) if args.run_dir else None
        if path is not None and (path / "last.pt").is_file():
            raise ConfigError(f"run directory {args.run_dir} already holds a run; use --resume")
    if args.print_config:
        print(cfg.to_json())
        return 0
    from . import distributed, teachers
    from .runlog import RunDir
    from .runtime import resolve_device
    resolve_device(cfg.run.device)   # an absent device: one line now, not a failed run later
    ddp = distributed.init(cfg.run.device)   # under torchrun: join the process group
    if cfg.optim.batch_size % ddp.world:
        distributed.shutdown()
        raise ConfigError(f"batch_size {cfg.optim.batch_size} is the global batch: it must be divisible "
                          f"by the {ddp.world} processes (e.g. {cfg.optim.batch_size // ddp.world * ddp.world})")
    try:
        if not ddp.is_main:   # one voice: ranks > 0 only report warnings
            logging.getLogger().setLevel(logging.WARNING)
        run = RunDir(path) if path is not None else None
        if run is not None and ddp.is_main:
            run.lock()   # refused (one line) while another trainer works in this directory
            if args.resume:
                run.clear_stop()  # an old stop request was for the process that honoured it
        trainer = teachers.trainer(cfg, run)   # its teachers: the ones the config names
        if ddp.is_main:
            _log_to_file(trainer.run.log_path)
        result = trainer.fit(resume=bool(args.resume))
        # leave together: a rank that exits while rank 0 still writes its checkpoints and
        # final test would close connections under it
        ddp.barrier()
    finally:
        distributed.shutdown()
    if not ddp.is_main:
        return 0
    out = {"run_dir": result.run_dir, "status": result.status, "epoch": result.epoch,
           "step": result.step, "best": result.best, "final": result.final}
    if args.json:
        print(json.dumps(out))
    else:
        f = result.final
        print(f"{result.status}: {result.run_dir} (epoch {result.epoch}, step {result.step})")
        if "test_clean" in f:
            print(f"test ({f['test_n']} images): clean {100 * f['test_clean']:.2f}%  "
                  f"PGD-20 {100 * f['test_pgd20']:.2f}%  [{f['test_attack']}]")
            print(f"student: {f['best_checkpoint']}")
    return 0


def _partial_results(path: Path, key: dict):
    """The results an interrupted ``eval --partial`` kept for exactly this evaluation (same
    weights, images and settings; anything else is ignored and replaced), the attack it was in
    the middle of (its batches so far), and the callbacks that keep each finished attack and
    each finished batch, atomically. ``evaluate`` also checks that each kept attack is the one
    it would run now (its full description), so a result from changed attack code is redone."""
    from .runlog import read_json, write_json
    kept = read_json(path) if path.is_file() else {}
    mine = kept.get("key") == key
    done = kept.get("results", {}) if mine else {}
    unfinished = kept.get("unfinished") if mine else None
    if done or unfinished:
        log.info("resuming the evaluation kept in %s: %s", path,
                 ", ".join([*done, *([f"{unfinished['key']} ({unfinished['done']}/{unfinished['n']} images)"]
                                     if unfinished else [])]) + " done")
    elif kept:
        log.info("%s holds another evaluation's results: starting afresh", path)
    state = {"key": key, "results": dict(done)}
    if unfinished:   # kept until that attack ends (a stop before its next batch loses nothing)
        state["unfinished"] = unfinished

    def keep(name: str, result: dict) -> None:
        state["results"][name] = result
        if state.get("unfinished", {}).get("key") == name:
            del state["unfinished"]
        write_json(path, state)

    def keep_batch(progress: dict) -> None:
        state["unfinished"] = progress
        write_json(path, state)
    return done, keep, unfinished, keep_batch


def cmd_eval(args: argparse.Namespace) -> int:
    import hashlib

    for flag, least in (("n", 0), ("aa_steps", 1), ("square_queries", 1)):
        if getattr(args, flag) < least:
            raise ConfigError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be at least {least}"
                              + (" (0 evaluates every test image)" if flag == "n" else ""))
    # the settings eval shares with train, checked by train's rules
    cfg = validate(Config().override(dataset=args.dataset, data_path=args.data_path, eps=args.eps,
                                     batch_size=args.batch_size, device=args.device, seed=args.seed),
                   parts=("data", "attack", "optim", "run"))
    attacks = list(EVAL_ATTACKS) if args.attacks == "all" else [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in EVAL_ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack '{unknown[0]}'; choose from: {', '.join(EVAL_ATTACKS)}")
    if not attacks:
        raise ConfigError("--attacks names no attack; choose from: " + ", ".join(EVAL_ATTACKS))
    if any(a in TRANSFER_ATTACKS for a in attacks) and not args.source:
        if args.attacks == "all":
            attacks = [a for a in attacks if a not in TRANSFER_ATTACKS]
            log.warning("no --source model: skipping the transfer attacks")
        else:
            raise ConfigError("the bb_* attacks need --source CHECKPOINT (e.g. the robust teacher)")
    import torch   # after the checks above: a bad flag is refused without loading torch
    from . import specs
    from .attacks import eps_text
    from .checkpoints import weights_fingerprint
    from .data import fixed_subset, load_dataset, to_float
    from .evaluate import consistency_warnings, evaluate, format_table
    from .runtime import resolve_device
    eps = cfg.attack.eps
    device = resolve_device(args.device)
    model = specs.load_model(args.checkpoint, device, role=args.role)
    source = specs.load_model(args.source, device) if args.source else None
    data = load_dataset(args.dataset, args.data_path, seed=0)
    test = data.test if args.n in (0, None) or args.n >= len(data.test) else fixed_subset(data.test, args.n, seed=args.seed)
    x, y = to_float(test.x).to(device), test.y.to(device)
    torch.manual_seed(args.seed)
    # which images, exactly: two reports are compared image by image only when this matches
    images = hashlib.sha256(test.x.numpy().tobytes() + test.y.numpy().tobytes()).hexdigest()
    done, keep, unfinished, keep_batch = {}, None, None, None
    if args.partial:
        done, keep, unfinished, keep_batch = _partial_results(Path(args.partial), {
            "weights": weights_fingerprint(model), "source": source and weights_fingerprint(source),
            "dataset": args.dataset, "data_path": args.data_path, "device": device.type, "n": len(y),
            "images": images,
            "seed": args.seed, "eps": eps, "batch_size": args.batch_size, "aa_steps": args.aa_steps,
            "square_queries": args.square_queries})
    results = evaluate(model, x, y, attacks, eps=eps, source=source, batch_size=args.batch_size,
                       seed=args.seed, aa_steps=args.aa_steps, square_queries=args.square_queries,
                       done=done, on_result=keep, unfinished=unfinished, on_batch=keep_batch)
    warnings = consistency_warnings(results)
    out = {"checkpoint": args.checkpoint, "role": args.role, "arch": model.arch, "dataset": args.dataset,
           "n": len(y), "seed": args.seed, "images": images, "eps": eps, "source": args.source, "precision": "fp32",
           "accuracy": {k: v["accuracy"] for k, v in results.items()}, "results": results,
           "warnings": warnings}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.checkpoint} ({model.arch}) on {len(y)} {args.dataset} test images, eps {eps_text(eps)}, fp32")
        print(format_table(results))
        for w in warnings:
            print(f"warning: {w}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch
    if args.playground:
        from .playground import bench_playground, format_bench_playground
        if args.rounds < 1:
            raise ConfigError(f"rounds = {args.rounds} must be at least 1")
        result = bench_playground(rounds=args.rounds)
        print(json.dumps(result) if args.json else format_bench_playground(result))
        return 0
    from .bench import format_bench, run_bench
    from .models import MODEL_NAMES, is_point_model, is_valid_model_name
    for flag in ("student", "clean_teacher", "robust_teacher"):   # architectures here, not checkpoints
        if not is_valid_model_name(getattr(args, flag)) or is_point_model(getattr(args, flag)):
            raise ConfigError(f"unknown model '{getattr(args, flag)}'; choose one of: {', '.join(MODEL_NAMES)}"
                              + (" (mlp-WxD models take 2-D points: use --playground)"
                                 if is_point_model(getattr(args, flag)) else ""))
    # the settings bench shares with train, checked by train's rules
    validate(Config().override(method=args.method, student=args.student, batch_size=args.batch_size,
                               pgd_steps=args.pgd_steps, precision=args.precision, device=args.device,
                               threads=args.threads),
             parts=("method", "attack", "optim", "run"))
    for flag in ("steps", "rounds"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"{flag} = {getattr(args, flag)} must be at least 1")
    if args.peak_size < 0:
        raise ConfigError(f"peak_size = {args.peak_size} must not be negative")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_bench(method=args.method, student=args.student, clean_teacher=args.clean_teacher,
                       robust_teacher=args.robust_teacher, batch_size=args.batch_size,
                       pgd_steps=args.pgd_steps, precision=args.precision, device=args.device,
                       channels_last=args.channels_last, fold_bn=args.fold_bn, steps=args.steps,
                       warmup=args.warmup, rounds=args.rounds, reference=args.reference,
                       eval_bench=args.eval_bench, profile=args.profile,
                       compile_attack=args.compile_attack, peak_size=args.peak_size)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


def _read_report(path: str) -> dict[str, Any]:
    """An `eval --json` report, or one clear line saying why it cannot be used."""
    try:
        report = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"evaluation report not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not the JSON of `python -m ciard eval --json`") from None
    if not isinstance(report, dict) or not {"accuracy", "results", "n"} <= set(report):
        raise ConfigError(f"{path} is not the JSON of `python -m ciard eval --json`")
    return report


def cmd_zoo(args: argparse.Namespace) -> int:
    from . import specs
    from .zoo import (add_entry, entries, evaluation_from_report, format_markdown, format_paired_markdown,
                      format_zoo, merge_evaluation, set_default, training_sessions)
    if args.action == "merge-eval":
        missing = [f for f in ("name", "eval_json", "eval_command") if not getattr(args, f)]
        if missing:
            raise ConfigError(f"zoo merge-eval needs --{missing[0].replace('_', '-')}")
        try:
            entry = merge_evaluation(args.name, _read_report(args.eval_json), args.eval_command)
        except KeyError as exc:
            raise ConfigError(exc.args[0]) from None
        print(json.dumps(entry["evaluation"]["accuracy"]))
        return 0
    if args.action == "default":
        if not args.name:
            raise ConfigError("zoo default needs --name")
        try:
            entry = set_default(args.name)
        except (KeyError, ValueError) as exc:
            raise ConfigError(exc.args[0]) from None
        print(f"{entry['name']} is now the default {entry['role'].replace('_', ' ')} for {entry['dataset']}")
        return 0
    if args.action == "add":
        missing = [f for f in ("name", "checkpoint", "role", "train_command") if not getattr(args, f)]
        if missing:
            raise ConfigError(f"zoo add needs --{missing[0].replace('_', '-')}")
        check_name(args.name, "zoo entry name")   # it becomes checkpoints/NAME.pt
        evaluation = evaluation_from_report(_read_report(args.eval_json)) if args.eval_json else None
        seconds, trained_on = args.train_seconds, None
        if args.train_log:
            if args.train_seconds is not None:
                raise ConfigError("zoo add takes --train-seconds or --train-log, not both")
            try:
                seconds, trained_on = training_sessions(Path(args.train_log).read_text())
            except OSError as exc:
                raise ConfigError(f"cannot read --train-log {args.train_log}: {exc.strerror}") from None
            except ValueError as exc:
                raise ConfigError(f"--train-log {args.train_log}: {exc}") from None
        entry = add_entry(name=args.name, source=str(specs.resolve(args.checkpoint, "--checkpoint")), role=args.role,
                          dataset=args.dataset, command=args.train_command,
                          train_seconds=seconds, default=args.default,
                          evaluation=evaluation, eval_command=args.eval_command, notes=args.notes,
                          trained_on=trained_on)
        print(json.dumps(entry, indent=2))
        return 0
    listed = entries()
    if args.dataset_filter:
        listed = [e for e in listed if e.get("dataset") == args.dataset_filter]
    if args.markdown:
        print(format_markdown(listed))
        if args.compare_to:
            try:
                print("\n" + format_paired_markdown(listed, args.compare_to))
            except KeyError as exc:
                raise ConfigError(exc.args[0]) from None
        return 0
    print(json.dumps(listed) if args.json else (format_zoo(listed) if listed else "the zoo is empty"))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("sweeps need optuna: pip install -r requirements-scale.txt") from None
    from .sweep import Sweep, load_space, summary
    if args.trials < 1:
        raise ConfigError(f"trials = {args.trials} must be at least 1")
    if args.jobs < 1:
        raise ConfigError(f"jobs = {args.jobs} must be at least 1")
    base = config_from_args(args)
    sweep = Sweep(base, args.study, storage=args.storage, space=load_space(args.space, base.method.method),
                  clean_weight=args.clean_weight, pruner=args.pruner, runs_dir=args.runs_dir,
                  seed=args.sampler_seed)
    print(f"study {args.study} in {sweep.storage}; trials go to {args.runs_dir}/", flush=True)
    study = sweep.run(args.trials, jobs=args.jobs)
    print(summary(study))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import load_dataset
    if args.data_path:
        user_path(args.data_path, "--data-path")
    data = load_dataset(args.dataset, args.data_path, download=args.download)
    info = {"dataset": args.dataset, "name": data.name, "classes": data.classes,
            "train": len(data.train), "val": len(data.val), "test": len(data.test),
            "image_size": list(data.image_size)}
    print(json.dumps(info) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from .runqueue import run_worker, set_concurrency
    from .runs import RunStore
    store = RunStore(user_path(args.runs_dir, "--runs-dir"))
    if args.concurrency is not None:
        try:
            set_concurrency(store, args.concurrency)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if run_worker(store):
        print(f"another queue worker serves {args.runs_dir}", flush=True)
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """Serve the app that ships with the package; runs go to ``$CIARD_RUNS_DIR`` or ``./runs``."""
    import os
    import subprocess
    from .resources import APP, default_runs_dir
    if not APP.is_file():
        raise ConfigError(f"the app is not installed beside the package (no {APP})")
    env = {**os.environ, "CIARD_RUNS_DIR": os.environ.get("CIARD_RUNS_DIR") or str(default_runs_dir())}
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(APP),
                            "--server.port", str(args.port)], cwd=APP.parent, env=env)


def _log_to_file(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    # torch-free: a refused flag is answered without loading torch
    from .errors import CheckpointError, DataError, TrainingDiverged
    commands: dict[str, Any] = {"train": cmd_train, "eval": cmd_eval, "bench": cmd_bench, "zoo": cmd_zoo,
                                "sweep": cmd_sweep, "data": cmd_data, "app": cmd_app,
                                "queue": cmd_queue}
    try:
        return commands[args.command](args)
    except (ConfigError, DataError, CheckpointError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:   # the run is marked failed; not a bad input
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:   # a file the command was pointed at cannot be used
        what = shorten(exc.filename) if exc.filename else "a file"
        print(f"error: cannot use {what}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # a second Ctrl-C: the trainer has marked its run "stopped"
        print("interrupted", file=sys.stderr)
        return 130
