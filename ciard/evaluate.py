"""Robustness evaluation: the spec's protocol, for any model, on any number of test images.

Protocol (L-inf, eps = 8/255 unless told otherwise):
  clean; FGSM; PGD-SAT (20 x 2/255, uniform start, CE); PGD-TRADES (20 x 0.003, uniform start,
  CE); CW-inf (30 x 2/255, margin, kappa 50, from x itself); AutoAttack (APGD-CE, APGD-T,
  FAB-T, Square); black-box: PGD-TRADES and CW-inf crafted on a source model (the robust
  teacher) and transferred, and Square (score-based queries) on the model itself, with 5,000
  queries (``square``) or with the 100 of the CIARD paper's evaluation (``square100``).

A sample counts as robust only if it is classified correctly both clean and under attack
(AutoAttack's convention), so every robust accuracy is <= the clean accuracy. Evaluation runs
in fp32: low-precision gradients can blunt an attack and overstate robustness.
"""
from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from .attacks import APGD, FGSM, PGD, Attack, AutoAttack, CWInf, Square, model_mode
from .fold import fold
from .stats import decode_mask, encode_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolAttack:
    key: str
    label: str
    make: Callable[[float, int], Attack | None]   # (eps, seed) -> attack; None for clean
    transfer: bool = False                          # crafted on the source model
    description: str = ""


def protocol(aa_steps: int = 100, square_queries: int = 5000) -> dict[str, ProtocolAttack]:
    """The evaluation protocol, keyed by short names usable on the command line."""
    entries = [
        ProtocolAttack("clean", "Clean", lambda eps, s: None, description="no attack"),
        ProtocolAttack("fgsm", "FGSM", lambda eps, s: FGSM(eps),
                       description="one step of size eps, no random start"),
        ProtocolAttack("pgd_sat", "PGD-SAT", lambda eps, s: PGD(eps, 20, 2 / 255, start="uniform"),
                       description="PGD-20, step 2/255, uniform start, CE"),
        ProtocolAttack("pgd_trades", "PGD-TRADES", lambda eps, s: PGD(eps, 20, 0.003, start="uniform"),
                       description="PGD-20, step 0.003, uniform start, CE"),
        ProtocolAttack("cw", "CW-inf", lambda eps, s: CWInf(eps, 30, 2 / 255, kappa=50.0),
                       description="30 steps of 2/255, CW margin loss, kappa 50, zero start"),
        ProtocolAttack("apgd", "APGD-CE", lambda eps, s: APGD(eps, steps=aa_steps, seed=s),
                       description=f"APGD-CE, {aa_steps} steps (torchattacks)"),
        ProtocolAttack("autoattack", "AutoAttack",
                       lambda eps, s: AutoAttack(eps, steps=aa_steps, queries=square_queries, seed=s),
                       description=f"APGD-CE, APGD-T, FAB-T ({aa_steps} steps), Square ({square_queries} queries)"),
        ProtocolAttack("bb_pgd_trades", "BB PGD-TRADES",
                       lambda eps, s: PGD(eps, 20, 0.003, start="uniform"), transfer=True,
                       description="PGD-TRADES crafted on the source model, transferred"),
        ProtocolAttack("bb_cw", "BB CW-inf", lambda eps, s: CWInf(eps, 30, 2 / 255, kappa=50.0),
                       transfer=True, description="CW-inf crafted on the source model, transferred"),
        ProtocolAttack("square", "BB Square", lambda eps, s: Square(eps, queries=square_queries, seed=s),
                       description=f"Square, {square_queries} queries (score-based black box)"),
        ProtocolAttack("square100", "BB Square-100", lambda eps, s: Square(eps, queries=100, seed=s),
                       description="Square, 100 queries (the CIARD paper's black-box Square)"),
    ]
    return {e.key: e for e in entries}


