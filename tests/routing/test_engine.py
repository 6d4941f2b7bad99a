"""The routing engine: decision tables, and properties over random states checked against
a brute-force reference that scans every agent."""

from __future__ import annotations

from contextlib import closing
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.durations import parse_duration
from routing.engine import Engine, Need, Skip, ineligible, queue_order
from routing.index import AgentIndex, AgentState
from routing.language import detect_language
from routing.rules import EscalationStep, Match, Requirements, Rule, classify, effective

CHANNELS = ("webchat", "zalo", "facebook", "email")


def agent(
    aid: str,
    presence: str = "online",
    *,
    cap: dict[str, int] | None = None,
    load: dict[str, int] | None = None,
    skills: dict[str, int] | None = None,
    languages: tuple[str, ...] = (),
    last: float = 0.0,
) -> AgentState:
    return AgentState(
        id=aid,
        presence=presence,
        skills=skills or {},
        languages=frozenset(languages),
        capacity=cap if cap is not None else {"total": 3},
        load=dict(load or {}),
        last_assigned_at=last,
    )


def index_of(*agents: AgentState) -> AgentIndex:
    idx = AgentIndex(CHANNELS)
    for a in agents:
        idx.put(a)
    return idx


def req(skills: dict[str, int] | None = None, language: str | None = None) -> Requirements:
    return Requirements(skills=tuple(sorted((skills or {}).items())), language=language)


ENGINE = Engine(sticky_window=3600)


@pytest.mark.parametrize(
    ("agents", "need", "chosen", "reasons"),
    [
        pytest.param(
            [agent("a"), agent("b", load={"webchat": 1})],
            Need("c", "webchat"),
            "a",
            {"b": "higher_load"},
            id="lowest-load",
        ),
        pytest.param(
            [agent("a", "offline"), agent("b", "away")],
            Need("c", "webchat"),
            None,
            {"a": "offline", "b": "away"},
            id="nobody-online",
        ),
        pytest.param(
            [agent("a", load={"zalo": 3})],
            Need("c", "webchat"),
            None,
            {"a": "at_capacity"},
            id="total-capacity",
        ),
        pytest.param(
            [agent("a", cap={"webchat": 1, "total": 5}, load={"webchat": 1}), agent("b")],
            Need("c", "webchat"),
            "b",
            {"a": "at_capacity"},
            id="channel-capacity",
        ),
        pytest.param(
            [agent("a", cap={"email": 0, "total": 5}), agent("b")],
            Need("c", "email"),
            "b",
            {"a": "at_capacity"},
            id="channel-closed",
        ),
        pytest.param(
            [agent("a"), agent("b")],
            Need("c", "webchat", excluded=frozenset({"a"})),
            "b",
            {"a": "excluded"},
            id="excluded",
        ),
        pytest.param(
            [agent("a", skills={"billing": 2}), agent("b")],
            Need("c", "zalo", req({"billing": 1})),
            "a",
            {"b": "missing_skill"},
            id="skill",
        ),
        pytest.param(
            [
                agent("a", skills={"billing": 2}),
                agent("b", skills={"billing": 3}, load={"zalo": 2}),
            ],
            Need("c", "zalo", req({"billing": 3})),
            "b",
            {"a": "skill_level"},
            id="skill-level-beats-load",
        ),
        pytest.param(
            [agent("a", skills={"billing": 3, "vip": 1}), agent("b", skills={"billing": 3})],
            Need("c", "zalo", req({"billing": 2, "vip": 1})),
            "a",
            {"b": "missing_skill"},
            id="every-skill",
        ),
        pytest.param(
            [agent("a", languages=("en",)), agent("b", languages=("vi", "en"))],
            Need("c", "zalo", req(language="vi")),
            "b",
            {"a": "language"},
            id="language",
        ),
        pytest.param(
            [agent("a"), agent("b", languages=("en",))],
            Need("c", "zalo", req(language="vi")),
            "a",
            {"b": "language"},
            id="no-languages-speaks-any",
        ),
        pytest.param(
            [agent("a", last=5.0), agent("b", last=1.0)],
            Need("c", "webchat"),
            "b",
            {"a": "higher_load"},
            id="longest-idle",
        ),
        pytest.param(
            [agent("b"), agent("a")],
            Need("c", "webchat"),
            "a",
            {"b": "higher_load"},
            id="stable-order",
        ),
        pytest.param(
            [
                agent("a", cap={"total": 4}, load={"zalo": 2}),
                agent("b", cap={"total": 2}, load={"zalo": 1}),
            ],
            Need("c", "zalo"),
            "a",
            {"b": "higher_load"},
            id="ratio-not-count",
        ),
        pytest.param([agent("a", cap={})], Need("c", "webchat"), "a", {}, id="no-limits"),
    ],
)
def test_decision_table(
    agents: list[AgentState], need: Need, chosen: str | None, reasons: dict[str, str]
) -> None:
    decision = ENGINE.decide(index_of(*agents), need, now=100.0)
    assert decision.agent_id == chosen
    assert {s.agent_id: s.reason for s in decision.skipped} == reasons
    explained = decision.explain()
    assert explained["agent_id"] == chosen
    assert explained["why"]


