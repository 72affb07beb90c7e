"""Home: what CIARD is and what this app does."""
import streamlit as st

st.title("CIARD Studio")
st.markdown(
    """
**Adversarial robustness distillation you can run, watch, tune and probe.**

CIARD (*Cyclic Iterative Adversarial Robustness Distillation*, ICCV 2025) trains a small
**student** network to be both accurate and robust to adversarial examples by distilling
from two teachers:

- a **clean teacher**, trained on ordinary images, which knows the right answers on clean inputs;
- a **robust teacher**, adversarially trained, which knows how to answer under attack.

Two ideas make the combination work:

- the **push loss** drives the student's predictions on adversarial examples *away* from the
  clean teacher's where that teacher is fooled, so its mistakes are not copied;
- **iterative teacher training** (ITT) keeps fine-tuning the robust teacher on the student's
  own adversarial examples, so the robust teacher keeps teaching what the student gets wrong.

Temperatures and KD weights balance the two teachers as training goes on.
"""
)

st.subheader("What you can do here")
#: (page, label, icon, what it is for), laid out in rows of three and four
LINKS = [
    [("app_pages/train.py", "Train", ":material/model_training:",
      "Pick a preset, tune every hyperparameter, start a run and watch its losses, "
      "temperatures, KD weights and accuracies live. Stop and resume at will."),
     ("app_pages/runs.py", "Runs", ":material/monitoring:",
      "Compare runs: overlay their curves, see final clean and PGD-20 accuracy side by "
      "side and the settings that differ; promote the best student, download metrics."),
     ("app_pages/home.py", "Home", ":material/home:",
      "This page. The sidebar (on every page) picks the dataset, the active checkpoints "
      "and the device.")],
    [("app_pages/adversarial.py", "Clean vs adversarial", ":material/compare:",
      "Attack a test image (FGSM, PGD, CW-inf, APGD) and compare the three models' top-5 "
      "predictions before and after; accuracy against eps."),
     ("app_pages/explain.py", "Saliency and push loss", ":material/visibility:",
      "Where each model looks (Captum), and how the push loss moves a student's adversarial "
      "representations away from the fooled clean teacher."),
     ("app_pages/upload.py", "Your own image", ":material/upload:",
      "Upload a photo, see the predictions, attack it and check whether they hold."),
     ("app_pages/method.py", "Method explained", ":material/school:",
      "The two teachers, the push loss, iterative teacher training and the schedules, in "
      "plain words and formulas.")],
    [("app_pages/playground.py", "Playground: see it in 2-D", ":material/scatter_plot:",
      "CIARD and its baselines on points in the plane: four models trained in seconds, their "
      "decision boundaries, an attack's eps-box, the push loss's mask, push on vs off over 10 seeds.")],
]
for row in LINKS:
    for col, (page, label, icon, caption) in zip(st.columns(len(row)), row):
        with col:
            st.page_link(page, label=label, icon=icon)
            st.caption(caption)

st.info("Everything works offline: the default dataset is an embedded 6,000-image CIFAR-10 "
        "subset, and the **demo** preset trains a student in minutes on a CPU. Training runs in "
        "its own process, so it keeps going when you switch pages or close the tab.", icon=":material/info:")