DEFAULT_ATTACKS = ("clean", "fgsm", "pgd_sat", "pgd_trades", "cw")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Eval-mode argmax predictions, batched; restores every module's mode."""
    with model_mode(model, train=False):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def robust_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None,
                   source: nn.Module | None = None) -> torch.Tensor:
    """Bool mask: correct on clean x and (if attacked) on the adversarial x'.

    Only clean-correct samples are attacked (the others are wrong either way). With
    ``source`` the attack is crafted on that model and transferred to ``model``.
    """
    correct = predict(model, x) == y
    if attack is None or not bool(correct.any()):
        return correct
    idx = correct.nonzero().squeeze(1)
    x_adv = attack(source if source is not None else model, x[idx], y[idx])
    correct[idx] = predict(model, x_adv) == y[idx]
    return correct


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: list[str] | tuple[str, ...] = DEFAULT_ATTACKS,
             *, eps: float = 8 / 255, source: nn.Module | None = None, batch_size: int = 256,
             seed: int = 0, aa_steps: int = 100, square_queries: int = 5000, fold_bn: bool = True,
             progress: Callable[[str, int, int], None] | None = None,
             done: dict[str, dict] | None = None,
             on_result: Callable[[str, dict], None] | None = None,
             unfinished: dict | None = None,
             on_batch: Callable[[dict], None] | None = None) -> dict[str, dict]:
    """Run the named protocol attacks; return {key: {accuracy, correct, n, attack, seconds, mask}}.

    ``mask`` is the per-image robust-correct vector in ``stats.encode_mask`` form.

    ``x`` is a float batch in [0, 1] (on the model's device), ``y`` its labels.

    Each attack seeds its own random starts, so attacks are independent of one another and of
    their order: ``done`` (results of an earlier, interrupted call on the same model, images and
    settings) are taken as they are and not run again, and ``on_result(key, result)`` is called
    as each attack ends, so that a caller can keep them (``python -m ciard eval --partial``).
    Within an attack, ``on_batch(state)`` is called after each batch but the last with what an
    interrupted call needs to go on from the next batch (the masks so far and the random
    state), and ``unfinished`` (such a state from an earlier call) resumes that attack there:
    the result equals an uninterrupted run's. An AutoAttack of 1,000 images takes about an
    hour on a 2-core CPU; a stop then loses at most one batch.
    """
    table = protocol(aa_steps, square_queries)
    unknown = [a for a in attacks if a not in table]
    if unknown:
        raise ValueError(f"unknown attack(s) {', '.join(unknown)}; choose from: {', '.join(table)}")
    # attacks and predictions use an eval-mode view with BatchNorm folded into the convs:
    # the same function (fp32, up to rounding), fewer operations per forward and backward
    model = fold(model, channels_last=True) if fold_bn else model
    if source is not None:
        source = fold(source, channels_last=True) if fold_bn else source
    results: dict[str, dict] = {}
    for key in attacks:
        entry = table[key]
        if entry.transfer and source is None:
            raise ValueError(f"attack '{key}' needs a source model (--source CHECKPOINT)")
        attack = entry.make(eps, seed)
        described = entry.description if attack is None else f"{entry.description}; {attack!r}"
        if done and key in done and done[key].get("attack") == described and done[key].get("n") == len(x):
            results[key] = done[key]
            log.info("%-14s %.2f%% (kept from the interrupted evaluation)", entry.label, 100 * done[key]["accuracy"])
            if on_result:
                on_result(key, results[key])
            continue
        t0 = time.perf_counter()
        masks, start, earlier = [], 0, 0.0
        # random starts reproducible per attack, without disturbing the caller's RNG stream
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            u = unfinished or {}
            if (u.get("key") == key and u.get("attack") == described and u.get("n") == len(x)
                    and u.get("batch_size") == batch_size and 0 < u.get("done", 0) < len(x)
                    and set(u.get("rng", {})) == set(_rng_keys(x.device, devices))):
                start, earlier = u["done"], u["seconds"]
                masks.append(torch.from_numpy(decode_mask(u["mask"], start)))
                _set_rng(u["rng"])
                log.info("%-14s resuming at image %d of %d (kept from the interrupted evaluation)",
                         entry.label, start, len(x))
            for i in range(start, len(x), batch_size):
                xb, yb = x[i:i + batch_size], y[i:i + batch_size]
                masks.append(robust_correct(model, xb, yb, attack, source if entry.transfer else None).cpu())
                end = min(i + batch_size, len(x))
                if progress:
                    progress(key, end, len(x))
                if on_batch and end < len(x):
                    on_batch({"key": key, "attack": described, "n": len(x), "batch_size": batch_size,
                              "done": end, "mask": encode_mask(torch.cat(masks).numpy()),
                              "rng": _get_rng(x.device, devices), "seconds": round(earlier + time.perf_counter() - t0, 2)})
        seconds = earlier + time.perf_counter() - t0
        mask = torch.cat(masks) if masks else torch.zeros(0, dtype=torch.bool)
        hits = int(mask.sum())
        # the per-image mask makes paired comparisons between models on the same images possible
        results[key] = {"label": entry.label, "accuracy": hits / max(len(x), 1), "correct": hits,
                        "n": len(x), "attack": described,
                        "eps": eps, "seconds": round(seconds, 2), "mask": encode_mask(mask.numpy())}
        log.info("%-14s %.2f%% (%d/%d, %.1fs)", entry.label, 100 * hits / max(len(x), 1), hits, len(x), seconds)
        if on_result:
            on_result(key, results[key])
    return results


