"""Why a rewrite was refused: the reason codes the run report counts, and the hint the retry prompt
gives the model for each. Kept apart from the checks so every check module can raise them."""

from __future__ import annotations

# Reason codes, in the order the checks run. The run report counts them; RETRY_HINTS tells the
# model how to fix each one, so a reason must name what was actually wrong.
RETRY_HINTS: dict[str, str] = {
    "malformed_json": "出力が JSON として読めませんでした。前置きや ``` を付けず、JSON オブジェクトだけを出力してください。",
    "truncated": "出力が途中で切れています。JSON を最後まで閉じてください。",
    "refused": "出力が返ってきませんでした。入力の対話を書き換えて JSON で出力してください。",
    "schema": '形式が違います。{"turns": [{"speaker": "話者ラベル", "text": "発話"}]} の形にし、text を空にしないでください。',
    "unknown_speaker": "入力にない話者が出てきました。話者ラベルは入力の speakers にあるものだけを使ってください。",
    "missing_speaker": "入力の話者の発話がなくなっています。全員の発話を残してください。",
    "order": "話の順序か、誰が何を言ったかが入力と食い違っています。発話の順序と話し手を入力どおりにしてください。",
    "dropped_turn": "入力の発話が抜けています。入力の各発話を、同じ話し手の発話として順番どおりに残してください（分割や相づちの追加は構いません）。",
    "markup": "読み上げない記号や注記が本文に入っています。話す言葉だけを書いてください。",
    "foreign_script": "日本語以外の文字が混ざっています。日本語（かな・漢字・日本語の句読点・数字）だけで書いてください。",
    "latin_run": "英語などの英字が多すぎます。略語や固有の名称以外は日本語で言ってください。",
    "privacy_mask": "伏せ字の扱いが違います。入力の伏せ字だけを入力どおりの形で残すか、その部分に触れない言い方にし、読み上げたり、名前に置き換えたり、新しく作ったりしないでください。",
    "invented_name": "入力にない固有名詞（人名・地名など）が出てきました。入力の対話とペルソナにない名前を作らないでください。",
    "length_ratio": "長さが元の対話から大きく変わっています。内容を足したり削ったりしないでください。",
    "persona_fact": "元の対話に出てくる事実が抜けています。次の語が表す内容を残してください。",
}


class Rejected(Exception):
    """A failed check: a reason code from RETRY_HINTS and a detail quoted back to the model."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in RETRY_HINTS:
            raise ValueError(f"unknown rewrite reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def clip(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def around(text: str, pos: int, n: int = 10) -> str:
    return repr(text[max(0, pos - n): pos + n])