@pytest.mark.parametrize(
    ("sticky_at", "sticky_state", "chosen", "why"),
    [
        (90.0, {}, "s", "sticky"),
        (-5000.0, {}, "a", "lowest"),  # outside the window
        (90.0, {"presence": "offline"}, "a", "lowest"),
        (90.0, {"load": {"webchat": 3}}, "a", "lowest"),
    ],
)
def test_stickiness(
    sticky_at: float, sticky_state: dict[str, object], chosen: str, why: str
) -> None:
    sticky = agent("s", load={"webchat": 2})
    for key, value in sticky_state.items():
        setattr(sticky, key, value)
    decision = ENGINE.decide(
        index_of(agent("a"), sticky),
        Need("c", "webchat", sticky_agent="s", sticky_at=sticky_at),
        now=100.0,
    )
    assert decision.agent_id == chosen
    assert decision.why.startswith(why)
    if chosen != "s":
        assert decision.skipped[0].agent_id == "s"


def test_stickiness_off_when_window_is_zero() -> None:
    decision = Engine(sticky_window=0).decide(
        index_of(agent("a"), agent("s", load={"webchat": 1})),
        Need("c", "webchat", sticky_agent="s", sticky_at=99.0),
        now=100.0,
    )
    assert decision.agent_id == "a"


LADDER = (
    EscalationStep(after=60, min_level=2),
    EscalationStep(after=180, skills={"support": 1}),
    EscalationStep(after=600, any_agent=True),
)


@pytest.mark.parametrize(
    ("waited", "chosen", "step"),
    [(0, None, 0), (59, None, 0), (60, "level2", 1), (180, "team", 2), (600, "anyone", 3)],
)
def test_escalation_ladder(waited: float, chosen: str | None, step: int) -> None:
    idx = index_of(
        agent("level2", skills={"billing": 2}, load={"zalo": 2}),
        agent("team", skills={"support": 1}, load={"zalo": 1}),
        agent("anyone", languages=("en",)),
    )
    need = Need("c", "zalo", req({"billing": 3}, language="vi"), ladder=LADDER, queued_at=0.0)
    decision = ENGINE.decide(idx, need, now=waited)
    assert (decision.agent_id, decision.step) == (chosen, step)


def test_effective_requirements_relax_in_order() -> None:
    base = req({"billing": 3, "vip": 2}, language="vi")
    assert effective(base, LADDER, 61) == (req({"billing": 2, "vip": 2}, language="vi"), 1)
    assert effective(base, LADDER, 200) == (req({"support": 1}, language="vi"), 2)
    assert effective(base, (EscalationStep(after=1, drop_language=True),), 5)[0].language is None


