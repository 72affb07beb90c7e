"""Widgets and views of the Clean-vs-adversarial page (``app_pages/adversarial.py``)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from .. import explain
from ..data import ImageData, balanced_indices
from . import finder, probe
from .probe_charts import accuracy_eps_figure, topk_figure
from .query import ADVERSARIAL, apply_query
from .text import md

N_THUMBS = 12
SOURCES = {"student": "student (white-box for the student)",
           "robust_teacher": "robust teacher (transferred to the others)",
           "clean_teacher": "clean teacher (transferred to the others)"}
assert tuple(SOURCES) == ADVERSARIAL["source"].choices
EPS, STEPS = ADVERSARIAL["eps"], ADVERSARIAL["steps"]   # the sliders' ranges are the table's


@dataclass(frozen=True)
class AttackParams:
    attack: str
    eps: float          # in [0, 1]
    steps: int
    step_size: float
    source: str         # role the attack is crafted on


def init_from_query(n_images: int) -> None:
    """Seed the page's widgets from the URL once per session (a shared link opens that view),
    each value clamped to its widget's range (a hand-edited link cannot break the page)."""
    if st.session_state.get("adv_query_done"):
        return
    st.session_state["adv_query_done"] = True
    apply_query(st.query_params.to_dict(), st.session_state, ADVERSARIAL, highs={"img": n_images - 1})


def sync_query(idx: int, p: AttackParams) -> None:
    st.query_params.update({"img": str(idx), "attack": p.attack, "eps": str(round(p.eps * 255)),
                            "steps": str(p.steps), "source": p.source})


