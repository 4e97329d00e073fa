"""What residents must bring and how the day works (R3.4; 004 別紙③1(1)③).

One source for the web pages, the e-mails and (later) the printed notices, so they never disagree.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ALWAYS = (
    _l("交付通知書（はがき）"),
    _l("本人確認書類（下記のとおり）"),
    _l("通知カード（お持ちの方のみ）"),
    _l("住民基本台帳カード（お持ちの方のみ）"),
    _l("これまでの個人番号カード（更新の方のみ）"),
)

# 本人確認書類: one photo ID issued by a public office, or two other documents.
ID_ONE_OF = (
    _l("運転免許証"),
    _l("運転経歴証明書（平成24年4月1日以降に交付されたもの）"),
    _l("旅券（パスポート）"),
    _l("身体障害者手帳"),
    _l("精神障害者保健福祉手帳"),
    _l("療育手帳"),
    _l("在留カード"),
    _l("特別永住者証明書"),
    _l("写真付きの住民基本台帳カード"),
)
ID_TWO_OF = (
    _l("健康保険の資格確認書"),
    _l("介護保険被保険者証"),
    _l("年金手帳・年金証書"),
    _l("医療受給者証"),
    _l("社員証・学生証（写真付き）"),
    _l("預金通帳"),
)
NOTES = (
    _l("ご本人が来場してください。15歳未満の方と成年被後見人の方は法定代理人と一緒に来場してください。"),
    _l("受け取りの際に暗証番号を設定します。数字4桁と、英数字6〜16文字の暗証番号を決めておいてください。"),
    _l("本人確認書類は有効期限内の原本をお持ちください。コピーは使えません。"),
)