def test_queue_order() -> None:
    needs = [
        Need("old-low", "webchat", priority=0, queued_at=1),
        Need("new-high", "webchat", priority=5, queued_at=9),
        Need("mid-low", "webchat", priority=0, queued_at=5),
        Need("a-tie", "webchat", priority=0, queued_at=5),
    ]
    assert [n.conversation_id for n in queue_order(needs)] == [
        "new-high",
        "old-low",
        "a-tie",
        "mid-low",
    ]
    decisions = ENGINE.dispatch(index_of(agent("x", cap={"total": 2})), needs, now=10)
    assert [(d.conversation_id, d.agent_id) for d in decisions] == [
        ("new-high", "x"),
        ("old-low", "x"),
        ("a-tie", None),
        ("mid-low", None),
    ]


def test_large_teams_are_explained_by_counts() -> None:
    idx = AgentIndex(CHANNELS)
    for i in range(300):
        idx.put(
            agent(
                f"a{i:03d}",
                "online" if i % 3 else "offline",
                skills={"billing": 1} if i % 2 else {},
            )
        )
    decision = ENGINE.decide(idx, Need("c", "webchat", req({"billing": 1})), now=1.0)
    assert decision.agent_id is not None
    assert decision.skipped_counts["offline"] == 100
    assert len(decision.skipped) <= 200


# --- rules and language ------------------------------------------------------------------

RULES = [
    Rule(name="vip", match=Match(contact={"vip": True}), skills={"vip": 1}, priority=9),
    Rule(
        name="billing",
        match=Match(keywords=["hoá đơn", "thanh toán", "invoice"]),
        skills={"billing": 3},
        priority=5,
    ),
    Rule(
        name="zalo-en", match=Match(channels=["zalo"], languages=["en"]), language="en", priority=3
    ),
    Rule(name="tier", match=Match(contact={"tier": ["gold", "platinum"]}), priority=4),
]


@pytest.mark.parametrize(
    ("channel", "text", "attributes", "rule", "language", "priority"),
    [
        ("web", "Cho mình hỏi về Hóa Đơn VAT", {}, "billing", "vi", 5),
        ("web", "cho minh hoi ve hoa don", {}, "billing", "vi", 5),
        ("web", "THANH TOÁN bị lỗi", {}, "billing", "vi", 5),
        ("web", "hoá đơnx là gì", {}, None, "vi", 0),  # whole words only
        ("web", "two invoices please", {}, None, "en", 0),
        ("web", "Where is my invoice?", {"vip": True}, "vip", "en", 9),
        ("zalo", "hello I need help", {}, "zalo-en", "en", 3),
        ("web", "hello I need help", {}, None, "en", 0),
        ("web", "xin chào", {"tier": "gold"}, "tier", "vi", 4),
        ("web", "xin chào", {"tier": "bronze"}, None, "vi", 0),
    ],
)
def test_rules(
    channel: str,
    text: str,
    attributes: dict[str, object],
    rule: str | None,
    language: str | None,
    priority: int,
) -> None:
    c = classify(
        RULES,
        [],
        channel_id=channel,
        channel_type="zalo" if channel == "zalo" else "webchat",
        text=text,
        declared_language=None,
        attributes=attributes,
    )  # type: ignore[arg-type]
    assert (c.rule, c.language, c.priority) == (rule, language, priority)


