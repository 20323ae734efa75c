"""`auditwatch score --scores` lines: one batched dump, split at record boundaries."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from detector.offline import score_lines

HOSTILE_IDS = [
    'a},{"event_id":"b',  # the boundary itself, inside an id
    '"},{"event_id":',
    "back\\slash",
    "new\nline",
    "tab\tand\u0000nul",
    "ünïcødé 🚀",
    "",
]


def one_call_per_event(scores: list[tuple[str, str, float]]) -> bytes:
    """The obvious writer that score_lines must match byte for byte."""
    line = orjson.OPT_APPEND_NEWLINE
    return b"".join(
        orjson.dumps({"event_id": e, "model": m, "score": round(s, 3)}, option=line)
        for e, m, s in scores
    )


def test_hostile_event_ids_stay_one_record_per_line() -> None:
    scores = [(eid, "cloudtrail-access", 12.34567) for eid in HOSTILE_IDS]
    out = score_lines(scores)
    assert out == one_call_per_event(scores)
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["event_id"] for r in rows] == HOSTILE_IDS
    assert {r["score"] for r in rows} == {12.346}


def test_no_scores_write_nothing() -> None:
    assert score_lines([]) == b""


@given(
    st.lists(
        st.tuples(
            st.text(),
            st.sampled_from(["cloudtrail-access", "ecs-access", "inference"]),
            st.floats(min_value=0, max_value=100),
        ),
        max_size=30,
    )
)
def test_matches_one_dump_per_event(scores: list[tuple[str, str, float]]) -> None:
    assert score_lines(scores) == one_call_per_event(scores)
