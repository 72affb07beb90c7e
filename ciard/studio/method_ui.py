"""Data for the Method page's schedule figure (no Streamlit)."""
from __future__ import annotations

from .. import schedules


def schedule_data(lr: float, itt_lr: float, warmup: float, points: int = 201
                  ) -> tuple[list[float], dict[str, list[float]]]:
    prog = [i / (points - 1) for i in range(points)]
    return prog, {"student lr": [schedules.student_lr(lr, p, "ciard") for p in prog],
                  "ITT lr (robust teacher)": [schedules.itt_lr(itt_lr, p, warmup) for p in prog]}


#: the method as a graph: the two teachers, the student, x and x', the KD terms, the push and ITT
DIAGRAM = r"""
digraph ciard {
  rankdir=LR; bgcolor="transparent"; nodesep=0.35; ranksep=0.6;
  node [fontname="Helvetica", fontsize=12, style="rounded,filled", shape=box, color="#9aa5b1", fillcolor="#f6f8fa"];
  edge [fontname="Helvetica", fontsize=10, color="#555555"];
  x    [label="clean image x", shape=oval, fillcolor="#e8f1fb"];
  xadv [label="adversarial x'\n(PGD on the student)", shape=oval, fillcolor="#fdecea"];
  N    [label="clean teacher N\n(frozen)", fillcolor="#e6f4ea"];
  R    [label="robust teacher R\n(updated by ITT)", fillcolor="#fff4e0"];
  S    [label="student S", fillcolor="#ede7f6", penwidth=2];
  x -> xadv [label="attack S, |δ| ≤ ε", style=dashed];
  x -> N; x -> S;
  xadv -> R; xadv -> S; xadv -> N [style=dotted, label="is N fooled?"];
  N -> S [label="L_nat: KD at τ_nat", color="#2ca02c", fontcolor="#2ca02c", penwidth=1.6];
  R -> S [label="L_adv: KD at τ_adv", color="#ff7f0e", fontcolor="#ff7f0e", penwidth=1.6];
  N -> S [label="−λ·L_push: away from N\nwhere N(x') is wrong", color="#d62728", fontcolor="#d62728",
          style=bold, dir=back, arrowtail=normal];
  S -> R [label="ITT: R takes a CE step\non S's x'", color="#1f77b4", fontcolor="#1f77b4", style=dashed,
          constraint=false];
}
"""

#: one-click demonstrations: label -> (page, session-state presets, URL query)
DEMOS = {
    "White-box PGD-10 on the student": (
        "app_pages/adversarial.py",
        {"adv_attack": "pgd", "adv_eps": 8, "adv_steps": 10, "adv_source": "student", "adv_idx": 3},
        {"img": "3", "attack": "pgd", "eps": "8", "steps": "10", "source": "student"}),
    "FGSM transferred from the clean teacher": (
        "app_pages/adversarial.py",
        {"adv_attack": "fgsm", "adv_eps": 8, "adv_source": "clean_teacher", "adv_idx": 3},
        {"img": "3", "attack": "fgsm", "eps": "8", "steps": "10", "source": "clean_teacher"}),
    "Integrated Gradients for every model": (
        "app_pages/explain.py", {"xp_method": "integrated_gradients", "adv_idx": 3}, {"img": "3"}),
}


def apply_demo(label: str, state) -> tuple[str, dict[str, str]]:
    """Put a demo's presets into ``state`` (session state); returns (page, query) to switch to."""
    page, presets, query = DEMOS[label]
    for k, v in presets.items():
        state[k] = v
    if query:
        state["adv_query_done"] = True   # the presets win over whatever the URL said before
    return page, query