def test_declared_language_wins() -> None:
    c = classify(
        [],
        [],
        channel_id="w",
        channel_type="webchat",
        text="xin chào",
        declared_language="en",
        attributes={},
    )
    assert c.language == "en"
    assert c.requirements.language == "en"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Xin chào, tôi cần hỗ trợ đơn hàng", "vi"),
        ("cho minh hoi don hang cua minh den dau roi", "vi"),
        ("shop oi con size M khong", "vi"),
        ("Hello, where is my order?", "en"),
        ("I want to return this", "en"),
        ("ok", None),
        ("12345 !!!", None),
        ("Bonjour", None),
        ("", None),
    ],
)
def test_language_detection(text: str, language: str | None) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 1.5h ", 5400.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "-3", -3, True, "5m abc", None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_rules_reject_unordered_ladders() -> None:
    with pytest.raises(ValueError, match="in order"):
        Rule(name="x", escalation=[EscalationStep(after=60), EscalationStep(after=30)])


# --- properties against a brute-force reference -------------------------------------------


def reference(agents: dict[str, AgentState], need: Need, now: float, window: float) -> str | None:
    """The decision rule written the slow, obvious way."""
    requirements, _ = effective(need.base, need.ladder, now - need.queued_at)
    if (
        need.sticky_agent in agents
        and need.sticky_at is not None
        and window > 0
        and now - need.sticky_at <= window
        and ineligible(agents[need.sticky_agent], requirements, need.channel_type, need.excluded)
        is None
    ):
        return need.sticky_agent
    eligible = [
        a
        for a in agents.values()
        if ineligible(a, requirements, need.channel_type, need.excluded) is None
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda a: (a.ratio(need.channel_type), a.last_assigned_at, a.id)).id


AGENT_IDS = [f"ag{i}" for i in range(10)]
SKILLS = ["billing", "tech", "vip"]

agents_st = st.lists(
    st.builds(
        AgentState,
        id=st.sampled_from(AGENT_IDS),
        presence=st.sampled_from(["online", "online", "away", "offline"]),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3),
        languages=st.frozensets(st.sampled_from(["vi", "en"]), max_size=2),
        capacity=st.dictionaries(
            st.sampled_from(["webchat", "zalo", "total"]), st.integers(0, 4), max_size=3
        ),
        load=st.dictionaries(st.sampled_from(["webchat", "zalo"]), st.integers(0, 3), max_size=2),
        last_assigned_at=st.floats(0, 100),
    ),
    max_size=10,
    unique_by=lambda a: a.id,
)
need_st = st.builds(
    Need,
    conversation_id=st.uuids().map(str),
    channel_type=st.sampled_from(["webchat", "zalo"]),
    base=st.builds(
        Requirements,
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 4), max_size=2).map(
            lambda d: tuple(sorted(d.items()))
        ),
        language=st.sampled_from([None, "vi", "en"]),
    ),
    ladder=st.sampled_from([(), LADDER]),
    priority=st.integers(0, 10),
    queued_at=st.floats(0, 1000),
    excluded=st.frozensets(st.sampled_from(AGENT_IDS), max_size=3),
    sticky_agent=st.one_of(st.none(), st.sampled_from(AGENT_IDS)),
    sticky_at=st.one_of(st.none(), st.floats(0, 2000)),
)
ops_st = st.lists(
    st.one_of(
        st.tuples(
            st.just("presence"),
            st.sampled_from(AGENT_IDS),
            st.sampled_from(["online", "away", "offline"]),
        ),
        st.tuples(st.just("capacity"), st.sampled_from(AGENT_IDS), st.integers(0, 4)),
        st.tuples(
            st.just("release"), st.sampled_from(AGENT_IDS), st.sampled_from(["webchat", "zalo"])
        ),
        st.tuples(
            st.just("skills"),
            st.sampled_from(AGENT_IDS),
            st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 5), max_size=3),
        ),
    ),
    max_size=12,
)


def clone(agents: list[AgentState]) -> list[AgentState]:
    return [
        AgentState(
            a.id,
            a.presence,
            dict(a.skills),
            a.languages,
            dict(a.capacity),
            dict(a.load),
            a.last_assigned_at,
        )
        for a in agents
    ]


