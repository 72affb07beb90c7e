"""Widgets and views of the Playground page (``app_pages/playground.py``).

The page trains four small MLPs on 2-D points in this Streamlit process (a few seconds, see
``python -m ciard bench --playground``) through :mod:`ciard.playground`, keeps the result in
the session, and draws it: decision regions per snapshot, accuracies, the selected point's
attack, per-step losses and temperatures, and on demand a repeat over 10 seeds. What the
seed sweep of ``tools/playground_sweep.py`` found is read from ``assets/playground-sweep.json``
and shown with its intervals; nothing on the page states an effect those numbers do not show.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from .. import toy2d
from ..playground import (ROLES, STUDENT_METHODS, PlaygroundError, PlaygroundResult, PlaygroundSettings,
                          SeedRepeat, check_settings, repeat_seeds, run_playground)
from .charts import loss_figure, temperature_figure
from .playground_charts import regions_figure

SWEEP_FILE = Path(__file__).resolve().parents[2] / "assets" / "playground-sweep.json"
SEEDS = 10
#: the widgets' keys -> PlaygroundSettings fields
KEYS = {"pg_dataset": "dataset", "pg_classes": "classes", "pg_noise": "noise", "pg_eps": "eps",
        "pg_method": "method", "pg_push": "push_weight", "pg_tpush": "push_temp", "pg_itt": "itt",
        "pg_adaptive": "adaptive_temp", "pg_steps": "steps", "pg_seed": "seed", "pg_student": "student",
        "pg_teacher": "teacher", "pg_robust_strength": "robust_strength"}


def _defaults(ss, s: PlaygroundSettings) -> None:
    for key, name in KEYS.items():
        ss.setdefault(key, getattr(s, name))


def load_sweep() -> dict | None:
    """The stored seed sweep (``tools/playground_sweep.py --json``), or None if absent/unreadable."""
    try:
        return json.loads(SWEEP_FILE.read_text())
    except (OSError, ValueError):
        return None


def measurable(sweep: dict | None) -> list[tuple[str, str, dict]]:
    """(setting, metric, difference) for every difference whose 95 % interval excludes 0."""
    out = []
    for name, entry in (sweep or {}).items():
        for metric, d in entry.get("difference", {}).items():
            if d["low"] > 0 or d["high"] < 0:
                out.append((name, metric, d))
    return out


def controls() -> PlaygroundSettings | None:
    """The settings form; returns the settings when Run was pressed (and they are valid)."""
    ss = st.session_state
    _defaults(ss, PlaygroundSettings())
    with st.form("pg_form", border=True):
        c = st.columns(6)
        c[0].selectbox("Dataset", toy2d.DATASETS, key="pg_dataset")
        c[1].slider("Classes", toy2d.MIN_CLASSES, toy2d.MAX_CLASSES, key="pg_classes")
        c[2].slider("Noise", 0.0, 0.6, step=0.05, key="pg_noise",
                    help="Standard deviation of the noise added to every point (scaled per dataset).")
        c[3].slider("eps (L∞)", 0.05, 0.5, step=0.05, key="pg_eps",
                    help="Radius of the attack's box around each point; the data spans about −1.5 to 1.5.")
        c[4].selectbox("Method (student)", STUDENT_METHODS, key="pg_method",
                       help="The student's training method: the same class as for CIFAR (ciard.methods). "
                            "Its twin is the push-off CIARD student for 'ciard', else a CIARD student.")
        c[5].number_input("Seed", 0, 2 ** 31 - 1, step=1, key="pg_seed")
        c = st.columns(6)
        c[0].number_input("Push weight λ", 0.0, 100.0, step=0.5, key="pg_push")
        c[1].number_input("T_push", 0.1, 50.0, step=0.5, key="pg_tpush")
        c[2].toggle("ITT", key="pg_itt", help="Iterative teacher training: the robust teacher keeps learning "
                                                "on the student's adversarial points.")
        c[3].toggle("Adaptive temperatures", key="pg_adaptive")
        c[4].slider("Steps per model", 20, 600, step=10, key="pg_steps")
        with c[5].popover("Capacity, teacher", icon=":material/tune:"):
            st.text_input("Student", key="pg_student", help="mlp-WxD: D hidden layers of W units.")
            st.text_input("Teachers", key="pg_teacher")
            st.slider("Robust teacher's eps (fraction of eps)", 0.1, 1.0, step=0.1, key="pg_robust_strength",
                      help="Below 1: a weaker robust teacher, adversarially trained at a smaller eps.")
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
    if not run:
        return None
    try:
        s = PlaygroundSettings(**{name: ss[key] for key, name in KEYS.items()})
        s = replace(s, classes=int(s.classes), steps=int(s.steps), seed=int(s.seed),
                    noise=float(s.noise), eps=float(s.eps))
        return check_settings(s)
    except PlaygroundError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def run(s: PlaygroundSettings) -> None:
    with st.spinner("Training the clean teacher, the robust teacher and two students…"):
        st.session_state["pg_result"] = run_playground(s)
    st.session_state.pop("pg_repeat", None)
    st.session_state.pop("pg_selected", None)
    st.session_state["pg_frame"] = st.session_state["pg_result"].frames[-1]


def _accuracy_table(result: PlaygroundResult) -> pd.DataFrame:
    labels = result.settings.role_labels()
    rows = [{"model": labels[r], "clean %": 100 * result.accuracy[r]["clean"],
             "PGD-20 %": 100 * result.accuracy[r]["pgd"]} for r in ROLES]
    if "robust_itt" in result.accuracy:
        a = result.accuracy["robust_itt"]
        rows.insert(2, {"model": "robust teacher after ITT (chosen student's run)",
                        "clean %": 100 * a["clean"], "PGD-20 %": 100 * a["pgd"]})
    return pd.DataFrame(rows)


def _selection(event) -> int | None:
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for p in points or []:
        cd = p.get("customdata")
        if cd is not None:
            return int(cd[0] if isinstance(cd, (list, tuple)) else cd)
    return None


def render_result(result: PlaygroundResult) -> None:
    s = result.settings
    ss = st.session_state
    st.caption(f"{s.dataset}, {s.classes} classes, noise {s.noise:g}, eps {s.eps:g}, {s.steps} steps per model, "
               f"seed {s.seed}; trained in {result.seconds['train']:.1f} s, tested in {result.seconds['eval']:.1f} s "
               f"(clean and PGD-20 on {len(result.data.y_test)} test points).")
    if ss.get("pg_frame") not in result.frames:
        ss["pg_frame"] = result.frames[-1]
    frame_label = st.select_slider("Training snapshot", options=result.frames, key="pg_frame",
                                   help="Teachers first (the students wait at their shared initial weights), "
                                        "then the two students (the robust teacher as ITT moves it).")
    frame = result.frames.index(frame_label)
    n = len(result.data.y_train)
    selected = ss.get("pg_selected")
    fig = regions_figure(result, frame, selected if isinstance(selected, int) and 0 <= selected < n else None)
    event = st.plotly_chart(fig, key="pg_regions", on_select="rerun", selection_mode="points",
                            config={"displayModeBar": False})
    picked = _selection(event)
    if picked is not None and picked != selected:
        ss["pg_selected"] = picked
        st.rerun()
    c1, c2 = st.columns([1, 3])
    with c1:
        st.number_input("Point to attack (or click one)", 0, n - 1, step=1,
                        value=selected if isinstance(selected, int) and 0 <= selected < n else 0,
                        key="pg_point_input", on_change=lambda: ss.update(pg_selected=int(ss["pg_point_input"])))
    with c2:
        if isinstance(selected, int) and 0 <= selected < n:
            labels = s.role_labels()
            fooled = result.fooled_by(frame, selected)
            st.markdown(f"Point {selected} (class {int(result.data.y_train[selected])}): its PGD point against each "
                        f"model (white-box, inside the dotted eps-box) fools "
                        f"**{', '.join(labels[r] for r in fooled) if fooled else 'none of the four'}**.")
        st.caption("Black rings on the student panels: the push loss's mask, the training points where the "
                   "student's own training attack fools the clean teacher; the push loss acts on exactly these.")
    st.table(_accuracy_table(result).set_index("model").map(lambda v: f"{v:.1f}"))
    labels = s.role_labels()
    cols = st.columns(2)
    for col, role in zip(cols, ("student", "twin")):
        steps = pd.DataFrame(result.history[role])
        with col:
            st.markdown(f"**{labels[role]}**")
            for maker, name in ((loss_figure, "loss"), (temperature_figure, "temp")):
                f = maker(steps, revision=f"pg_{role}_{name}")
                if f is not None:
                    st.plotly_chart(f, key=f"pg_{role}_{name}")


def render_repeat(s: PlaygroundSettings) -> None:
    ss = st.session_state
    labels = s.role_labels()
    if st.button(f"Repeat over {SEEDS} seeds", key="pg_repeat_btn", icon=":material/repeat:",
                 help=f"The same settings with seeds {s.seed} to {s.seed + SEEDS - 1}: new points, "
                      "initial weights, batches and attack noise per seed; the two students share them."):
        bar = st.progress(0.0, text="seed 0 of 10")
        ss["pg_repeat"] = repeat_seeds(s, SEEDS, progress=lambda i, n: bar.progress(i / n, text=f"seed {i} of {n}"))
        bar.empty()
    rep: SeedRepeat | None = ss.get("pg_repeat")
    if rep is None or rep.settings != s:
        return
    summ = rep.summary()
    rows = []
    for role in ROLES:
        row = {"model": labels[role]}
        for m, name in (("clean", "clean"), ("pgd", "PGD-20")):
            iv = summ["roles"][role][m]
            row[f"{name} % (mean [95 % CI])"] = f"{100 * iv.mean:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"
        rows.append(row)
    st.table(pd.DataFrame(rows).set_index("model"))
    verdicts = []
    for m, name in (("clean", "clean"), ("pgd", "PGD-20")):
        d = summ["difference"][m]
        pts = f"{100 * d.mean:+.1f} points (95 % CI {100 * d.low:+.1f} to {100 * d.high:+.1f}, paired by seed)"
        if d.excludes_zero:
            verdicts.append(f"{name}: {labels['student']} minus {labels['twin']}: {pts}: "
                            f"{'higher' if d.mean > 0 else 'lower'} with the first.")
        else:
            verdicts.append(f"{name}: {labels['student']} minus {labels['twin']}: {pts}: "
                            "no measurable difference over these seeds.")
    st.markdown("\n".join(f"- {v}" for v in verdicts))
    st.caption(f"{len(rep.seeds)} seeds (each run: four models, clean and PGD-20 on the test points) "
               f"in {rep.seconds:.0f} s.")


def render_findings() -> None:
    """What the stored seed sweep found, as numbers, and the example button if push mattered."""
    sweep = load_sweep()
    with st.expander("Where does the push loss make a measurable difference in 2-D?", icon=":material/science:"):
        if not sweep:
            st.info("No stored sweep (assets/playground-sweep.json); run tools/playground_sweep.py.")
            return
        rows = []
        for name, e in sweep.items():
            d = e["difference"]
            rows.append({"setting": name, "seeds": len(e["seeds"]),
                         **{f"on − off, {lab} (points, 95 % CI)":
                            f"{100 * d[m]['mean']:+.1f} [{100 * d[m]['low']:+.1f}, {100 * d[m]['high']:+.1f}]"
                            for m, lab in (("clean", "clean"), ("pgd", "PGD-20"))}})
        st.table(pd.DataFrame(rows).set_index("setting"))
        found = measurable(sweep)
        if not found:
            st.markdown("In none of these settings does push on vs off differ measurably: every interval "
                        "includes 0.")
            return
        st.markdown("Intervals that exclude 0: " + "; ".join(
            f"**{name}**, {'PGD-20' if m == 'pgd' else 'clean'}: {100 * d['mean']:+.1f} points "
            f"({'push on higher' if d['mean'] > 0 else 'push on lower'})" for name, m, d in found)
            + ". Every other interval includes 0.")
        name = found[0][0]
        if st.button(f"Load this example: {name}", key="pg_example", icon=":material/science:"):
            settings = sweep[name]["settings"]
            for key, field_name in KEYS.items():
                st.session_state[key] = settings[field_name]
            st.session_state["pg_seed"] = int(sweep[name]["seeds"][0])
            st.rerun()
