"""cnnlab home page: what it is, which MNIST is in use, and where to go next."""

import streamlit as st

from cnnlab.views.images import digit_grid, upscale
from cnnlab.views.ui import mnist_or_error, page_header, subset_notice

page_header(
    "cnnlab",
    "🧠",
    "Explore convolutional networks in the browser: count them, compare them, train them.",
)

st.markdown(
    """
cnnlab answers three questions of a classic deep-learning assignment — live instead of on paper:

1. **Regular vs depthwise-separable convolution** — what does a separable layer buy,
   and what does it cost?
2. **Counting AlexNet and VGG-16 by hand vs by code** — every layer's formula, checked
   against torchinfo, fvcore and PyTorch's FLOP counter.
3. **Training a CNN from scratch on MNIST** — in the background, with live charts,
   metrics and the digits it gets wrong.

Then look **inside the network** (what each convolution does to a digit), test the report's
claims with **experiments** on your own runs, and — on a class server — follow the whole class
on the **class board**.
"""
)

cols = st.columns(4)
cols[0].page_link("pages/1_Conv_Lab.py", label="Conv Lab", icon="🔬")
cols[1].page_link("pages/2_Model_Inspector.py", label="Model Inspector", icon="🧮")
cols[2].page_link("pages/3_Train.py", label="Train", icon="🏋️")
cols[3].page_link("pages/4_Runs.py", label="Runs", icon="📊")
cols = st.columns(4)
cols[0].page_link("pages/5_Inside.py", label="Inside the network", icon="🔍")
cols[1].page_link("pages/6_Experiments.py", label="Experiments", icon="🧪")
cols[2].page_link("pages/7_Class_Board.py", label="Class board", icon="🎓")

st.subheader("The data: MNIST")
train = mnist_or_error("train")
test = mnist_or_error("test")
if train is not None and test is not None:
    subset_notice(train)
    kind = "bundled subset" if train.is_subset else "full MNIST"
    st.container(key="dataset-line").markdown(
        f"**Dataset in use:** {kind} — {len(train):,} training and {len(test):,} test digits "
        f"(source: {train.source}, `{train.location}`)."
    )
    sample = test.images[:64]
    st.container(key="digit-grid").image(
        upscale(digit_grid(sample, columns=16), 2), caption="The first 64 test digits"
    )
    st.caption("Labels: " + " ".join(str(int(v)) for v in test.labels[:64]))
