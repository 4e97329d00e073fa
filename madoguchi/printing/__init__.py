"""Printed forms as PDF bytes: pure functions, no database, no Flask (R6.2, R6.4).

- ``shipping_ledger``: 各会場送付台帳, A4, 原本 (送付用) and 控え (会場保管用) sets in one PDF.
- ``reissue_notices``: 再発行用交付通知書, one postcard page per resident, with a Code 128 barcode.
- ``address_labels``: A4 sheets of 12 address labels.

Japanese text uses reportlab's built-in CID fonts (see ``fonts``), so the PDFs stay real text.
The functions never log; the values they print are personal data.
"""

from __future__ import annotations

from .ledger import LedgerRow, shipping_ledger
from .notices import Contact, Notice, address_labels, reissue_notices

__all__ = ["Contact", "LedgerRow", "Notice", "address_labels", "reissue_notices", "shipping_ledger"]
