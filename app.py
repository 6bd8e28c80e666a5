"""cnnlab's entry point (``streamlit run app.py``): the titled pages, their icons and URLs.

The page scripts live in ``pages/``; each ``url_path`` keeps the address the page had before
``st.navigation`` (``/Conv_Lab``, ``/Train?run=…``), so shared links keep working. An address
that names no page shows the home page with a message saying so.
"""

import streamlit as st

from cnnlab.views.ui import unknown_page_notice

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/1_Conv_Lab.py", title="Conv Lab", icon="🔬", url_path="Conv_Lab"),
    st.Page(
        "pages/2_Model_Inspector.py", title="Model Inspector", icon="🧮", url_path="Model_Inspector"
    ),
    st.Page("pages/3_Train.py", title="Train", icon="🏋️", url_path="Train"),
    st.Page("pages/4_Runs.py", title="Runs", icon="📊", url_path="Runs"),
    st.Page("pages/5_Inside.py", title="Inside the network", icon="🔍", url_path="Inside"),
    st.Page("pages/6_Experiments.py", title="Experiments", icon="🧪", url_path="Experiments"),
    st.Page("pages/7_Class_Board.py", title="Class board", icon="🎓", url_path="Class_Board"),
]

page = st.navigation(PAGES)
unknown_page_notice(PAGES)
page.run()
