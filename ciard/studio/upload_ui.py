"""Views of the Your-own-image page (``app_pages/upload.py``)."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from .. import explain
from . import probe
from .probe_charts import attribution_grid, topk_figure
from .text import md

TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]


def decode_upload(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """(1 x 3 x 32 x 32 float32 array, None) or (None, one line saying what is wrong)."""
    try:
        x, _ = explain.decode_image(data, (32, 32))
    except explain.ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # anything PIL did not anticipate: still one line, never a traceback
        return None, f"the image cannot be decoded ({type(exc).__name__})"
    return x.numpy().astype(np.float32), None


def render_upload(models: dict, refs: dict, classes: list[str]) -> None:
    """``classes``: the models' class names (:func:`ciard.studio.probe.class_names`)."""
    up = st.file_uploader("Image", type=TYPES, key="up_file",
                          help="any size, colour or grayscale, with or without transparency")
    if up is None:
        st.info("Upload an image to see the models' predictions on it.", icon=":material/upload:")
        return
    x, err = decode_upload(up.getvalue())
    if x is None:
        st.error(f"**{md(up.name)}**: {md(err)}. Try another file.", icon=":material/broken_image:")
        return
    keys = {k: refs[k].key for k in models}
    src = "student" if "student" in models else "robust_teacher" if "robust_teacher" in models else next(iter(models))
    st.session_state.setdefault("up_eps", 8)
    st.session_state.setdefault("up_steps", 10)
    c1, c2 = st.columns(2)
    eps = c1.slider("PGD eps (/255)", 0, 16, key="up_eps")
    steps = c2.slider("PGD steps", 1, 50, key="up_steps")
    p_clean = probe.probs_of(keys[src], x)[0]
    y = np.array([int(p_clean.argmax())])  # attack the model's own answer: does it hold?
    with st.spinner("Attacking…"):
        x_adv = probe.attack_batch(keys[src], x, y, "pgd", eps / 255, int(steps), 2 / 255)
    i1, i2 = st.columns(2)
    i1.image(explain.to_hwc(explain.upscale(torch.from_numpy(x), 6)), caption="as the model sees it (32 x 32)",
             width=240)
    i2.image(explain.to_hwc(explain.upscale(torch.from_numpy(x_adv), 6)),
             caption=f"after PGD-{steps}, eps {eps}/255, crafted on the {probe.ROLES[src]}", width=240)
    holds = {}
    cols = st.columns(len(models))
    for col, (role, k) in zip(cols, keys.items()):
        pc, pa = probe.probs_of(k, x)[0], probe.probs_of(k, x_adv)[0]
        holds[role] = int(pc.argmax()) == int(pa.argmax())
        with col:
            kind = "white-box" if role == src else "transferred"
            st.plotly_chart(topk_figure(pc, pa, classes, None, f"{probe.ROLES[role]} ({kind})"),
                            key=f"up_top_{role}", config={"displayModeBar": False})
            (st.success if holds[role] else st.warning)(
                f"{'holds' if holds[role] else 'flips'}: {classes[int(pc.argmax())]} → {classes[int(pa.argmax())]}")
    st.caption("There is no true label for your image, so the attack tries to change each model's own answer; "
               "'holds' means the prediction survived. These classes are all the models know.")
    with st.expander("Where the student looks (Saliency)", icon=":material/visibility:"):
        k = keys[src]
        t = int(y[0])
        maps = {probe.ROLES[src]: (probe.attribution(k, x, t, "saliency")[0],
                                   probe.attribution(k, x_adv, t, "saliency")[0])}
        st.plotly_chart(attribution_grid(maps), key="up_saliency", theme=None, config={"displayModeBar": False})
        st.caption(f"|gradient| of the {probe.ROLES[src]}'s logit for '{classes[t]}' on the clean and attacked image.")
