"""Sign-in (ID + password, then TOTP or a recovery code), enrolment, sign-out, own password."""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from madoguchi import auth
from madoguchi.audit import AuditTag, record
from madoguchi.extensions import rate_limited
from madoguchi.permissions import Permission

from .forms import CodeForm, EnrolForm, PasswordForm, SignInForm
from .guard import COOKIE, public, remote_addr, requires, safe_next

bp = Blueprint("auth", __name__)


def _limit() -> str:
    return current_app.config["RATELIMIT_STAFF_SIGNIN"]


def _refusal_message(refused: auth.SignInRefused) -> str:
    if refused.reason == "locked":
        return _(
            "入力の誤りが続いたため、このアカウントは一時的にロックされています。管理者に連絡してください。"
        )
    if refused.reason == "backoff":
        return _("入力の誤りが続いています。{seconds}秒待ってから再度お試しください。").format(
            seconds=refused.retry_after
        )
    if refused.reason == "bad_code":
        return _("確認コードが正しくありません。")
    # Wrong ID, wrong password, inactive, or off duty: one message, so the form reveals nothing.
    return _("職員IDまたはパスワードが正しくないか、現在このアカウントは使用できません。")


def _set_cookie(response, token: str):
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        path="/",
    )
    return response


def _after_password(token: str, staff):
    target = "auth.second_factor" if staff.totp_secret_ct else "auth.enrol"
    return _set_cookie(redirect(url_for(target, next=safe_next(request.args.get("next")))), token)


@bp.route("/signin", methods=["GET", "POST"])
@public
@rate_limited(_limit, methods=["POST"])
def signin():
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        try:
            staff = auth.authenticate(
                form.login_id.data.strip(), form.password.data, remote_addr=remote_addr()
            )
        except auth.SignInRefused as refused:
            error = _refusal_message(refused)
        else:
            if g.staff_session is not None:
                auth.end_session(g.staff_session, "replaced", remote_addr=remote_addr())
            return _after_password(auth.start_session(staff, remote_addr=remote_addr()), staff)
    return render_template("staff/signin.html", form=form, error=error), (401 if error else 200)


def _pending_session():
    """The session between the password and the second factor, or None."""
    pending = g.get("staff_session")
    return pending if pending is not None and not pending.mfa_passed else None


@bp.route("/signin/code", methods=["GET", "POST"])
@public
@rate_limited(_limit, methods=["POST"])
def second_factor():
    pending = _pending_session()
    if pending is None:
        return redirect(url_for("auth.signin"))
    if not pending.staff.totp_secret_ct:
        return redirect(url_for("auth.enrol"))
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        try:
            auth.verify_second_factor(pending.staff, form.code.data, remote_addr=remote_addr())
        except auth.SignInRefused as refused:
            error = _refusal_message(refused)
        else:
            auth.complete_session(pending, remote_addr=remote_addr())
            return redirect(
                safe_next(request.args.get("next")) or url_for(current_app.config["STAFF_HOME_ENDPOINT"])
            )
    return render_template("staff/code.html", form=form, error=error), (401 if error else 200)


@bp.route("/signin/enrol", methods=["GET", "POST"])
@public
@rate_limited(_limit, methods=["POST"])
def enrol():
    pending = _pending_session()
    if pending is None:
        return redirect(url_for("auth.signin"))
    staff = pending.staff
    if staff.totp_secret_ct:
        return redirect(url_for("auth.second_factor"))
    form = EnrolForm()
    error = None
    secret = session.get("enrol_secret")
    if form.validate_on_submit() and secret:
        try:
            codes = auth.confirm_enrolment(staff, secret, form.code.data.strip(), remote_addr=remote_addr())
        except auth.SignInRefused as refused:
            error = _refusal_message(refused)
        else:
            session.pop("enrol_secret", None)
            auth.complete_session(pending, remote_addr=remote_addr())
            return render_template(
                "staff/recovery_codes.html", codes=codes, next=safe_next(request.args.get("next"))
            )
    if not secret:
        secret = auth.begin_enrolment(staff).secret
        session["enrol_secret"] = secret
    enrolment = auth.begin_enrolment(staff, secret)
    return render_template("staff/enrol.html", form=form, error=error, enrolment=enrolment), (
        401 if error else 200
    )


@bp.post("/signout")
@public
def signout():
    if g.get("staff_session") is not None:
        auth.end_session(g.staff_session, "signed_out", remote_addr=remote_addr())
    session.clear()
    response = redirect(url_for("auth.signin"))
    response.delete_cookie(COOKIE, path="/")
    return response


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Permission.SIGNED_IN)
def change_password():
    form = PasswordForm()
    done = False
    if form.validate_on_submit():
        staff = g.staff
        if not auth.password_matches(staff, form.current.data):
            form.current.errors.append(_("現在のパスワードが正しくありません。"))
        else:
            problems = auth.password_problems(form.new.data, user_inputs=(staff.login_id, staff.name))
            if problems:
                form.new.errors.extend(problems)
            else:
                auth.set_password(staff, form.new.data)
                record(AuditTag.PASSWORD_CHANGED, staff=staff, remote_addr=remote_addr())
                done = True
    return render_template("staff/password.html", form=form, done=done)
