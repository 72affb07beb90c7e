"""Views of the Saliency-and-push-loss page (``app_pages/explain.py``)."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

from .. import explain
from ..data import ImageData, fixed_subset
from ..stats import accuracy_interval, paired_difference
from . import probe
from .adversarial_ui import attack_controls, attack_or_message, init_from_query, sync_query
from ..checkpoints import push_weight
from .metrics import is_push_ablation, training_differences
from .probe_charts import attribution_grid, kl_histogram, pca_figure
from .text import md

EPS = 8 / 255


def _no_push_student(active_student: str | None, dataset: str):
    """The student trained without the push loss, if the store or zoo has one: (label, model ref)."""
    cands = probe.student_candidates(active_student)
    for label, cand in cands.items():
        if cand.without_push:
            ref = probe.model_ref("student", cand.spec, dataset, label=label)
            model, ref = probe.get_model(ref)
            if model is not None:
                return label, ref
    return None


def render_saliency(data: ImageData, models: dict, refs: dict, active_student: str | None = None,
                    dataset: str = "default") -> None:
    # one selection with the Clean-vs-adversarial page: image, attack, eps, steps and source share
    # its session keys and its URL parameters, so either page opens on what the other showed
    init_from_query(len(data))
    ss = st.session_state
    if not isinstance(ss.get("adv_idx"), int) or not 0 <= ss["adv_idx"] < len(data):
        ss["adv_idx"] = 0
    for k, v in (("xp_method", "saliency"), ("xp_target", "true class")):
        ss.setdefault(k, v)
    c1, c2, c3 = st.columns([2, 3, 2])
    idx = c1.number_input("Test image", 0, len(data) - 1, key="adv_idx", help="index into the test split "
                          "(the same image as on the Clean vs adversarial page)")
    method = c2.selectbox("Method", list(explain.METHODS), key="xp_method", format_func=explain.METHODS.get,
                          help="Saliency: |∂logit/∂pixel|; Integrated Gradients: gradients integrated from a black "
                               "image; SmoothGrad: saliency averaged over noisy copies; Grad-CAM: where the last "
                               "convolution's class evidence sits")
    target_mode = c3.radio("Explain", ["true class", "predicted class"], key="xp_target", horizontal=True)
    p = attack_controls(refs, models)
    i = int(idx)
    sync_query(i, p)
    x = probe.as_float(data.x[i:i + 1])
    y = data.y[i:i + 1].numpy()
    label = int(y[0])
    src = p.source
    t0 = time.perf_counter()
    x_adv = attack_or_message(refs[src].key, x, y, p)
    if x_adv is None:
        return
    maps, lines = {}, []
    rows = [(probe.ROLES[role], refs[role].key) for role in models]
    no_push = _no_push_student(active_student, dataset)
    if no_push is not None and "student" in models:   # the ablation beside the CIARD student
        rows.append(("student without push", no_push[1].key))
    for name, k in rows:
        pc, pa = probe.probs_of(k, x)[0], probe.probs_of(k, x_adv)[0]
        tc = label if target_mode == "true class" else int(pc.argmax())
        ta = label if target_mode == "true class" else int(pa.argmax())
        maps[name] = (probe.attribution(k, x, tc, method)[0], probe.attribution(k, x_adv, ta, method)[0])
        lines.append(f"**{md(name)}**: clean → {md(data.classes[int(pc.argmax())])} "
                     f"({100 * pc.max():.0f}%), adversarial → {md(data.classes[int(pa.argmax())])} "
                     f"({100 * pa.max():.0f}%)")
    o1, o2, o3 = st.columns([2, 2, 3])
    ss = st.session_state
    ss.setdefault("xp_scale", "per model")
    ss.setdefault("xp_overlay", True)
    ss.setdefault("xp_opacity", 0.6)
    scale = o1.radio("Colour scale", ["per model", "shared"], key="xp_scale", horizontal=True,
                     help="per model: each model's maps on its own scale, so every pattern shows; shared: one "
                          "scale for all, so a strongly attributing model looks brighter")
    overlay = o2.toggle("Overlay on the image", key="xp_overlay")
    opacity = o3.slider("Map opacity", 0.1, 1.0, step=0.1, key="xp_opacity", disabled=not overlay)
    left, right = st.container(key="xp_maps").columns([1, 3])
    with left:
        st.image(explain.to_hwc(explain.upscale(torch.from_numpy(x), 5)), caption=f"clean #{i}: {data.classes[label]}", width=160)
        st.image(explain.to_hwc(explain.upscale(torch.from_numpy(x_adv), 5)),
                 caption=f"{explain.ATTACKS[p.attack]}, eps {round(p.eps * 255)}/255, crafted on the "
                         f"{probe.ROLES[src]}", width=160)
        st.markdown("  \n".join(lines))
    with right:
        images = (explain.to_hwc(torch.from_numpy(x)), explain.to_hwc(torch.from_numpy(x_adv))) if overlay else None
        st.plotly_chart(attribution_grid(maps, shared=scale == "shared", images=images, opacity=opacity),
                        key="chart_xp_grid", theme=None, config={"displayModeBar": False})
    how = ("One colour scale for the whole grid, so models and clean/adversarial inputs compare directly in "
           "strength." if scale == "shared" else
           "Each model on its own scale (its 99th percentile is the top), so every model's pattern shows; clean "
           "and adversarial of one model share it. Switch to a shared scale to compare strength.")
    st.caption(f"Where each model looks: brighter pixels move the explained logit more. {how} "
               f"({time.perf_counter() - t0:.2f} s; cached on repeat)")


def _default_pair(cands: dict[str, probe.Candidate]) -> tuple[int, int]:
    """Indices of the default students A and B: one with the push loss, one without."""
    labels = list(cands)
    no_push = [j for j, label in enumerate(labels) if cands[label].without_push]
    with_push = [j for j, l in enumerate(labels) if j not in no_push]
    a = with_push[0] if with_push else 0
    b = no_push[0] if no_push else (1 if len(labels) > 1 and a == 0 else 0)
    return a, b


#: differences shown by name in the like-for-like check (the rest are counted)
SHOWN_DIFFERENCES = 6


def _likeness(a: probe.Candidate, b: probe.Candidate, dataset: str) -> tuple[str, dict[str, float | None]]:
    """Say whether students A and B were trained alike but for the push weight, from their
    checkpoints' configs: ("alike" | "mixed" | "unknown", each one's push weight: None where it
    is not a CIARD student or its config does not say)."""
    configs = {n: probe.training_config(probe.model_ref("student", c.spec, dataset, label=c.label))
               for n, c in (("A", a), ("B", b))}
    push = {n: push_weight(c) for n, c in configs.items()}
    missing = [n for n, c in configs.items() if not c]
    if missing:
        st.caption(f"Student {' and '.join(missing)}'s checkpoint does not record how it was trained, so whether "
                   f"A and B differ only in the push loss cannot be checked, and no difference below is "
                   f"credited to it.")
        return "unknown", push
    diffs = training_differences(configs["A"], configs["B"], also_ignored=("method.push_weight",))
    if diffs:
        named = [f"{md(k)} {md(va)} vs {md(vb)}" for k, (va, vb) in list(diffs.items())[:SHOWN_DIFFERENCES]]
        more = len(diffs) - len(named)
        st.warning("A and B differ in more than the push loss: " + "; ".join(named)
                   + (f"; and {more} more" if more > 0 else "") + ". A difference between them below mixes "
                   "the push loss with these, so it is not the push loss's effect alone.", icon=":material/warning:")
        return "mixed", push
    if None not in push.values() and push["A"] != push["B"]:
        st.caption(f"A and B were trained alike except for the push weight (λ {push['A']:g} vs {push['B']:g}): "
                   f"a like-for-like ablation, so a difference below is the push loss's (up to training noise, "
                   f"which a paired interval on one pair of runs does not cover).")
    return "alike", push


def push_credit(lower: str, likeness: str, push: dict[str, float | None]) -> str:
    """What the paired verdict may say about the push loss, once student ``lower`` ("A" or "B")
    follows the fooled clean teacher on significantly fewer images: credit the push loss only for
    a like-for-like pair of CIARD students, one trained with it and one without."""
    if likeness == "mixed":
        return "; A and B also differ in other settings (above), so this is not the push loss's effect alone"
    if likeness != "alike":
        return "; whether A and B differ only in the push loss is not known (above), so this is not credited to it"
    mine, other = push[lower], push["B" if lower == "A" else "A"]
    if not is_push_ablation((mine, other)):
        return ""
    return (", as the push loss intends for the student trained with it" if mine > 0 else
            ", the opposite of what the push loss intends (this is the student trained without it)")


def where_from(fooled_a: int, fooled_b: int, follows_a: int, follows_b: int) -> str:
    """The two factors of "follows the fooled clean teacher", in one sentence: how often each
    student's adversarial examples fool the clean teacher, and how often it then follows."""
    def given(k: int, m: int) -> str:
        return f"{100 * k / m:.1f} %" if m else "–"
    return (f"Two things make up each rate: the clean teacher is fooled by A's adversarial examples on "
            f"{fooled_a} images and by B's on {fooled_b}; where it is fooled, A follows it on "
            f"{given(follows_a, fooled_a)} of them and B on {given(follows_b, fooled_b)} (these two shares "
            f"are of different images, so they carry no paired interval).")