def _rng_keys(device: torch.device, devices: list[int]) -> list[str]:
    """The generators an attack's random starts draw from: the CPU's and the device's."""
    return ["cpu", *(f"cuda:{d}" for d in devices), *(["mps"] if device.type == "mps" else [])]


def _get_rng(device: torch.device, devices: list[int]) -> dict:
    """The random state an attack's next batch starts from, as text, for every generator it uses
    (resuming on another set of devices starts the attack afresh)."""
    def text(t: torch.Tensor) -> str:
        return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")
    state = {"cpu": text(torch.get_rng_state())}
    for d in devices:
        state[f"cuda:{d}"] = text(torch.cuda.get_rng_state(d))
    if device.type == "mps":
        state["mps"] = text(torch.mps.get_rng_state())
    return state


def _set_rng(state: dict) -> None:
    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
    for name, text in state.items():
        if name == "cpu":
            torch.set_rng_state(tensor(text))
        elif name == "mps":
            torch.mps.set_rng_state(tensor(text))
        else:
            torch.cuda.set_rng_state(tensor(text), int(name.split(":")[1]))


def consistency_warnings(results: dict[str, dict]) -> list[str]:
    """Gradient-masking checks: AutoAttack <= PGD <= FGSM <= clean; black-box above white-box."""
    acc = {k: v["accuracy"] for k, v in results.items()}
    warnings = []
    chain = [k for k in ("autoattack", "pgd_sat", "fgsm", "clean") if k in acc]
    for weaker, stronger in zip(chain[1:], chain[:-1]):
        if acc[stronger] > acc[weaker] + 1e-9:
            warnings.append(f"{stronger} ({acc[stronger]:.2%}) above {weaker} ({acc[weaker]:.2%}): possible gradient masking")
    # each transfer attack against its white-box twin; Square against the strongest white-box
    white = [acc[k] for k in ("autoattack", "pgd_sat", "pgd_trades", "cw") if k in acc]
    pairs = [("bb_pgd_trades", acc.get("pgd_trades")), ("bb_cw", acc.get("cw")),
             ("square", min(white) if white else None), ("square100", min(white) if white else None)]
    for bb, ref in pairs:
        if bb in acc and ref is not None and acc[bb] < ref - 1e-9:
            warnings.append(f"{bb} ({acc[bb]:.2%}) below its white-box counterpart ({ref:.2%}): "
                            "the white-box attack is weak here (possible gradient masking)")
    return warnings


def format_table(results: dict[str, dict]) -> str:
    rows = [f"{'attack':<15} {'accuracy':>9} {'correct':>8} {'n':>6} {'time':>8}"]
    for r in results.values():
        rows.append(f"{r['label']:<15} {100 * r['accuracy']:>8.2f}% {r['correct']:>8} {r['n']:>6} {r['seconds']:>7.1f}s")
    return "\n".join(rows)