@settings(max_examples=400, deadline=None)
@given(agents_st, st.lists(need_st, max_size=12), ops_st, st.floats(1000, 3000))
def test_index_decisions_equal_the_brute_force_reference(
    agents: list[AgentState], needs: list[Need], ops: list[tuple[str, str, object]], now: float
) -> None:
    engine = Engine(sticky_window=1500)
    idx = index_of(*clone(agents))
    ref = {a.id: a for a in clone(agents)}
    for op, agent_id, value in ops:  # changes after the index was built must be tracked too
        if agent_id not in ref:
            continue
        if op == "presence":
            idx.update(agent_id, presence=str(value))
            ref[agent_id].presence = str(value)
        elif op == "capacity":
            idx.update(agent_id, capacity={"total": int(value)})  # type: ignore[call-overload]
            ref[agent_id].capacity = {"total": int(value)}  # type: ignore[call-overload]
        elif op == "skills":
            idx.update(agent_id, skills=value)  # type: ignore[arg-type]
            ref[agent_id].skills = {k: v for k, v in value.items() if v >= 1}  # type: ignore[attr-defined]
        else:
            idx.release(agent_id, str(value))
            current = ref[agent_id].load.get(str(value), 0)
            if current <= 1:
                ref[agent_id].load.pop(str(value), None)
            else:
                ref[agent_id].load[str(value)] = current - 1
        idx.check()
    for need in queue_order(needs):
        expected = reference(ref, need, now, 1500)
        decision = engine.decide(idx, need, now, explain=False)
        assert decision.agent_id == expected
        if expected is not None:
            chosen = ref[expected]
            assert chosen.presence == "online"
            assert expected not in need.excluded
            assert chosen.has_room(need.channel_type)
            idx.assign(expected, need.channel_type, now)
            chosen.load[need.channel_type] = chosen.load.get(need.channel_type, 0) + 1
            chosen.last_assigned_at = now
        idx.check()


@settings(max_examples=300, deadline=None)
@given(agents_st, st.lists(need_st, max_size=15), st.floats(1000, 3000))
def test_dispatch_properties(agents: list[AgentState], needs: list[Need], now: float) -> None:
    engine = Engine(sticky_window=1500)
    before = {a.id: (a.total_load, dict(a.load)) for a in agents}
    idx = index_of(*clone(agents))
    decisions = engine.dispatch(idx, needs, now, explain=set())
    by_id = {n.conversation_id: n for n in needs}
    # never over capacity: an agent only gains conversations while it has room
    for a in idx.agents.values():
        gained = a.total_load - before[a.id][0]
        if gained and "total" in a.capacity:
            assert a.total_load <= max(a.capacity["total"], before[a.id][0])
    # queue order: a waiting conversation was never passed over for a later one with
    # exactly the same needs
    waiting: set[tuple[object, ...]] = set()
    for d in decisions:
        n = by_id[d.conversation_id]
        key = (
            n.channel_type,
            effective(n.base, n.ladder, now - n.queued_at)[0],
            n.excluded,
            n.sticky_agent,
        )
        if d.agent_id is None:
            waiting.add(key)
        else:
            assert key not in waiting
    # stickiness honoured when the sticky agent was eligible at its turn: checked in the
    # reference test; here, the same state always gives the same answer
    again = engine.dispatch(index_of(*clone(agents)), list(reversed(needs)), now, explain=set())
    assert [(d.conversation_id, d.agent_id) for d in again] == [
        (d.conversation_id, d.agent_id) for d in decisions
    ]


def test_putting_an_agent_again_leaves_no_stale_entry() -> None:
    idx = index_of(agent("a", cap={"total": 1}))
    idx.put(agent("a", cap={"total": 1}, load={"sms": 1}))
    idx.check()
    assert idx.available("sms") == 0
    assert idx.available("webchat") == 0


def test_level_zero_skills_are_no_skills() -> None:
    idx = index_of(agent("a", skills={"x": 0, "y": 2}))
    idx.assign("a", "webchat", 1.0)
    idx.release("a", "webchat")
    idx.check()
    assert idx.agents["a"].skills == {"y": 2}
    assert idx.available("webchat", "x") == 0


