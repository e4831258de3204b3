"""Analytics per rule and ISO week of issue: cards shown, accepted, overridden, override reasons.

Counted in SQL by distinct card, so that a card carrying several findings of one rule (R17's specialties) or
receiving the same outcome twice counts once. Feedback is counted in the week its card was issued (a cohort: the
acceptance rate of week W is about the cards of week W, however late the feedback came).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, distinct, false, func, select
from sqlalchemy.orm import Session

from .records import RuleWeek, WeeklyStats
from .schema import CardFinding, FeedbackRecord, IssuedCard


def weekly_stats(session: Session, since: datetime, until: datetime) -> WeeklyStats:
    cards = distinct(IssuedCard.uuid)
    rule, week = CardFinding.rule_id, IssuedCard.iso_week
    in_period = and_(IssuedCard.issued_at >= since, IssuedCard.issued_at < until)
    joined = select().select_from(IssuedCard).join(CardFinding, CardFinding.card_uuid == IssuedCard.uuid)
    with_feedback = joined.join(
        FeedbackRecord, and_(FeedbackRecord.card_uuid == IssuedCard.uuid, FeedbackRecord.known_card)
    )

    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    held = IssuedCard.held_back
    shown = joined.add_columns(rule, week, IssuedCard.silent, held, func.count(cards)).where(in_period)
    for rule_id, iso_week, silent, why, n in session.execute(shown.group_by(rule, week, IssuedCard.silent, held)):
        kind = "issued" if not silent else "suppressed" if why in ("dismissed", "repeat") else "silent"
        counts[rule_id, iso_week][kind] += n
    outcomes = with_feedback.add_columns(rule, week, FeedbackRecord.outcome, func.count(cards)).where(in_period)
    for rule_id, iso_week, outcome, n in session.execute(outcomes.group_by(rule, week, FeedbackRecord.outcome)):
        counts[rule_id, iso_week][outcome] += n
    code = func.coalesce(FeedbackRecord.override_code, "")
    overrides = with_feedback.add_columns(rule, week, code, func.count(cards)).where(
        in_period, FeedbackRecord.outcome == "overridden"
    )
    for rule_id, iso_week, reason, n in session.execute(overrides.group_by(rule, week, code)):
        reasons[rule_id, iso_week][reason] = n

    unknown = (
        select(FeedbackRecord.iso_week, func.count())
        .where(FeedbackRecord.known_card == false())
        .where(FeedbackRecord.received_at >= since, FeedbackRecord.received_at < until)
        .group_by(FeedbackRecord.iso_week)
    )
    return WeeklyStats(
        rules=[
            RuleWeek(
                rule_id=rule_id,
                week=iso_week,
                issued=c["issued"],
                silent=c["silent"],
                accepted=c["accepted"],
                overridden=c["overridden"],
                override_reasons=dict(sorted(reasons[rule_id, iso_week].items())),
                suppressed=c["suppressed"],
            )
            for (rule_id, iso_week), c in sorted(counts.items(), key=lambda item: (item[0][1], item[0][0]))
        ],
        unknown_card_feedback={iso_week: n for iso_week, n in session.execute(unknown)},
    )
