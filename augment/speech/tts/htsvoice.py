"""The duration model of an HTS voice (``.htsvoice``, hts_engine API format 1.0), evaluated in Python.

Why: hts_engine (and so pyopenjtalk) renders full-context labels to audio but never says where
each phoneme landed. Its state durations, though, are a pure function of each label on its own
(one decision-tree lookup per label) plus, when the speaking rate is changed, one global
rescaling. Re-doing that arithmetic here gives the exact frame count of every phoneme for ~1 % of
the synthesis cost, instead of re-synthesising prefixes. The rules mirror hts_engine API 1.10
``HTS_set_default_duration`` / ``HTS_set_specified_duration`` (HTS_sstream.c); the tests check the
predicted total length against the engine's output sample for sample.

File layout: a text header (``[GLOBAL]``, ``[STREAM]``, ``[POSITION]`` with byte ranges into the
data block), then ``[DATA]``. ``DURATION_PDF`` is little-endian: int32 number of leaves, then per
leaf ``num_states`` float32 means followed by ``num_states`` float32 variances.
``DURATION_TREE`` is text: ``QS name { "pattern", ... }`` questions, then ``{pattern}[state]``
trees of ``index question no-child yes-child`` nodes whose leaves are named ``"..._<leaf>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from jmoshi_augment.errors import JmoshiError

_QUESTION = re.compile(r'QS\s+(\S+)\s+\{([^}]*)\}')
_TREE_HEAD = re.compile(r'\{([^}]*)\}\[(\d+)\]\s*\{(.*?)\n\}', re.S)
_NODE = re.compile(r'^\s*(-?\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$', re.M)

Matcher = Callable[[str], bool]


def _pattern_matcher(pattern: str) -> Matcher:
    """hts_engine's glob (``*`` any run, ``?`` one character) as a fast predicate. Almost every
    pattern of a Japanese voice is ``*<literal>*``, which is a substring test."""
    core = pattern.strip("*")
    if core and not any(c in core for c in "*?"):
        lead, trail = pattern.startswith("*"), pattern.endswith("*")
        if lead and trail:
            return lambda s: core in s
        if lead:
            return lambda s: s.endswith(core)
        if trail:
            return lambda s: s.startswith(core)
        return lambda s: s == core
    rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z", re.S)
    return lambda s: rx.match(s) is not None


def _question_matcher(patterns: list[str]) -> Matcher:
    tests = [_pattern_matcher(p) for p in patterns]
    return lambda s: any(t(s) for t in tests)


def _leaf_index(token: str) -> int:
    return int(token.strip('"').rsplit("_", 1)[1]) - 1  # leaves are 1-based in the file


@dataclass(frozen=True)
class _Tree:
    applies: Matcher  # the tree's own pattern ({*} for the usual single duration tree)
    # node index -> (question, no-child, yes-child); a child is a node index (int) or a leaf ("L", i)
    nodes: dict[int, tuple[Matcher, int | tuple[str, int], int | tuple[str, int]]]

    def leaf(self, label: str) -> int:
        node: int | tuple[str, int] = 0
        while not isinstance(node, tuple):
            question, no, yes = self.nodes[node]
            node = yes if question(label) else no
        return node[1]


@dataclass(frozen=True)
class DurationModel:
    """State-duration pdfs and decision trees of one voice."""

    sampling_frequency: int  # Hz of the rendered waveform (48 kHz for mei_normal)
    frame_period: int  # samples per frame (240 = 5 ms at 48 kHz)
    num_states: int  # HMM states per phoneme
    means: np.ndarray  # float64 [num_leaves, num_states], frames
    variances: np.ndarray  # float64 [num_leaves, num_states]
    trees: tuple[_Tree, ...]

    def _leaf(self, label: str) -> int:
        for tree in self.trees:
            if tree.applies(label):
                return tree.leaf(label)
        raise JmoshiError(f"no duration tree of the voice applies to label {label[:60]!r}")

    def state_frames(self, labels: list[str], speed: float = 1.0) -> np.ndarray:
        """Frames per state, int64 [num_labels, num_states], as hts_engine assigns them."""
        if not labels:
            return np.zeros((0, self.num_states), dtype=np.int64)
        leaves = [self._leaf(label) for label in labels]
        mean = self.means[leaves].ravel()
        var = self.variances[leaves].ravel()
        if speed == 1.0:
            frames = np.maximum(np.floor(mean + 0.5), 1).astype(np.int64)
        else:
            frames = _rescaled_frames(mean, var, mean.sum() / speed)
        return frames.reshape(len(labels), self.num_states)

    def phone_samples(self, labels: list[str], speed: float = 1.0) -> np.ndarray:
        """Start and end sample of every label in the rendered waveform, int64 [num_labels, 2]."""
        frames = self.state_frames(labels, speed).sum(axis=1)
        ends = np.cumsum(frames) * self.frame_period
        return np.stack([ends - frames * self.frame_period, ends], axis=1)


def _rescaled_frames(mean: np.ndarray, var: np.ndarray, frame_length: float) -> np.ndarray:
    """Durations for a given total length: every state moves by ``rho`` standard units of its own
    variance (so long, variable states absorb most of a rate change), then single frames are added
    or removed where that is closest to ``rho`` until the total is exact."""
    n = len(mean)
    target = max(int(frame_length + 0.5), 1)
    if target <= n:
        return np.ones(n, dtype=np.int64)
    rho = (target - mean.sum()) / var.sum()
    frames = np.maximum(np.floor(mean + rho * var + 0.5), 1).astype(np.int64)
    total = int(frames.sum())
    while total != target:
        step = 1 if target > total else -1
        cost = np.abs(rho - (frames + step - mean) / var)
        if step < 0:
            cost[frames <= 1] = np.inf
        j = int(np.argmin(cost))  # first minimum, as the engine's strict comparison picks
        frames[j] += step
        total += step
    return frames


def _header(text: str, path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("["):
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    for key in ("SAMPLING_FREQUENCY", "FRAME_PERIOD", "NUM_STATES", "DURATION_PDF", "DURATION_TREE"):
        if key not in fields:
            raise JmoshiError(f"not an HTS voice (format 1.0): header has no {key}", path=path)
    return fields


def _byte_range(fields: dict[str, str], key: str, data: bytes, path: Path) -> bytes:
    try:
        start, end = (int(x) for x in fields[key].split("-"))
    except ValueError:
        raise JmoshiError(f"bad {key} position {fields[key]!r}", path=path) from None
    if not 0 <= start <= end < len(data):
        raise JmoshiError(f"{key} range {start}-{end} lies outside the file's data block", path=path)
    return data[start : end + 1]


def parse_duration_model(blob: bytes, path: Path) -> DurationModel:
    marker = blob.find(b"[DATA]\n")
    if not blob.startswith(b"[GLOBAL]") or marker < 0:
        raise JmoshiError("not an HTS voice: expected a [GLOBAL] header and a [DATA] block", path=path)
    try:
        fields = _header(blob[:marker].decode("utf-8"), path)
        data = blob[marker + len(b"[DATA]\n") :]
        num_states = int(fields["NUM_STATES"])
        pdf = _byte_range(fields, "DURATION_PDF", data, path)
        num_leaves = int(np.frombuffer(pdf[:4], dtype="<i4")[0])
        values = np.frombuffer(pdf[4:], dtype="<f4")
        if num_leaves <= 0 or values.size != num_leaves * 2 * num_states:
            raise JmoshiError(f"DURATION_PDF holds {values.size} values, expected {num_leaves} x 2 x {num_states}", path=path)
        table = values.astype(np.float64).reshape(num_leaves, 2 * num_states)
        tree_text = _byte_range(fields, "DURATION_TREE", data, path).decode("utf-8")
        questions = {
            name: _question_matcher([p.strip().strip('"') for p in body.split(",") if p.strip()])
            for name, body in _QUESTION.findall(tree_text)
        }
        trees = []
        for head, _state, body in _TREE_HEAD.findall(tree_text):
            nodes = {}
            for index, question, no, yes in _NODE.findall(body):
                if question not in questions:
                    raise JmoshiError(f"duration tree uses undefined question {question!r}", path=path)
                nodes[int(index)] = (
                    questions[question],
                    ("L", _leaf_index(no)) if no.startswith('"') else int(no),
                    ("L", _leaf_index(yes)) if yes.startswith('"') else int(yes),
                )
            if not nodes:  # a tree that is a single leaf
                leaf = _leaf_index(body.strip())
                nodes[0] = (lambda s: True, ("L", leaf), ("L", leaf))
            trees.append(_Tree(_question_matcher([p.strip().strip('"') for p in head.split(",")]), nodes))
        if not trees:
            raise JmoshiError("DURATION_TREE holds no tree", path=path)
        return DurationModel(
            sampling_frequency=int(fields["SAMPLING_FREQUENCY"]),
            frame_period=int(fields["FRAME_PERIOD"]),
            num_states=num_states,
            means=table[:, :num_states],
            variances=table[:, num_states:],
            trees=tuple(trees),
        )
    except (UnicodeDecodeError, ValueError, IndexError, KeyError) as e:
        raise JmoshiError(f"unreadable HTS voice ({type(e).__name__}: {e})", path=path) from None


@lru_cache(maxsize=8)
def load_duration_model(path: str) -> DurationModel:
    """Parse a voice file once per process."""
    p = Path(path)
    if not p.is_file():
        raise JmoshiError("HTS voice file not found", path=p)
    try:
        blob = p.read_bytes()
    except OSError as e:
        raise JmoshiError(f"cannot read HTS voice: {e.strerror}", path=p) from None
    return parse_duration_model(blob, p)
