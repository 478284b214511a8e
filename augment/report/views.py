"""An acoustic view in ``report.html``: what the page shows beside its clean rendering.

A view's unit-record entry carries ``acoustics`` (every parameter drawn, augment/acoustics/params.py);
the page lists the ones a listener compares by ear (room, noise, echo, microphone and codec, voice)
as short lines, and plays the clean rendering (``view_of``) beside the view. Read defensively: a
record from another version gives what it holds, never an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["view_fields"]

EFFECTS = ("room", "noise", "echo", "mic", "voice")  # the order a listener reads them in


def _num(d: dict[str, Any], key: str, fmt: str, unit: str = "") -> str | None:
    v = d.get(key)
    return f"{v:{fmt}}{unit}" if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _join(*parts: str | None) -> str:
    return ", ".join(p for p in parts if p)


def _room(d: dict[str, Any]) -> str:
    dims = d.get("dims_m")
    size = "×".join(f"{x:.1f}" for x in dims) + " m" if isinstance(dims, list) and len(dims) == 3 else None
    where = d.get("file") if d.get("source") == "file" else _join(size, _num(d, "distance_m", ".1f", " m away"))
    return _join(_num(d, "rt60_s", ".2f", " s RT60"), f"{d.get('source', '?')} ({where})" if where else d.get("source"))


def _noise(d: dict[str, Any]) -> str:
    kind = str(d.get("kind", "?"))
    detail = {"colored": _num(d, "color_exponent", ".1f"), "file": d.get("file")}.get(kind)
    if kind == "colored" and detail:
        detail = f"1/f^{detail}"
    if kind == "babble" and isinstance(d.get("talkers"), list):
        detail = f"{len(d['talkers'])} talkers"
    return _join(f"{kind} ({detail})" if detail else kind, _num(d, "snr_db", ".1f", " dB SNR"))


def _echo(d: dict[str, Any]) -> str:
    band = (f"{d['highpass_hz']:.0f}–{d['lowpass_hz']:.0f} Hz"
            if isinstance(d.get("highpass_hz"), (int, float)) and isinstance(d.get("lowpass_hz"), (int, float)) else None)
    return _join(_num(d, "delay_ms", ".0f", " ms"), _num(d, "gain_db", "+.1f", " dB"), band,
                 "reverberant" if d.get("reverberant") else None)


def _mic(d: dict[str, Any]) -> str:
    band = None
    if d.get("highpass_hz") is not None or d.get("lowpass_hz") is not None:
        band = f"band {d.get('highpass_hz') or 0:.0f}–{d.get('lowpass_hz') or 0:.0f} Hz"
    codec = None
    if d.get("codec_rate"):
        kbps = _num(d, "codec_kbps", ".0f", " kbps")
        codec = f"Opus at {d['codec_rate'] / 1000:g} kHz" + (f" ({kbps})" if kbps else "")
    return _join(codec or "no codec", _num(d, "gain_db", "+.1f", " dB gain"), band,
                 f"clipped (+{d['clip_drive_db']:.1f} dB)" if isinstance(d.get("clip_drive_db"), (int, float)) else None,
                 _num(d, "floor_dbfs", ".0f", " dBFS floor"))


def _voice(d: dict[str, Any]) -> str:
    pitch = None
    if isinstance(d.get("source_f0_hz"), (int, float)) and isinstance(d.get("target_f0_hz"), (int, float)):
        pitch = f"f0 {d['source_f0_hz']:.0f} → {d['target_f0_hz']:.0f} Hz"
    return _join(d.get("target_sex"), pitch, _num(d, "formant_ratio", ".3f", " formant ratio"))


FORMAT = {"room": _room, "noise": _noise, "echo": _echo, "mic": _mic, "voice": _voice}


def view_fields(out_dir: Path, acoustics: dict[str, Any], warnings: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(row fields, detail fields) of an acoustic view: the clean rendering it was made from, that
    rendering's wav if this folder holds it, and one line per effect ("none" where not drawn)."""
    clean = acoustics.get("view_of")
    clean = str(clean) if clean is not None else None
    clean_audio = f"audio/{clean}.wav" if clean and (out_dir / "audio" / f"{clean}.wav").is_file() else None
    if clean and clean_audio is None:
        warnings.append(f"clean rendering {clean} has no wav in this folder")
    params = []
    for name in EFFECTS:
        value = acoustics.get(name)
        if value is None:
            params.append([name, "none"])
        elif isinstance(value, dict):
            try:
                params.append([name, FORMAT[name](value) or "drawn"])
            except (TypeError, ValueError, KeyError):
                params.append([name, "malformed in the unit record"])
        else:
            params.append([name, "malformed in the unit record"])
    return {"view_of": clean}, {"clean_audio": clean_audio, "acoustics": params, "view": acoustics.get("view")}
