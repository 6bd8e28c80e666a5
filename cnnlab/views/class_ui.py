"""The class's Streamlit widgets: the browser's anonymous identity (a cookie), its display name,
and the teacher login in the sidebar. The only Streamlit module besides :mod:`cnnlab.views.ui`.

The id is read on the server from the request's cookies (``st.context.cookies``: there on the
first run of every page, reload and new tab) and, the first time, written by
``extra_streamlit_components.CookieManager`` (a hidden component) for 400 days. It is never put
in a URL. No teacher configured: the sidebar shows the name only, and asks for nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import time

import streamlit as st

from cnnlab.classroom.access import Viewer
from cnnlab.classroom.identity import Owner, check_name, default_name, is_owner_id, new_owner_id
from cnnlab.classroom.teacher import LoginThrottle, configured_hash
from cnnlab.errors import UserError

ID_COOKIE, NAME_COOKIE = "cnnlab_id", "cnnlab_name"
COOKIE_DAYS = 400  # the longest a browser keeps a cookie (Chrome's cap)
WRONG_PASSWORD_DELAY_S = 1.0
_OWNER, _PENDING, _TEACHER = "class-owner", "class-cookies", "class-teacher"
_THROTTLE, _MESSAGE = "class-login-throttle", "class-login-message"


def encode_name(name: str) -> str:
    """A name as a cookie value (URL-safe base64 of its UTF-8: no quoting questions)."""
    return base64.urlsafe_b64encode(name.encode()).decode("ascii")


def decode_name(value: object) -> str | None:
    """The name in a cookie value, or None when it is missing or not a valid name."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return check_name(base64.urlsafe_b64decode(value.encode("ascii")).decode())
    except (ValueError, UnicodeError, binascii.Error, UserError):
        return None


def _cookies() -> dict[str, str]:
    try:
        return dict(st.context.cookies)
    except Exception:  # no browser request (a bare script run): no cookies
        return {}


def current_owner() -> Owner:
    """This browser's identity: from its cookie, else a new one (written to the cookie)."""
    owner = st.session_state.get(_OWNER)
    if isinstance(owner, Owner):
        return owner
    cookies = _cookies()
    pending: dict[str, str] = st.session_state.setdefault(_PENDING, {})
    owner_id = cookies.get(ID_COOKIE)
    if not is_owner_id(owner_id):
        owner_id = new_owner_id()
        pending[ID_COOKIE] = owner_id
    assert owner_id is not None
    name = decode_name(cookies.get(NAME_COOKIE)) or default_name(owner_id)
    owner = Owner(owner_id, name)
    st.session_state[_OWNER] = owner
    return owner


def rename_owner(name: str) -> Owner:
    """Set this browser's display name (checked; kept in its cookie)."""
    owner = Owner(current_owner().id, check_name(name))
    st.session_state[_OWNER] = owner
    st.session_state.setdefault(_PENDING, {})[NAME_COOKIE] = encode_name(owner.name)
    return owner


def _write_cookies() -> None:
    """Render the hidden cookie writer for the cookies not yet confirmed written."""
    pending: dict[str, str] = st.session_state.get(_PENDING) or {}
    if not pending:
        return
    # lazy: the component is needed only until this browser's cookies are written
    import extra_streamlit_components as stx  # type: ignore[import-untyped]

    manager = stx.CookieManager(key="class-cookie-jar")
    manager.get(ID_COOKIE)  # (also hides the components' empty rows in the sidebar)
    expires = datetime.datetime.now() + datetime.timedelta(days=COOKIE_DAYS)
    options = {"path": "/", "expires": expires.isoformat(), "sameSite": "lax"}
    for name, value in list(pending.items()):
        # CookieManager.set without dropping the component's answer: True once written
        written = manager.cookie_manager(
            method="set", cookie=name, value=value, options=options,
            key=f"class-cookie-set:{name}:{value}", default=False,
        )  # fmt: skip
        if written is True:
            pending.pop(name, None)


def class_has_teacher() -> bool:
    """Whether a teacher password is configured (a broken secrets file counts as none here;
    the teacher login says why)."""
    try:
        return configured_hash() is not None
    except UserError:
        return False


def _teacher_login() -> None:
    """The sidebar's teacher login (only when a teacher password is configured)."""
    try:
        hashed = configured_hash()
    except UserError as err:
        st.sidebar.error(f"Teacher login unavailable: {err}")
        return
    if hashed is None:
        return
    box = st.sidebar.container(key="teacher-box")
    if st.session_state.get(_TEACHER):
        box.success("Teacher mode: you can change every run and set the class limits.", icon="🎓")
        if box.button("Log out", key="teacher-logout"):
            st.session_state[_TEACHER] = False
            st.rerun()
        return
    throttle: LoginThrottle = st.session_state.setdefault(_THROTTLE, LoginThrottle())
    if message := st.session_state.get(_MESSAGE):  # kept until the next try: reruns keep it
        box.error(message)
    with (
        box.expander("🎓 Teacher", expanded=False),
        st.form("teacher-login", border=False, clear_on_submit=True),
    ):
        password = st.text_input("Teacher password", type="password", key="teacher-password")
        if st.form_submit_button("Log in"):
            st.session_state.pop(_MESSAGE, None)
            try:
                ok = throttle.attempt(password, hashed)
            except UserError as err:
                ok, st.session_state[_MESSAGE] = False, str(err)
            else:
                if not ok:
                    time.sleep(WRONG_PASSWORD_DELAY_S)  # slows guessing (the throttle caps it)
                    st.session_state[_MESSAGE] = "Wrong password."
            st.session_state[_TEACHER] = ok
            st.rerun()  # the form comes back empty: the password is not kept in the session


def _name_box(owner: Owner) -> None:
    with st.sidebar.expander(f"👤 {owner.name}", expanded=False), st.container(key="your-name"):
        st.caption("Your name on the runs you start (plain text). Kept in this browser.")
        with st.form("name-form", border=False):
            typed = st.text_input("Your name", value=owner.name, key="name-input")
            if st.form_submit_button("Save name"):
                try:
                    rename_owner(typed)
                except UserError as err:
                    st.error(str(err))
                else:
                    st.rerun()


def classroom_sidebar() -> Viewer:
    """Draw the identity and teacher widgets in the sidebar; return who is looking."""
    owner = current_owner()
    _name_box(owner)
    _teacher_login()
    with st.sidebar:
        _write_cookies()
    teacher = bool(st.session_state.get(_TEACHER)) and class_has_teacher()
    return Viewer(
        owner=st.session_state[_OWNER], teacher=teacher, class_has_teacher=class_has_teacher()
    )
