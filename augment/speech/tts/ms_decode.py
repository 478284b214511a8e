"""Forced multi-stream decoding on a Moshi ``LMModel``: the step loop behind :mod:`.moshi_ms`.

J-Moshi's multi-stream TTS is a Moshi network whose 17 streams per 80 ms frame are one merged text
stream plus 8 Mimi codebooks per speaker (``n_q = dep_q = 16``). At every step the Temporal
Transformer proposes a text token; a padding (3) or end-of-padding (0) proposal is kept, anything
else is replaced by the next token of the script, so the model itself chooses pauses, gaps and
overlaps while the words stay the script's. The Depth Transformer then samples all 16 audio
codebooks of both speakers.

Why not ``moshi.models.lm.LMGen``: it has one temperature for all codebooks, feeds the Depth
Transformer its own samples even where a prompt token is forced afterwards, and draws from the
global torch generator, so an item's output depends on its batch neighbours. Here:

- every item (dialogue × seed) draws its noise from a counter-based hash of (seed, step, stream,
  rank), so a batched run gives each item exactly what a run on its own gives (up to float
  non-associativity of batched matmuls);
- forced tokens (audio prompt, script) are what the next codebook and the next step see;
- a finished item frees its slot and the next pending item starts there
  (``reset_streaming(mask)`` on that slot only), so a batch never waits for its longest member;
- on CUDA the whole step (temporal transformer, keep-pad-or-force choice, 16 Depth-Transformer
  codebooks, bookkeeping) is one CUDA graph, captured with moshi's ``CUDAGraphed`` as ``LMGen``
  does: per-step launch and Python overhead, not arithmetic, bounds an eager 7B step. The step
  therefore has fixed shapes, makes no host syncs, branches on no device value and writes only
  the :class:`_Slots` buffers, in place; the host checks completion every ``sync_every`` steps.
  On the CPU ``CUDAGraphed`` is a plain call.

Delays (``lm.delays``, e.g. ``[0, 0, 1×7, 0, 1×7]``): the value produced at step ``s`` for stream
``k`` is frame ``s - delays[k]`` of that stream; inputs at step ``s`` are the step ``s-1`` values,
or the initial token while ``s <= delays[k]``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from jmoshi_augment.sampling import hash_uniform, sample

if TYPE_CHECKING:
    import torch
    from moshi.models.lm import LMModel

UNSET = -2  # moshi's "ungenerated" id: no forced value at this position


# ------------------------------------------------------------------------------------ the loop


@dataclass(frozen=True)
class StreamSampling:
    """Temperature and top-k per stream: text, main speaker's audio, other speaker's audio."""

    temp_text: float = 0.55  # the derived J-Moshi MS-TTS inference script's text temperature
    top_k_text: int = 25  # moshi's LMGen default
    temp_main: float = 0.6  # the derived inference script's audio temperature
    top_k_main: int = 250  # moshi's LMGen default
    temp_other: float = 0.6
    top_k_other: int = 250
    pad_bonus: float = 0.0  # added to the padding logit: > 0 gives slower speech (Kyutai's padding_bonus)


@dataclass(frozen=True)
class DecodeItem:
    """One dialogue to generate: the forced script and the audio prompt, already as ids."""

    script: np.ndarray  # int64 [L]: speaker tokens and text pieces, forced in order
    prompt: np.ndarray  # int64 [K, Tp]: text + audio tokens prepended (Tp may be 0)
    seed: int  # 0 <= seed < 2**63


@dataclass(frozen=True)
class DecodeOutput:
    steps: np.ndarray  # int64 [K, n]: the delayed streams as generated, prompt steps included
    consumed_at: np.ndarray  # int64 [L]: step at which each script token was forced (-1: never)
    complete: bool  # False when max_frames ran out before the script was consumed


@dataclass(frozen=True)
class DecodeLimits:
    max_frames: int = 2000  # after the prompt; 160 s, the MS-TTS run script's default
    tail_frames: int = 25  # generated after the last script token (its buffer_len for trimming)
    sync_every: int = 4  # steps between completion checks (each check is a device sync)


class ForcedDecoder:
    """``batch_size`` slots running :class:`DecodeItem`s through ``lm`` with forced text."""

    def __init__(self, lm: "LMModel", *, pad_id: int = 3, end_pad_id: int = 0,
                 sampling: StreamSampling = StreamSampling(), limits: DecodeLimits = DecodeLimits(),
                 cuda_graph: bool = True) -> None:
        import torch

        self.lm = lm
        self.pad_id, self.end_pad_id = pad_id, end_pad_id
        self.sampling = sampling
        self.limits = limits
        self.cuda_graph = cuda_graph  # capture each run's step as one CUDA graph (on CUDA devices)
        self.device = lm.device
        self.K = lm.num_codebooks
        self.delays = torch.tensor(lm.delays, device=self.device, dtype=torch.long)
        self.max_delay = int(max(lm.delays))
        self.initial = lm._get_initial_token()[0, :, 0]  # [K]
        half = lm.dep_q // 2
        self.temps = [sampling.temp_main] * half + [sampling.temp_other] * (lm.dep_q - half)
        self.top_ks = [sampling.top_k_main] * half + [sampling.top_k_other] * (lm.dep_q - half)
        vocab = lm.text_linear.out_features
        self.width = max([vocab if not 0 < sampling.top_k_text < vocab else sampling.top_k_text]
                         + [lm.card if not 0 < k < lm.card else k for k in self.top_ks])  # noise columns per stream

    def prefix(self, prompt: np.ndarray) -> np.ndarray:
        """The prompt as forced values per *step* (delays applied), UNSET where free."""
        K, T = prompt.shape
        out = np.full((K, T + self.max_delay if T else 0), UNSET, dtype=np.int64)
        for k, d in enumerate(self.lm.delays):
            out[k, d: d + T] = prompt[k]
        return out

    def run(self, items: Sequence[DecodeItem], batch_size: int) -> list[DecodeOutput]:
        """Outputs in item order; at most ``batch_size`` items share a forward."""
        if not items:
            return []
        L = self.limits
        B = max(1, min(batch_size, len(items)))
        prefixes = [self.prefix(it.prompt) for it in items]
        P = max(p.shape[1] for p in prefixes)
        S = max(len(it.script) for it in items) + 1
        H = max(it.prompt.shape[1] for it in items) + L.max_frames + L.tail_frames + self.max_delay + L.sync_every + 1

        # KV caches are sized by the attention context (3000 steps on Moshi 7B, ~1.5 GiB per item);
        # no item here is longer than H steps, so a window of H attends to exactly the same past.
        from moshi.modules.transformer import set_attention_context

        context = self.lm.context
        if context is not None and context > H:
            set_attention_context(self.lm.transformer, H)
        try:
            return self._run(items, prefixes, B, S, P, H)
        finally:
            set_attention_context(self.lm.transformer, context)

    def _run(self, items: Sequence[DecodeItem], prefixes: list[np.ndarray], B: int, S: int, P: int,
             H: int) -> list[DecodeOutput]:
        import torch
        from moshi.utils.compile import CUDAGraphed

        L = self.limits
        st = _Slots.allocate(B, self.K, S, P, H, self.initial, self.pad_id)
        pending = deque(range(len(items)))
        slot_item: list[int | None] = [None] * B
        results: list[DecodeOutput | None] = [None] * len(items)

        with torch.no_grad(), self.lm.streaming(B):
            # One CUDA graph per run (it binds this run's KV caches and slot buffers); on the CPU,
            # or with cuda_graph=False / NO_CUDA_GRAPH=1, a plain call.
            step = CUDAGraphed(lambda: self.step(st), disable=not self.cuda_graph or self.device.type != "cuda")
            for slot in range(B):
                if pending:
                    i = pending.popleft()
                    st.load(slot, items[i], prefixes[i], self.initial, self.pad_id)
                    slot_item[slot] = i
            n_steps = 0
            while any(s is not None for s in slot_item):
                step()
                n_steps += 1
                if n_steps % L.sync_every:
                    continue
                done_ok = (st.end_step >= 0) & (st.pos > st.end_step + L.tail_frames + self.max_delay)
                done_out = (st.pos - st.prompt_len) >= L.max_frames + self.max_delay
                finished = (done_ok | done_out).cpu().tolist()
                reset = torch.zeros(B, dtype=torch.bool, device=self.device)
                for slot, fin in enumerate(finished):
                    i = slot_item[slot]
                    if i is None or not fin:
                        continue
                    results[i] = st.collect(slot, len(items[i].script), L.tail_frames + self.max_delay + 1)
                    slot_item[slot] = None
                    if pending:
                        i = pending.popleft()
                        st.load(slot, items[i], prefixes[i], self.initial, self.pad_id)
                        slot_item[slot] = i
                        reset[slot] = True
                if bool(reset.any()):
                    self.lm.reset_streaming(reset)  # in place: the captured graph keeps its caches
        return [r for r in results if r is not None]

    def step(self, st: "_Slots") -> None:
        """One 80 ms step for every slot, entirely on the device and in place on ``st``.

        This is what gets CUDA-graphed, so it has fixed shapes, no host syncs and no Python
        branches on device values: "keep the model's pad, else force the next script token",
        prompt forcing and completion bookkeeping are all ``torch.where`` selections.
        """
        import torch

        lm, s = self.lm, self.sampling
        pos = st.pos
        inp = torch.where(pos[:, None] <= self.delays[None], self.initial[None], st.prev)  # [B, K]
        transformer_out, text_logits = lm.forward_text(inp[:, :, None])  # [B, 1, D], [B, 1, 1, V]
        logits = text_logits[:, 0, 0].float()
        if s.pad_bonus:
            logits[:, self.pad_id] += s.pad_bonus
        noise = hash_uniform(st.seeds, pos, self.K * self.width).view(-1, self.K, self.width)  # all streams at once
        proposed = sample(logits, s.temp_text, s.top_k_text, noise[:, 0])

        P = st.pref.shape[2]
        at = pos.clamp(max=P - 1)[:, None, None].expand(-1, self.K, 1)
        forced = torch.where((pos < P)[:, None], st.pref.gather(2, at)[:, :, 0], UNSET)  # [B, K]

        in_prompt = pos < st.prompt_len
        is_pad = (proposed == self.pad_id) | (proposed == self.end_pad_id)
        done = st.cursor >= st.length
        next_tok = st.script.gather(1, st.cursor.clamp(max=st.script.shape[1] - 1)[:, None])[:, 0]  # [B]
        text = torch.where(is_pad, proposed, torch.where(done, self.pad_id, next_tok))
        text = torch.where(in_prompt, forced[:, 0], text)
        advance = ~in_prompt & ~done & ~is_pad
        at_cursor = st.cursor.clamp(max=st.consumed.shape[1] - 1)[:, None]
        st.consumed.scatter_(1, at_cursor, torch.where(advance[:, None], pos[:, None], st.consumed.gather(1, at_cursor)))
        st.cursor += advance.long()
        st.end_step.copy_(torch.where(advance & (st.cursor >= st.length), pos, st.end_step))

        tokens = [text]
        last = text
        with lm.depformer.streaming(pos.shape[0]):
            for cb in range(lm.dep_q):
                cb_logits = lm.forward_depformer(cb, last[:, None, None], transformer_out)[:, 0, 0]
                tok = sample(cb_logits, self.temps[cb], self.top_ks[cb], noise[:, 1 + cb])
                f = forced[:, 1 + cb]
                tok = torch.where(f != UNSET, f, tok)
                tokens.append(tok)
                last = tok
        new = torch.stack(tokens, dim=1)  # [B, K]
        at_step = pos.clamp(max=st.hist.shape[2] - 1)[:, None, None].expand(-1, self.K, 1)
        st.hist.scatter_(2, at_step, new[:, :, None])
        st.prev.copy_(new)
        pos += 1


@dataclass
class _Slots:
    """Every slot's decoding state, in device buffers allocated once per run.

    A CUDA graph replays kernels on fixed addresses, so the step only ever writes into these
    tensors in place, and the host refills a finished slot by copying into them between steps.
    """

    pos: "torch.Tensor"  # [B] next step
    prev: "torch.Tensor"  # [B, K] the previous step's values (next step's input)
    seeds: "torch.Tensor"  # [B]
    script: "torch.Tensor"  # [B, S] forced tokens, pad-filled
    length: "torch.Tensor"  # [B] script length
    cursor: "torch.Tensor"  # [B] next script token
    end_step: "torch.Tensor"  # [B] step that forced the last script token (-1: not yet)
    prompt_len: "torch.Tensor"  # [B] prompt frames
    pref: "torch.Tensor"  # [B, K, P] prompt as forced values per step, UNSET where free
    hist: "torch.Tensor"  # [B, K, H] every step's values
    consumed: "torch.Tensor"  # [B, S] step that forced each script token (-1: never)

    @classmethod
    def allocate(cls, B: int, K: int, S: int, P: int, H: int, initial: "torch.Tensor", pad_id: int) -> "_Slots":
        import torch

        dev = initial.device

        def full(shape: tuple[int, ...], value: int) -> "torch.Tensor":
            return torch.full(shape, value, dtype=torch.long, device=dev)

        return cls(pos=full((B,), 0), prev=initial[None].repeat(B, 1), seeds=full((B,), 0), script=full((B, S), pad_id),
                   length=full((B,), 0), cursor=full((B,), 0), end_step=full((B,), -1), prompt_len=full((B,), 0),
                   pref=full((B, K, max(P, 1)), UNSET), hist=full((B, K, H), UNSET), consumed=full((B, S), -1))

    def load(self, slot: int, item: DecodeItem, prefix: np.ndarray, initial: "torch.Tensor", pad_id: int) -> None:
        """Start ``item`` in ``slot`` (host-side copies into the buffers; the LM's own streaming
        state for the slot is reset by the caller)."""
        import torch

        dev = self.pos.device
        self.pos[slot] = 0
        self.prev[slot] = initial
        self.seeds[slot] = int(item.seed)
        self.script[slot].fill_(pad_id)
        self.script[slot, : len(item.script)] = torch.as_tensor(item.script, dtype=torch.long, device=dev)
        self.length[slot] = len(item.script)
        self.cursor[slot] = 0
        self.end_step[slot] = -1
        self.prompt_len[slot] = item.prompt.shape[1]
        self.pref[slot].fill_(UNSET)
        self.pref[slot, :, : prefix.shape[1]] = torch.as_tensor(prefix, dtype=torch.long, device=dev)
        self.hist[slot].fill_(UNSET)
        self.consumed[slot].fill_(-1)

    def collect(self, slot: int, script_len: int, tail: int) -> DecodeOutput:
        """The finished item in ``slot``: its steps up to ``tail`` after the last script token
        (however late the completion check looked), or all of them when the budget ran out."""
        n = int(self.pos[slot])
        end = int(self.end_step[slot])
        if end >= 0:
            n = min(n, end + tail)
        return DecodeOutput(steps=self.hist[slot, :, :n].cpu().numpy(),
                            consumed_at=self.consumed[slot, :script_len].cpu().numpy(), complete=end >= 0)


def undelay(steps: np.ndarray, delays: Sequence[int]) -> np.ndarray:
    """Delayed streams ``[K, n]`` → frames ``[K, n - max(delays)]`` (frame ``f`` of stream ``k`` was
    produced at step ``f + delays[k]``)."""
    d = max(delays)
    n = steps.shape[1] - d
    if n <= 0:
        return np.zeros((steps.shape[0], 0), dtype=steps.dtype)
    return np.stack([steps[k, dk: dk + n] for k, dk in enumerate(delays)])
