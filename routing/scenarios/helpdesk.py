"""The simulated Vietnamese helpdesk of the ``multi-skill`` scenario: its 36 agents and
the conversations that reach it (channels, skill groups, languages, handling and reply
times, returning customers)."""

from __future__ import annotations

from routing.index import TOTAL, AgentState

CHANNELS = ("zalo", "facebook", "webchat", "email")
CHANNEL_MIX = (0.40, 0.25, 0.25, 0.10)
# Mean handling time (seconds) per channel; VIP conversations take 1.5 times longer.
HANDLE_MEAN = {"zalo": 420.0, "facebook": 420.0, "webchat": 360.0, "email": 900.0}
VIP_HANDLE_FACTOR = 1.5
# Modelled first reply of an agent once assigned: exponential with this mean, plus
# CONTEXT_READ seconds when the customer is returning and the agent is not the one who
# served them last (they read the history first).
REPLY_MEAN = {"zalo": 20.0, "facebook": 20.0, "webchat": 15.0, "email": 300.0}
CONTEXT_READ = 45.0
ENGLISH_SHARE = 0.15
RETURN_SHARE = 0.30  # of conversations, the customer comes back after it ends ...
RETURN_MEAN = 1800.0  # ... after an exponential time with this mean (seconds)
RETURN_SAME_CHANNEL = 0.7
GROUPS = ("billing", "tech", "sales", "vip")
# group -> share of new conversations, ((level, share), ...), priority by level
GROUP_MIX: dict[str, tuple[float, tuple[tuple[int, float], ...], dict[int, int]]] = {
    "billing": (0.30, ((2, 0.8), (3, 0.2)), {2: 2, 3: 3}),
    "tech": (0.32, ((1, 0.5), (2, 0.35), (3, 0.15)), {1: 1, 2: 1, 3: 4}),
    "sales": (0.30, ((1, 0.6), (2, 0.4)), {1: 0, 2: 0}),
    "vip": (0.08, ((3, 1.0),), {3: 8}),
}
CHAT_CAPACITY = {"zalo": 2, "facebook": 2, "webchat": 2, "email": 2}


def _agent(aid: str, skills: dict[str, int], english: bool, total: int = 3) -> AgentState:
    return AgentState(
        id=aid,
        presence="online",
        skills=skills,
        languages=frozenset({"vi", "en"} if english else {"vi"}),
        capacity={**CHAT_CAPACITY, TOTAL: total},
    )


# (name, level of the team's skill, speaks English, other skills)
TeamSpec = tuple[tuple[str, int, bool, dict[str, int]], ...]


def helpdesk_roster() -> list[tuple[str, AgentState]]:
    """(team, agent) of a 36-agent Vietnamese helpdesk. Fresh objects on every call."""
    roster: list[tuple[str, AgentState]] = []
    vip_names = ("vy", "khanh", "tam", "phuong")
    for name in vip_names:
        roster.append(("vip", _agent(name, {"vip": 3, "billing": 3, "tech": 2, "sales": 2}, True)))
    billing: TeamSpec = (
        ("lan", 3, True, {"vip": 2}),
        ("huong", 3, False, {"vip": 2, "sales": 1}),
        ("mai", 3, False, {"vip": 1}),
        ("thu", 2, True, {"sales": 1}),
        ("ngoc", 2, False, {"vip": 1}),
        ("hanh", 2, False, {"sales": 1}),
        ("trang", 2, False, {}),
        ("linh", 2, True, {"sales": 1}),
        ("dung", 2, False, {}),
        ("nhung", 2, False, {}),
    )
    for name, level, english, extra in billing:
        roster.append(("billing", _agent(name, {"billing": level, **extra}, english)))
    tech: TeamSpec = (
        ("minh", 3, True, {"vip": 2}),
        ("tuan", 3, False, {"billing": 1}),
        ("hung", 3, True, {}),
        ("quang", 2, False, {"billing": 1}),
        ("duc", 2, True, {}),
        ("long", 2, False, {"vip": 1}),
        ("phong", 2, False, {}),
        ("khoa", 2, True, {"billing": 1}),
        ("nam", 1, False, {}),
        ("son", 1, False, {}),
        ("bao", 1, True, {}),
        ("hieu", 1, False, {}),
    )
    for name, level, english, extra in tech:
        total = 2 if level == 1 else 3  # juniors take fewer conversations at once
        roster.append(("tech", _agent(name, {"tech": level, **extra}, english, total)))
    sales: TeamSpec = (
        ("hoa", 3, True, {"vip": 2}),
        ("yen", 3, False, {"billing": 1}),
        ("anh", 3, False, {"vip": 1}),
        ("thao", 2, True, {}),
        ("nhi", 2, False, {"billing": 1}),
        ("giang", 2, False, {}),
        ("chi", 2, False, {"billing": 1}),
        ("my", 2, True, {}),
        ("uyen", 2, False, {}),
        ("xuan", 2, False, {}),
    )
    for name, level, english, extra in sales:
        roster.append(("sales", _agent(name, {"sales": level, **extra}, english)))
    return roster


def helpdesk_slots() -> int:
    """Conversations the whole roster can hold at once."""
    return sum(a.capacity[TOTAL] for _, a in helpdesk_roster())


def mean_handle() -> float:
    """Mean handling time of a conversation in seconds, over the channel and VIP mix."""
    chan = sum(m * HANDLE_MEAN[c] for c, m in zip(CHANNELS, CHANNEL_MIX, strict=True))
    vip = GROUP_MIX["vip"][0]
    return chan * (1 - vip) + chan * VIP_HANDLE_FACTOR * vip
