"""Views of the Your-own-image page (``app_pages/upload.py``)."""
from __future__ import annotations

import io

import numpy as np
import streamlit as st
import torch

from .. import explain
from . import probe
from .adversarial_ui import attack_controls, attack_or_message
from .probe_charts import attribution_grid, topk_figure
from .text import md

TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]
NO_LABEL = -1
#: below this share of the longer side kept, the centre crop drops much of the picture
HEAVY_CROP = 0.6


def decode_upload(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """(1 x 3 x 32 x 32 float32 array, None) or (None, one line saying what is wrong)."""
    try:
        x, _ = explain.decode_image(data, (32, 32))
    except explain.ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # anything PIL did not anticipate: still one line, never a traceback
        return None, f"the image cannot be decoded ({type(exc).__name__})"
    return x.numpy().astype(np.float32), None


def crop_notes(width: int, height: int, side: int = 32) -> list[str]:
    """What happens to a ``width`` x ``height`` picture on its way to the model, when it matters."""
    notes = []
    s = min(width, height)
    kept = s / max(width, height)
    if kept < HEAVY_CROP:
        notes.append(f"Heavily cropped: the model sees only the centre {s} x {s} square of your {width} x {height} "
                     f"picture ({100 * kept:.0f}% of its {'width' if width > height else 'height'}); "
                     f"what lies outside the box is ignored.")
    if s < side:
        notes.append(f"Upscaled: the {s} x {s} square is enlarged to {side} x {side}, so the model sees blurred, "
                     f"interpolated pixels, not detail.")
    return notes


def _original_with_box(data: bytes, max_side: int = 360) -> tuple[np.ndarray, int, int]:
    """The uploaded picture (EXIF-rotated, shrunk for display) with the centre crop outlined."""
    from PIL import Image, ImageDraw, ImageOps
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w, h = img.size
    scale = min(1.0, max_side / max(w, h))
    shown = img.resize((max(1, round(w * scale)), max(1, round(h * scale))))
    s = min(w, h) * scale
    left, top = (shown.width - s) / 2, (shown.height - s) / 2
    ImageDraw.Draw(shown).rectangle([left, top, left + s - 1, top + s - 1], outline=(255, 200, 0),
                                    width=max(2, round(max(shown.size) / 120)))
    return np.asarray(shown), w, h


def render_classes(classes: list[str]) -> None:
    """The classes the models know, said before anything is uploaded."""
    st.markdown(f"**The models know {len(classes)} classes:** " + ", ".join(md(c) for c in classes) + ".")
    st.caption("Every image gets one of these, even a photo of something else (a person, a chart): an "
               "out-of-distribution picture is still put in one of the known classes, often with high confidence.")


def render_upload(models: dict, refs: dict, classes: list[str]) -> None:
    """``classes``: the models' class names (:func:`ciard.studio.probe.class_names`)."""
    render_classes(classes)
    up = st.file_uploader("Image", type=TYPES, key="up_file",
                          help="any size, colour or grayscale, with or without transparency")
    if up is None:
        st.info("Upload an image to see the models' predictions on it.", icon=":material/upload:")
        return
    raw = up.getvalue()
    x, err = decode_upload(raw)
    if x is None:
        st.error(f"**{md(up.name)}**: {md(err)}. Try another file.", icon=":material/broken_image:")
        return
    ss = st.session_state
    if ss.get("up_label") not in range(NO_LABEL, len(classes)):
        ss["up_label"] = NO_LABEL
    label = st.selectbox("True label (optional)", [NO_LABEL, *range(len(classes))], key="up_label",
                         format_func=lambda i: "not given" if i == NO_LABEL else classes[i],
                         help="with a true label, 'holds' and 'flips' mean right and wrong; without one, "
                              "the attack tries to change each model's own answer")
    label = None if label == NO_LABEL else int(label)
    p = attack_controls(refs, models)
    keys = {k: refs[k].key for k in models}
    p_clean = probe.probs_of(keys[p.source], x)[0]
    y = np.array([label if label is not None else int(p_clean.argmax())])
    x_adv = attack_or_message(keys[p.source], x, y, p)
    if x_adv is None:
        return
    shown, w, h = _original_with_box(raw)
    i0, i1, i2 = st.columns(3)
    i0.image(shown, caption=f"your picture ({w} x {h}); the box is the centre crop the model gets", width="stretch")
    i1.image(explain.to_hwc(explain.upscale(torch.from_numpy(x), 6)), caption="as the model sees it (32 x 32)",
             width="stretch")
    i2.image(explain.to_hwc(explain.upscale(torch.from_numpy(x_adv), 6)), width="stretch",
             caption=f"after {explain.ATTACKS[p.attack]}, eps {round(p.eps * 255)}/255, crafted on the "
                     f"{probe.ROLES[p.source]}")
    for note in crop_notes(w, h):
        st.warning(md(note), icon=":material/crop:")
    cols = st.columns(len(models))
    for col, (role, k) in zip(cols, keys.items()):
        pc, pa = probe.probs_of(k, x)[0], probe.probs_of(k, x_adv)[0]
        before, after = int(pc.argmax()), int(pa.argmax())
        with col:
            kind = "white-box" if role == p.source else "transferred"
            st.plotly_chart(topk_figure(pc, pa, classes, label, f"{probe.ROLES[role]} ({kind})"),
                            key=f"up_top_{role}", config={"displayModeBar": False})
            change = f"{classes[before]} → {classes[after]}"
            if label is None:
                holds = before == after
                (st.success if holds else st.warning)(f"{'holds' if holds else 'flips'}: {md(change)}")
            elif after == label:
                st.success(f"right{' and holds' if before == label else ' after the attack'}: {md(change)}")
            else:
                st.error(f"{'flips to wrong' if before == label else 'wrong'}: {md(change)}")
    st.caption("Without a true label the attack tries to change each model's own answer, and 'holds' means the "
               "prediction survived; with one, the attack pushes away from the true class, and right/wrong is "
               "judged against it.")
    with st.expander(f"Where the {probe.ROLES[p.source]} looks (Saliency)", icon=":material/visibility:"):
        k = keys[p.source]
        t = int(y[0])
        maps = {probe.ROLES[p.source]: (probe.attribution(k, x, t, "saliency")[0],
                                        probe.attribution(k, x_adv, t, "saliency")[0])}
        images = (explain.to_hwc(torch.from_numpy(x)), explain.to_hwc(torch.from_numpy(x_adv)))
        st.plotly_chart(attribution_grid(maps, images=images, opacity=0.6), key="up_saliency", theme=None,
                        config={"displayModeBar": False})
        st.caption(f"|gradient| of the {probe.ROLES[p.source]}'s logit for '{md(classes[t])}' on the clean and "
                   f"attacked image.")