def render_push(data: ImageData, models: dict, refs: dict, active_student: str | None, dataset: str) -> None:
    cands = probe.student_candidates(active_student)
    if "clean_teacher" not in models:
        st.info("The push-loss view needs the clean teacher; choose one in the sidebar.")
        return
    if not cands:
        st.info("No students yet. Train a CIARD student and one with `--push-weight 0` (Train page, or "
                "`python -m ciard train --preset demo --push-weight 0`) to compare them here.",
                icon=":material/school:")
        return
    labels = list(cands)
    a, b = _default_pair(cands)
    ss = st.session_state
    if ss.get("xp_student_a") not in labels:
        ss["xp_student_a"] = labels[a]
    if ss.get("xp_student_b") not in labels:
        ss["xp_student_b"] = labels[b]
    ss.setdefault("xp_pca_n", 128)
    c1, c2, c3 = st.columns([3, 3, 2])
    la = c1.selectbox("Student A (e.g. CIARD)", labels, key="xp_student_a")
    lb = c2.selectbox("Student B (e.g. --push-weight 0)", labels, key="xp_student_b")
    n = c3.select_slider("Test images", [64, 128, 256, 512, 1000], key="xp_pca_n",
                         help="more images narrow the confidence intervals (and take longer to attack)")
    if len(labels) == 1:
        st.caption("Only one student is available: train one with `--push-weight 0` to compare.")
    chosen = {la: cands[la].spec} if la == lb else {la: cands[la].spec, lb: cands[lb].spec}
    likeness, push = _likeness(cands[la], cands[lb], dataset) if la != lb else ("same", {})
    # on demand: attacking hundreds of images per student is most of a cold visit's time, so it
    # runs when asked (and again without asking for settings already computed in this session)
    wanted = (la, lb, int(n))
    done = ss.setdefault("xp_push_done", [])
    if st.button("Compare the students", key="btn_xp_push", icon=":material/compare_arrows:",
                 help=f"PGD-10 on {n} test images per student, then PCA and the paired comparison"):
        done.append(wanted)
    if wanted not in done:
        st.caption(f"Press **Compare the students** to attack {n} test images per student (PGD-10, 8/255) and "
                   f"compare how often each follows the fooled clean teacher; it takes a while on a CPU, and "
                   f"is then cached.")
        return
    sub = fixed_subset(data, int(n), seed=1)
    x, y = probe.as_float(sub.x), sub.y.numpy()
    kt = refs["clean_teacher"].key
    cols = st.columns(len(chosen))
    kls, follows, fooled_by = {}, {}, {}
    for col, (label, spec) in zip(cols, chosen.items()):
        ref = probe.model_ref("student", spec, dataset, label=label)
        m, ref = probe.get_model(ref)
        with col:
            if m is None:
                st.error(f"{md(label)}: {md(ref.error)}", icon=":material/error:")
                continue
            k = ref.key
            with st.spinner(f"Attacking {label}…"):
                xa = probe.attack_batch(k, x, y, "pgd", EPS, 10, 2 / 255)
            t_adv = probe.probs_of(kt, xa)
            s_adv = probe.probs_of(k, xa)
            agree, fooled = explain.follows_fooled_teacher(s_adv, t_adv, y)
            fc, fa = probe.features_of(k, x), probe.features_of(k, xa)
            mean, comps = explain.pca_fit(torch.from_numpy(np.concatenate([fc, fa])))
            pc = explain.pca_project(torch.from_numpy(fc), mean, comps).numpy()
            pa = explain.pca_project(torch.from_numpy(fa), mean, comps).numpy()
            hover = [f"#{j} {data.classes[int(y[j])]}; student on x': {data.classes[int(s_adv[j].argmax())]}; "
                     f"clean teacher on x': {data.classes[int(t_adv[j].argmax())]}" for j in range(len(y))]
            st.plotly_chart(pca_figure(pc, pa, y, data.classes, fooled, hover, label), key=f"chart_xp_pca_{label}")
            kl = explain.kl_per_sample(torch.from_numpy(t_adv[fooled]), torch.from_numpy(s_adv[fooled])).numpy()
            kls[label] = kl
            follows[label] = agree
            fooled_by[label] = fooled
            k, m = int(agree.sum()), int(fooled.sum())
            low, high = accuracy_interval(k, len(y))
            st.metric("follows the fooled clean teacher", f"{100 * k / len(y):.1f}% of images",
                      help="images on which the clean teacher is fooled by this student's adversarial example "
                           "and the student predicts the same wrong class, as a share of all images shown "
                           "(95 % Wilson interval below)")
            st.caption(f"{k} of {len(y)} images (95 % CI {100 * low:.1f}–{100 * high:.1f} %); "
                       f"{k} of the {m} where the clean teacher is fooled.")
            st.caption(f"Circles: clean images, crosses: PGD-10 (8/255) examples crafted on this student, outlined "
                       f"where the clean teacher is fooled ({int(fooled.sum())} of {len(y)}). PCA of this student's "
                       f"penultimate features; hover for the predictions.")
    if len(follows) == 2:
        (na, fa_), (nb, fb_) = follows.items()
        d = paired_difference(fa_, fb_)
        st.markdown("**Paired comparison on the same images** (paired score interval, McNemar): "
                    + d.verdict("A", "B").replace(": ", " — ", 1))
        if d.significant:
            lower = "A" if d.diff < 0 else "B"
            why = push_credit(lower, likeness, push)
            st.caption(f"Student {lower} follows the fooled clean teacher on fewer images{why}. Images where "
                       f"only A follows: {d.only_a}; only B: {d.only_b}.")
        else:
            st.caption(f"The difference is not significant at this number of images (only A follows on "
                       f"{d.only_a}, only B on {d.only_b}): these images do not show that either student "
                       f"follows the fooled clean teacher less. More test images narrow the interval.")
    if len(follows) == 2:
        st.caption(where_from(*(int(m.sum()) for m in fooled_by.values()), *(int(f.sum()) for f in follows.values())))
    if kls:
        st.plotly_chart(kl_histogram(kls, "Distance from the fooled clean teacher"), key="chart_xp_kl")
        st.caption("On the adversarial examples the clean teacher gets wrong: KL between its prediction and each "
                   "student's. The push loss is built to raise this divergence for the student trained with it; "
                   "the histograms show whether it did for these two students, the paired comparison above "
                   "whether the difference is larger than chance.")