def test_large_team_explanations_add_up() -> None:
    idx = AgentIndex(CHANNELS)
    for i in range(300):
        idx.put(agent(f"a{i:03d}", load={"webchat": 3} if i < 100 else {}))
    decision = ENGINE.decide(idx, Need("c", "webchat"), now=1.0)
    assert decision.agent_id is not None
    assert decision.skipped_counts["at_capacity_or_missing_skill"] == 100
    assert sum(decision.skipped_counts.values()) == 299
    sticky = AgentIndex(CHANNELS)
    for i in range(250):
        sticky.put(agent(f"a{i:03d}", skills={"billing": 1 if i == 7 else 3}))
    need = Need("c", "webchat", req({"billing": 2}), sticky_agent="a007", sticky_at=0.5)
    explained = ENGINE.decide(sticky, need, now=1.0)
    assert [s.agent_id for s in explained.skipped].count("a007") == 1
    assert sum(explained.skipped_counts.values()) == 249


def test_an_escalation_step_applies_at_its_exact_moment() -> None:
    step = EscalationStep(after=60, any_agent=True)
    queued_at = 1_700_000_000.1
    assert effective(req({"x": 5}), (step,), (queued_at + 60) - queued_at)[1] == 1


def naive_candidates(idx: AgentIndex, channel: str, skill: str | None, level: int) -> list[str]:
    found = [
        a
        for a in idx.agents.values()
        if a.presence == "online"
        and a.has_room(channel)
        and (skill is None or a.skills.get(skill, 0) >= level)
    ]
    found.sort(key=lambda a: (a.ratio(channel), a.last_assigned_at, a.id))
    return [a.id for a in found]


@settings(max_examples=150, deadline=None)
@given(
    agents_st,
    st.lists(
        st.tuples(
            st.sampled_from(["assign", "release", "presence"]),
            st.sampled_from(AGENT_IDS),
            st.sampled_from(["webchat", "zalo"]),
        ),
        min_size=50,
        max_size=400,
    ),
    st.sampled_from([None, *SKILLS]),
    st.integers(1, 5),
)
def test_candidates_come_in_choice_order_through_many_changes(
    agents: list[AgentState],
    ops: list[tuple[str, str, str]],
    skill: str | None,
    level: int,
) -> None:
    # Hundreds of changes leave stale heap entries behind and force compactions; the walk
    # must still give exactly the available agents, best first, at every moment.
    idx = index_of(*clone(agents))
    for step, (op, agent_id, channel) in enumerate(ops):
        if agent_id not in idx.agents:
            continue
        if op == "assign":
            if idx.agents[agent_id].has_room(channel):
                idx.assign(agent_id, channel, float(step))
        elif op == "release":
            idx.release(agent_id, channel)
        else:
            online = idx.agents[agent_id].presence == "online"
            idx.update(agent_id, presence="away" if online else "online")
        for ch in ("webchat", "zalo"):
            # a walk stopped early gives back what it took
            with closing(idx.candidates(ch, skill, level)) as partial:
                first = [a.id for a in islice(partial, step % 4)]
            walked = [a.id for a in idx.candidates(ch, skill, level)]
            assert walked[: len(first)] == first
            assert walked == naive_candidates(idx, ch, skill, level)
            assert idx.available(ch, skill, level) == len(walked)
    idx.check()


def test_compaction_keeps_heaps_bounded() -> None:
    idx = index_of(*(agent(f"a{i}", cap={"total": 2000}, skills={"x": 2}) for i in range(5)))
    for step in range(5000):
        idx.assign(f"a{step % 5}", "webchat", float(step))
    idx.check()
    for key, heap in idx._heaps.items():
        assert len(heap) <= 3 * idx._counts[key] + 64, key
    assert [a.id for a in idx.candidates("webchat", "x", 2)] == ["a0", "a1", "a2", "a3", "a4"]


