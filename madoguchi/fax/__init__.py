"""FAX bookings (R5): the sheet residents fill in and send, and the reader for what arrives.

- ``sheet.fax_sheets``: 個人番号カード交付予約申込依頼書（ＦＡＸ用）, one A4 page per applicant (R5.1).
- ``reader.read_fax``: received TIFF/PDF/PNG bytes → one ``PageResult`` per page, with the
  予約管理番号, the ticked (date, time band) boxes and the hand-written phone digits, each with a
  confidence, and what needs a person to look (R5.2).
- ``layout``: where everything sits on the page and what the sheet's QR code says; shared by both.

Pure Python, no Flask, no database: the FAX intake queue (front end) calls these.
"""