def pick_image(data: ImageData) -> int:
    """A grid of thumbnails (random or of one class); returns the chosen test index."""
    n = len(data)
    init_from_query(n)
    ss = st.session_state
    if "adv_idx_next" in ss:                      # chosen by the finder in the last run
        ss["adv_idx"] = ss.pop("adv_idx_next")
    if not isinstance(ss.get("adv_idx"), int) or not 0 <= ss["adv_idx"] < n:
        ss["adv_idx"] = 0
    with st.expander("Choose a test image", expanded=True, icon=":material/image:"):
        f = st.columns(len(finder.KINDS))
        for col, (kind, name) in zip(f, finder.KINDS.items()):
            if col.button(name, key=f"adv_find_{kind}", width="stretch", help=FINDER_HELP[kind]):
                ss["adv_find"] = kind          # found after the attack controls are drawn
        if ss.get("adv_found"):
            st.caption(md(ss["adv_found"]))
        c1, c2, c3 = st.columns([2, 3, 2])
        ss.setdefault("adv_mode", "random")
        mode = c1.segmented_control("Show", ["random", "by class"], key="adv_mode")
        if mode == "by class":
            cls = c2.selectbox("Class", range(data.num_classes), key="adv_class",
                               format_func=lambda i: data.classes[i])
            pool = torch.nonzero(data.y == cls).flatten().tolist()
        else:
            pool = list(range(n))
        if c3.button("Shuffle", icon=":material/shuffle:", help="another set of thumbnails"):
            ss["adv_seed"] = ss.get("adv_seed", 0) + 1
        g = torch.Generator().manual_seed(ss.get("adv_seed", 0))
        order = torch.randperm(len(pool), generator=g)[:N_THUMBS].tolist()
        shown = [pool[i] for i in order]
        cols = st.container(key="adv_thumbs").columns(N_THUMBS // 2 if N_THUMBS > 6 else N_THUMBS)
        for j, i in enumerate(shown):
            with cols[j % len(cols)]:
                st.image(explain.to_hwc(explain.upscale(data.x[i:i + 1].float() / 255, 3)),
                         caption=f"#{i} {data.classes[int(data.y[i])]}", width="stretch")
                if st.button("Pick", key=f"adv_pick_{i}", type="primary" if i == ss["adv_idx"] else "secondary",
                             width="stretch"):
                    ss["adv_idx"] = i
                    st.rerun()
        st.number_input("…or type a test index", 0, n - 1, key="adv_idx", step=1)
    return int(ss["adv_idx"])


def attack_controls(refs: dict[str, probe.ModelRef], models: dict) -> AttackParams:
    sources = {k: v for k, v in SOURCES.items() if k in models}
    ss = st.session_state
    if ss.get("adv_source") not in sources:
        ss["adv_source"] = next(iter(sources))
    for k, v in (("adv_attack", "pgd"), ("adv_eps", 8), ("adv_steps", 10), ("adv_step", 2.0)):
        ss.setdefault(k, v)
    c1, c2, c3, c4, c5 = st.columns([2, 2, 2, 2, 3])
    attack = c1.selectbox("Attack", list(explain.ATTACKS), key="adv_attack", format_func=explain.ATTACKS.get,
                          help="FGSM: one step of size eps; PGD: iterated signed-gradient steps from a random "
                               "start; CW-inf: PGD on the CW margin loss; APGD-CE: step-size-free PGD (torchattacks)")
    eps = c2.slider("eps (/255)", EPS.low, EPS.high, key="adv_eps", help="the L-inf budget: no pixel moves more than eps")
    steps = c3.slider("Steps", STEPS.low, STEPS.high, key="adv_steps", disabled=attack == "fgsm",
                      help="iterations (not used by FGSM)")
    step = c4.slider("Step size (/255)", 0.5, 8.0, step=0.5, key="adv_step", disabled=attack in ("fgsm", "apgd"),
                     help="per-step size for PGD and CW-inf; APGD adapts its own")
    source = c5.selectbox("Crafted on", list(sources), key="adv_source", format_func=sources.get,
                          help="white-box for the model it is crafted on; a transfer (black-box) attack for the others")
    return AttackParams(attack, eps / 255, int(steps), step / 255, source)


def _img(x: np.ndarray, caption: str) -> None:
    st.image(explain.to_hwc(explain.upscale(torch.from_numpy(x), 6)), caption=caption, width="stretch")


FINDER_HELP = {
    "teaching": "an image every model gets right, on which the attack (this page's settings) fools the clean "
                "teacher while the robust teacher and the student hold; click again for the next one",
    "hardest": "the image on which the attack leaves the models the least probability on the true class",
    "random": "any test image"}
FINDER_BATCH, FINDER_BATCHES = 64, 4


def _confirmed(kind: str, idx: np.ndarray, y: np.ndarray, clean: dict, adv: dict, skip: int,
               data: ImageData, p: AttackParams, keys: dict) -> int | None:
    """The ``skip``-th candidate (clicks cycle) that still qualifies when attacked alone, as the page
    will attack it: PGD's random start differs between a batch and one image."""
    found = finder.candidates(kind, idx, y, clean, adv)
    if kind == "hardest" or not len(found):
        return int(found[skip % len(found)]) if len(found) else None
    order = np.roll(found, -(skip % len(found)))
    for i in order[:6]:
        x1, y1 = probe.as_float(data.x[i:i + 1]), data.y[i:i + 1].numpy()
        xa1 = probe.attack_batch(keys[p.source], x1, y1, p.attack, p.eps, p.steps, p.step_size)
        c1 = {k: probe.probs_of(key, x1) for k, key in keys.items()}
        a1 = {k: probe.probs_of(key, xa1) for k, key in keys.items()}
        if finder.teaching_mask(y1, c1, a1)[0]:
            return int(i)
    return None


def run_finder(data: ImageData, p: AttackParams, models: dict, refs: dict) -> None:
    """Act on a finder button pressed in this run: pick the image, say why, rerun to show it."""
    ss = st.session_state
    kind = ss.pop("adv_find", None)
    if kind is None:
        return
    keys = {k: refs[k].key for k in models}
    clicks = ss.setdefault("adv_find_clicks", {})
    skip = clicks.get(kind, 0)
    clicks[kind] = skip + 1
    found, looked = None, 0
    with st.spinner(f"Looking for a {finder.KINDS[kind].lower()} ({explain.ATTACKS[p.attack]}, "
                    f"eps {round(p.eps * 255)}/255, crafted on the {probe.ROLES[p.source]})…"):
        for b in range(FINDER_BATCHES if kind == "teaching" else 1):
            idx = balanced_indices(data.y, FINDER_BATCH, seed=b, num_classes=data.num_classes).numpy()
            x, y = probe.as_float(data.x[idx]), data.y[idx].numpy()
            looked += len(idx)
            if kind == "random":
                found = finder.choose(kind, idx, y, {}, {})
                break
            xa = probe.attack_batch(keys[p.source], x, y, p.attack, p.eps, p.steps, p.step_size)
            clean = {k: probe.probs_of(keys[k], x) for k in models}
            adv = {k: probe.probs_of(keys[k], xa) for k in models}
            found = _confirmed(kind, idx, y, clean, adv, skip, data, p, keys)
            if found is not None:
                break
    if found is None:
        ss["adv_found"] = (f"No teaching example among {looked} test images with these settings: every image "
                           f"there breaks one of the conditions (try PGD, a larger eps, or another source).")
        return
    ss["adv_idx_next"] = found
    ss["adv_found"] = {
        "teaching": f"Teaching example #{found}: every model is right on it clean; the attack fools the clean "
                    f"teacher while the robust teacher and the student hold.",
        "hardest": f"Hardest of {looked} test images: #{found} (the lowest mean true-class probability after "
                   f"the attack).",
        "random": f"Random test image #{found}."}[kind]
    st.rerun()


def attack_or_message(source: tuple, x: np.ndarray, y: np.ndarray, p: AttackParams) -> np.ndarray | None:
    """The adversarial batch crafted on ``source`` with ``p``, or None after one error line."""
    try:
        with st.spinner("Attacking…"):
            return probe.attack_batch(source, x, y, p.attack, p.eps, p.steps, p.step_size)
    except Exception as exc:
        st.error(f"The attack failed: {md(type(exc).__name__)}: {md(exc)}", icon=":material/error:")
        return None


def render_result(data: ImageData, idx: int, p: AttackParams, models: dict, refs: dict) -> None:
    x = probe.as_float(data.x[idx:idx + 1])
    y = data.y[idx:idx + 1].numpy()
    label = int(y[0])
    keys = {k: refs[k].key for k in models}
    t0 = time.perf_counter()
    x_adv = attack_or_message(keys[p.source], x, y, p)
    if x_adv is None:
        return
    delta = x_adv - x
    amp = 0.5 + delta / (2 * max(p.eps, 1e-8)) if p.eps > 0 else np.full_like(x, 0.5)
    c1, c2, c3 = st.container(key="adv_images").columns(3)
    with c1:
        _img(x, f"clean: #{idx}, true class {data.classes[label]}")
    with c2:
        _img(x_adv, f"adversarial: {explain.ATTACKS[p.attack]}, eps {round(p.eps * 255)}/255, "
                    f"crafted on the {probe.ROLES[p.source]}")
    with c3:
        _img(amp.astype(np.float32), f"perturbation, amplified to fill the range (max |δ| = "
                                     f"{np.abs(delta).max() * 255:.1f}/255)")
    cols = st.container(key="adv_models").columns(3)
    for col, role in zip(cols, ("clean_teacher", "robust_teacher", "student")):
        with col:
            if role not in models:
                st.caption(f"{probe.ROLES[role]}: not available")
                continue
            pc = probe.probs_of(keys[role], x)[0]
            pa = probe.probs_of(keys[role], x_adv)[0]
            kind = "white-box" if role == p.source else "transferred"
            st.plotly_chart(topk_figure(pc, pa, data.classes, label, f"{probe.ROLES[role]} ({kind})"),
                            key=f"adv_top_{role}", config={"displayModeBar": False})
    st.caption(f"Top-5 class probabilities; the true class is green, a wrong top-1 red. "
               f"{explain.ATTACKS[p.attack]} at eps {round(p.eps * 255)}/255 and the predictions computed in "
               f"{time.perf_counter() - t0:.2f} s (cached on repeat).")


EPS_GRID = (0, 2, 4, 8, 12, 16)


def render_eps_curve(data: ImageData, p: AttackParams, models: dict, refs: dict) -> None:
    st.subheader("Accuracy against eps")
    c1, c2 = st.columns([1, 3])
    st.session_state.setdefault("adv_curve_n", 64)
    n = c1.select_slider("Images", [32, 64, 128, 256], key="adv_curve_n",
                         help="a class-balanced batch of test images (more is slower)")
    go = c1.button("Compute curve", icon=":material/show_chart:", key="btn_adv_curve",
                   help=f"{explain.ATTACKS[p.attack]} with this page's settings, crafted on each model itself "
                        f"(white-box), at eps = {', '.join(map(str, EPS_GRID))} /255")
    key = ("adv_curve", n, p.attack, p.steps, p.step_size, probe.refs_key(refs))
    if go:
        from ..data import fixed_subset
        sub = fixed_subset(data, n, seed=0)
        x, y = probe.as_float(sub.x), sub.y.numpy()
        roles = list(models)
        bar = c2.progress(0.0, text="attacking…")
        t0 = time.perf_counter()

        def progress(done: int, total: int, what: str) -> None:
            # the time per image so far, times the images that would be left if every one still
            # standing were attacked again (an upper bound on the count; it falls as images fall)
            left = (time.perf_counter() - t0) / max(done, 1) * (total - done)
            bar.progress(done / max(total, 1), text=f"{what} done; about {left:.0f} s left, less as images fall")

        rows = probe.eps_curve(tuple(refs[k].key for k in roles), x, y, p.attack, EPS_GRID, p.steps,
                               p.step_size, progress=progress)
        bar.empty()
        acc = {probe.ROLES[k]: row for k, row in zip(roles, rows)}
        st.session_state["adv_curve"] = (key, acc, time.perf_counter() - t0)
    saved = st.session_state.get("adv_curve")
    if saved and saved[0] == key:
        c2.plotly_chart(accuracy_eps_figure([e / 255 for e in EPS_GRID], saved[1],
                                            f"White-box {explain.ATTACKS[p.attack]} on {n} test images"),
                        key="adv_curve_fig")
        c2.caption(f"A sample counts only if it is right clean and under the attack at this eps and every smaller "
                   f"one (a perturbation that fools at a smaller eps lies inside the larger ball too), so eps 0 is "
                   f"clean accuracy and only the samples still standing are attacked at the next eps. "
                   f"Computed in {saved[2]:.1f} s (cached: the same settings again cost nothing).")
    else:
        c2.caption("Press **Compute curve** to attack a batch at several eps, on every model in one pass; a "
                   "bar shows the time left, estimated from the attacks already done.")
