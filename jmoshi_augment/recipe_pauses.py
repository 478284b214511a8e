"""Recipe keys of the pauses that hold the floor (issue 26), kept apart from
:mod:`.recipe_sections` so that section stays readable: :class:`HoldScriptKeys` joins the
``script:`` section, :class:`HoldTimingKeys` the ``timing:`` section. Every default cites its
source; the calibration runs are in bench/RESULTS.md ("Turn-taking")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HoldScriptKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hesitation and planning pauses inside sentences (augment/text/holds.py): people pause at
    # phrase (bunsetsu) and clause boundaries, after fillers and before content words, more often
    # the longer they have talked since the last pause; pause units in Japanese dialogue average
    # 5.89 morphemes, about 60 % of an utterance (Seligman et al. 1997), and Japanese hold pauses
    # are long and widely spread (Inoue et al. 2024). A hold's chance at a point is its kind's
    # probability times the share of hold_unit_morae said since the speaker's last hold (a filler's
    # in full: a filler announces the pause, Watanabe et al. 2021). Calibrated so `stats` measures
    # 8-13 pauses/min (human reference 10.4) and a shift share at silences > 250 ms of 0.40-0.65
    # (human 0.54; Inoue et al. 2024: 42.9 %) with the kokoro voices (bench/RESULTS.md).
    hold_unit_morae: float = Field(20.0, gt=0, description="Morae since the last hold at which a boundary's hold chance is full.")
    hold_prob_clause: float = Field(0.5, ge=0, le=1, description="P(hold pause) at a clause end (connective particle: けど, から, て).")
    hold_prob_phrase: float = Field(0.3, ge=0, le=1, description="P(hold pause) at a phrase (bunsetsu) end before a content word.")
    hold_prob_filler: float = Field(0.6, ge=0, le=1, description="P(hold pause) after a filler.")
    # Mid-sentence fillers: あの and その sit inside clauses, えーと at clause boundaries (Watanabe &
    # Shirahata 2019, CSJ; Kawada 2010: demonstrative-type fillers); 40-65 % of sentences in free
    # dialogue hold a filler (Murakami et al. 1995), opening ones (filler_rate) included.
    mid_filler_rate: float = Field(0.15, ge=0, le=1, description="Probability that a sentence gets a filler at one of its phrase boundaries.")
    mid_fillers: dict[str, float] = Field(
        {"あの": 3, "えーと": 2, "その": 1},
        description="Mid-sentence fillers and their relative weights.",
    )


class HoldTimingKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hold pauses (the pauses the script plans inside sentences, script.hold_*): Japanese hold
    # pauses are long and widely dispersed (Inoue et al. 2024, Fig. 4), with a tail past 1 s; a
    # log-normal with median 0.45 s and sigma 0.5 puts about 5 % of them over 1 s.
    hold_pause_median: float = Field(0.45, gt=0, description="Median hold pause, s (log-normal).")
    hold_pause_sigma: float = Field(0.5, gt=0, description="Log-normal sigma of hold pauses.")
    hold_pause_min: float = Field(0.25, gt=0, description="Shortest hold pause, s (above the 200 ms IPU threshold).")
    hold_pause_max: float = Field(2.5, gt=0, description="Longest hold pause, s.")
    # Lapses: speaker changes after more than 1 s of silence (Jefferson's standard maximum), 4.9 %
    # of the speaker changes in the human reference (docs/turn-taking.md); the gap mixture alone
    # gives almost none. A share of the gaps is drawn from this log-normal instead.
    lapse_prob: float = Field(0.05, ge=0, le=1, description="Share of gaps that are lapses.")
    lapse_median: float = Field(1.4, gt=0, description="Median lapse, s (log-normal with gap_sigma).")
    lapse_min: float = Field(1.15, gt=0, description="Shortest lapse, s (heard over 1 s).")
    lapse_max: float = Field(3.0, gt=0, description="Longest lapse, s.")
    # Clean edges: every stretch of sound of a channel (where a placed piece starts or ends, where
    # the planner cut, where a TTS clip holds digital silence) fades in and out over this long, so
    # no channel steps from silence to sound (a step is an audible click and a broadband line in the
    # user channel's tokens; issue 26 counted steps above -26 dBFS at 18 % of the sample's onsets).
    # Cuts land at low points; a Hann ramp of 12 ms holds the first millisecond under 1.7 % of the
    # signal, so it stays below -40 dBFS (8 ms, 3.8 %, left 2 of 373 onsets of the kokoro sample above).
    edge_fade: float = Field(0.012, ge=0, le=0.05, description="Fade at both ends of every stretch of sound, s.")

    @model_validator(mode="after")
    def _check_holds(self) -> "HoldTimingKeys":
        check_min_median_max(self, "hold_pause", "lapse")
        return self


def check_min_median_max(keys: BaseModel, *names: str) -> None:
    """Each clipped log-normal's ``NAME_min <= NAME_median <= NAME_max``, checked in order; the
    first that fails raises the ValueError pydantic reports against the section."""
    for name in names:
        low, median, high = (getattr(keys, f"{name}_{end}") for end in ("min", "median", "max"))
        if not low <= median <= high:
            raise ValueError(f"need {name}_min <= {name}_median <= {name}_max")
