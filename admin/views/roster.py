"""The city's applicant list, uploaded on a screen (R3.1, R8): all rows or none; the report names
bad rows by number and reason, never by value."""

from __future__ import annotations

from flask import g, render_template, request
from flask_babel import gettext as _

from madoguchi import roster
from madoguchi.permissions import Permission
from staffweb.guard import remote_addr, requires

from ..forms_settings import RosterUploadForm
from . import bp


def _page(form, report=None, error="", status=200):
    return render_template(
        "admin/roster.html",
        form=form,
        report=report,
        error=error,
        history=roster.history(),
        max_mb=roster.MAX_BYTES // (1024 * 1024),
        web_max_rows=roster.WEB_MAX_ROWS,
        required=list(roster.REQUIRED),
        optional=["氏名カナ", "郵便番号", "電話番号"],
    ), status


def _uploaded() -> bytes | None:
    """The file's bytes, read with a limit (webforms.Form ignores files on purpose), or None."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    data = upload.stream.read(roster.MAX_BYTES + 1)
    upload.close()
    return data


@bp.get("/roster")
@requires(Permission.ROSTER_IMPORT)
def roster_screen():
    return _page(RosterUploadForm(formdata=None))


@bp.post("/roster")
@requires(Permission.ROSTER_IMPORT)
def roster_upload():
    form = RosterUploadForm()
    if not form.validate():
        return _page(form, error=_("もう一度ファイルを選んで取り込んでください。"))
    data = _uploaded()
    if data is None:
        return _page(form, error=_("取り込むCSVファイルを選んでください。"))
    try:
        report = roster.import_file(
            data, staff=g.staff, remote_addr=remote_addr(), max_rows=roster.WEB_MAX_ROWS
        )
    except roster.RosterImportFailed:
        return _page(
            form,
            error=_(
                "取り込み中に同じ予約管理番号が登録されたため、何も取り込んでいません。もう一度お試しください。"
            ),
        )
    return _page(RosterUploadForm(formdata=None), report=report)
