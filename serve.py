"""What ``make run`` serves (``streamlit run serve.py``): the app in app.py plus the route the
Train page's live charts poll (``/api/runs/<id>/live``, :mod:`cnnlab.views.live_routes`), so a
watching tab costs the server one small JSON read a poll instead of a script rerun a second.

``streamlit run app.py`` still works; its Train page then pushes the same document through a
once-a-second fragment instead (README, Performance).
"""

import streamlit as st

from cnnlab.views.live_routes import routes

app = st.App("app.py", routes=routes(base_path=str(st.get_option("server.baseUrlPath") or "")))
