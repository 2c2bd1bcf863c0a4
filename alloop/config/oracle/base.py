"""What every oracle config has (how labels derive from answers), and what people's oracles share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alloop.config.base import Section

LabelRule = Literal["latest", "majority", "dawid-skene"]


class OracleBase(Section):
    """The fields of every ``oracle.kind``: they concern the answers, not who gives them."""

    label_rule: LabelRule = Field(
        "latest", description="latest | majority | dawid-skene: how labels derive from answers"
    )
    unanswered: Literal["reoffer", "release"] = Field(
        "reoffer", description="items nobody answered: reoffer next round, or release to the pool"
    )


class PeopleBase(OracleBase):
    """What people see and how long a round waits for them (terminal, files, web, Label Studio)."""

    show_prediction: bool = Field(True, description="people: show the model's prediction")
    show_score: bool = Field(True, description="people: show the query score")
    min_share: float = Field(1.0, ge=0.0, le=1.0, description="people: share of a batch to wait for")
    timeout: float | None = Field(None, ge=0.0, description="people: seconds to wait for answers")
