"""The reply to a FAX booking request (R5.4): one A4 page, black only, to fax back — the booking
made (date, time, venue, what to bring) or that none of the chosen times was free."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from .. import numbers
from . import fonts

TITLE = "個人番号カード交付予約　受付結果のお知らせ"


@dataclass(frozen=True)
class FaxReply:
    number: str
    name: str
    booked_at: datetime | None  # Tokyo time of the booked slot; None: no chosen time was free
    venue: str = ""
    venue_address: str = ""
    bring: tuple[str, ...] = ()
    call_center_phone: str = ""
    call_center_hours: str = ""
    city_name: str = ""
    residents_url: str = ""


def fax_reply(reply: FaxReply) -> bytes:
    numbers.parse(reply.number)  # a reply must never go out for a malformed number
    fonts.register()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(TITLE)
    width, height = A4
    y = height - 25 * mm

    def line(text: str, size: float = 11, gap: float = 7, font: str = fonts.GOTHIC) -> None:
        nonlocal y
        canvas.setFont(font, size)
        canvas.drawString(20 * mm, y, text)
        y -= gap * mm

    line(TITLE, 16, 12)
    line(f"{reply.name} 様", 13, 9, fonts.MINCHO)
    line(f"予約管理番号　{numbers.display(reply.number)}", 12, 11)
    if reply.booked_at is not None:
        weekday = "月火水木金土日"[reply.booked_at.weekday()]
        line("FAXでお申し込みいただいた個人番号カードの受け取りを、次のとおり予約しました。", 11, 10)
        line(
            f"日時　{reply.booked_at.year}年{reply.booked_at.month}月{reply.booked_at.day}日（{weekday}）{reply.booked_at:%H:%M}",
            14,
            9,
        )
        line(f"会場　{reply.venue}", 13, 7)
        if reply.venue_address:
            line(f"　　　{reply.venue_address}", 10, 10)
        line("当日お持ちいただくもの", 12, 7)
        for item in reply.bring:
            line(f"・{item}", 10, 6)
        y -= 4 * mm
        line("日時を変更・取り消すときは、お電話またはウェブサイトでお手続きください。", 10, 7)
    else:
        line("ご希望の日時はいずれも満員のため、予約できませんでした。", 12, 9)
        line("お手数ですが、別の日時をお選びのうえ、あらためてFAXでお申し込みいただくか、", 11, 7)
        line("お電話またはウェブサイトでご予約ください。", 11, 10)
    if reply.residents_url:
        line(f"ウェブサイト　{reply.residents_url}", 10, 7)
    line(
        f"{reply.city_name} 個人番号カード交付予約センター　電話 {reply.call_center_phone}（{reply.call_center_hours}）",
        10,
        7,
    )
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