def test_dispatch_stops_after_its_limit_of_assignments() -> None:
    idx = index_of(agent("a", cap={"total": 10}), agent("b", cap={"total": 10}))
    needs = [Need(f"c{i}", "webchat", queued_at=float(i)) for i in range(6)]
    decisions = ENGINE.dispatch(idx, needs, 100.0, explain=set(), limit=4, ordered=True)
    assert [d.conversation_id for d in decisions] == ["c0", "c1", "c2", "c3"]
    assert all(d.agent_id is not None for d in decisions)
    assert sum(a.total_load for a in idx.agents.values()) == 4


@pytest.mark.parametrize(
    ("sticky", "group"),
    [
        ({"presence": "offline"}, "sticky_offline"),
        ({"load": {"webchat": 3}, "skills": {"billing": 3}}, "sticky_at_capacity"),
        ({"skills": {}}, "sticky_missing_skill"),
        ({"skills": {"billing": 1}}, "sticky_skill_level"),
        ({"skills": {"billing": 3}}, None),  # eligible: chosen
    ],
)
def test_large_team_counts_name_the_sticky_agent_once(
    sticky: dict[str, object], group: str | None
) -> None:
    idx = AgentIndex(CHANNELS)
    for i in range(260):
        skills = {"billing": 1 + i % 3} if i % 4 else {}
        idx.put(agent(f"a{i:03d}", skills=skills, load={"webchat": 3} if i % 7 == 0 else {}))
    idx.put(agent("s", **sticky))  # type: ignore[arg-type]
    need = Need("c", "webchat", req({"billing": 2}), sticky_agent="s", sticky_at=0.5)
    decision = ENGINE.decide(idx, need, now=1.0)
    assert decision.agent_id is not None
    if group is None:
        assert decision.agent_id == "s"  # sticky: nobody else was looked at
    else:
        assert sum(decision.skipped_counts.values()) == len(idx.agents) - 1
        assert decision.skipped_counts[group] == 1
        assert [s.agent_id for s in decision.skipped].count("s") == 1


def test_a_reused_explanation_never_hides_a_sticky_agent() -> None:
    # Found by the property below: a need naming an agent without a time to be sticky
    # from shared its explanation with a later need for which that agent was sticky.
    engine = Engine(sticky_window=1500)
    plain = Need("a", "zalo", sticky_agent="ag0", sticky_at=None)
    sticky = Need("b", "zalo", sticky_agent="ag0", sticky_at=0.0, queued_at=1.0)
    decisions = engine.dispatch(index_of(), [plain, sticky], 1000.0)
    assert decisions[1].skipped == (Skip("ag0", "sticky_unknown"),)
    assert decisions[1] == engine.decide(index_of(), sticky, 1000.0)


@settings(max_examples=200, deadline=None)
@given(agents_st, st.lists(need_st, max_size=15), st.floats(1000, 3000))
def test_dispatch_explains_each_decision_as_a_fresh_decision_would(
    agents: list[AgentState], needs: list[Need], now: float
) -> None:
    # Dispatch keeps each agent's reasons between decisions and works out again only
    # those of agents assigned in between: the explanations must not differ from a
    # decision made from scratch on the same state.
    engine = Engine(sticky_window=1500)
    idx = index_of(*clone(agents))
    decisions = engine.dispatch(idx, needs, now)
    replay = index_of(*clone(agents))
    by_id = {n.conversation_id: n for n in needs}
    for d in decisions:
        fresh = engine.decide(replay, by_id[d.conversation_id], now)
        assert (fresh.agent_id, fresh.skipped, fresh.skipped_counts) == (
            d.agent_id,
            d.skipped,
            d.skipped_counts,
        )
        if fresh.agent_id is not None:
            replay.assign(fresh.agent_id, by_id[d.conversation_id].channel_type, now)
