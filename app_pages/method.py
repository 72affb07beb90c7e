"""The CIARD method explained: two teachers, the push loss, ITT, temperatures, schedules."""
import streamlit as st

from ciard.studio.method_ui import DEMOS, DIAGRAM, apply_demo, schedule_data
from ciard.studio.probe_charts import schedule_figure

st.title("The method, explained")
st.graphviz_chart(DIAGRAM, width="stretch")
st.caption("CIARD in one picture: the student S distils from a clean teacher N on clean images x and from a "
           "robust teacher R on adversarial images x'; where N is fooled by x', the push loss drives S away "
           "from N; and R keeps learning on S's adversarial images (iterative teacher training, ITT).")
with st.container(border=True):
    st.markdown("**Try it live:** each button opens another page with the settings preset.")
    cols = st.columns(len(DEMOS))
    for i, (col, label) in enumerate(zip(cols, DEMOS)):
        if col.button(label, key=f"method_demo_{i}", icon=":material/play_arrow:", width="stretch"):
            target, query = apply_demo(label, st.session_state)
            st.switch_page(target, query_params=query or None)
st.markdown(r"""
**Adversarial examples.** A tiny, carefully chosen change $\delta$ with $\|\delta\|_\infty \le \epsilon$
(8/255 here: invisible) can flip a network's answer. PGD finds one by climbing the loss:
""")
st.latex(r"x'_{k+1} = \Pi_{\|x'-x\|_\infty \le \epsilon}\big(x'_k + \alpha\,\mathrm{sign}\,\nabla_{x'} \mathcal{L}_{CE}(S(x'_k), y)\big)")
st.page_link("app_pages/adversarial.py", label="See it on the Clean vs adversarial page", icon=":material/compare:")
st.markdown(r"""
**Distillation with two teachers.** The student $S$ learns from a **clean teacher** $N$ (accurate on
clean images, fooled by attacks) and a **robust teacher** $R$ (adversarially trained). With
temperatures $\tau$ softening each teacher's output:
""")
st.latex(r"\mathcal{L}_{adv} = \mathrm{KL}\big(\sigma(R(x')/\tau_{adv}) \,\|\, \sigma(S(x'))\big), \qquad "
         r"\mathcal{L}_{nat} = \mathrm{KL}\big(\sigma(N(x)/\tau_{nat}) \,\|\, \sigma(S(x))\big)")
st.markdown(r"""
**The conflict.** On an adversarial $x'$ the clean teacher is often *wrong*; distilling from it there
would teach the student the attacker's answer. CIARD does the opposite on exactly those samples.

**The push loss.** On the mask $M = \{i : \arg\max N(x'_i) \ne y_i\}$ (where the clean teacher is fooled),
the student's adversarial prediction is pushed **away** from the clean teacher's, hence the minus sign:
""")
st.latex(r"\mathcal{L}_{push} = \frac{1}{|M|}\sum_{i \in M} \mathrm{KL}\big(\sigma(N(x'_i)) \,\|\, \sigma(S(x'_i)/T_{push})\big), \quad T_{push}=5")
st.latex(r"\mathcal{L} = w_{adv}\,\mathcal{L}_{adv} + w_{nat}\,\mathcal{L}_{nat} - \lambda\, s\, \mathcal{L}_{push}")
st.markdown(r"""
$\lambda = 1$ (`--push-weight`; 0 turns it off), and $s$ is a power of ten that brings $\mathcal{L}_{push}$ to
the scale of the KD terms. $\mathcal{L}_{push} = 0$ when $M$ is empty.
""")
st.page_link("app_pages/explain.py", label="Measure the push loss's effect on the Saliency page", icon=":material/visibility:")
st.page_link("app_pages/playground.py", label="See it in 2-D: the push loss's mask and every decision boundary in the Playground",
             icon=":material/scatter_plot:")
st.markdown(r"""
**Iterative teacher training (ITT).** After each student step, the robust teacher takes one SGD step on
the *student's* adversarial examples, $\mathcal{L}_{CE}(R(x'), y)$, so it keeps teaching what the student
currently gets wrong. Its learning rate is 0 during a warm-up (the first sixth of training), then decays.

**Temperatures.** $\tau_{adv}$ and $\tau_{nat}$ start at 1, stay in $[1, 10]$, and move by $\eta_\tau = 0.001$
after every batch to balance the two teachers' entropies $H$:
""")
st.latex(r"\tau_{adv} \mathrel{-}= \eta_\tau\,\mathrm{sign}\big(H_{adv}/H_{nat} - 1\big), \qquad "
         r"\tau_{nat} \mathrel{-}= \eta_\tau\,\mathrm{sign}\big(H_{nat}/H_{adv} - 1\big)")

st.subheader("Schedules over training")
c1, c2, c3 = st.columns(3)
lr = c1.number_input("Student lr", 0.001, 1.0, 0.1, format="%.3f", key="method_lr")
itt_lr = c2.number_input("ITT lr", 0.0, 0.01, 1e-4, format="%.5f", key="method_itt_lr")
warm = c3.slider("ITT warm-up (fraction of training)", 0.0, 0.9, 1 / 6, key="method_warm")
prog, series = schedule_data(lr, itt_lr, warm)
st.plotly_chart(schedule_figure(prog, series, secondary=["ITT lr (robust teacher)"]), key="method_sched")
st.caption("The student's lr is constant for the first half, then follows (0.5 + 0.5 cos πv)·exp(−0.01 v²); the "
           "robust teacher's ITT lr is 0 during the warm-up, then follows the same shape over the rest. "
           "Progress is measured in steps, so the shapes scale to runs of any length (from `ciard.schedules`).")
st.page_link("app_pages/train.py", label="Try it: train a student", icon=":material/model_training:")
