"""What ``omnigw simulate`` prints: a text report of a scenario's result, then the same
figures as one JSON line."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from routing.scenarios.erlang_c import TOLERANCE, ErlangResult, simulate_erlang_c
from routing.scenarios.helpdesk import (
    CHANNELS,
    CONTEXT_READ,
    GROUPS,
    REPLY_MEAN,
    RETURN_MEAN,
    RETURN_SHARE,
    helpdesk_roster,
    helpdesk_slots,
)
from routing.scenarios.multi_skill import (
    LADDER,
    STICKY_WINDOW,
    MultiSkillResult,
    simulate_multi_skill,
)
from routing.simulation import BATCHES


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    return out


def report_erlang(r: ErlangResult) -> str:
    """The erlang-c result as a table of theory against simulation, then the verdict."""
    mu = 1.0 / r.handle_mean
    lines = [
        f"erlang-c: M/M/{r.agents} through the routing engine "
        f"(occupancy {r.load:g}, offered A = {r.offered:.3f} erlangs, "
        f"mean handling {r.handle_mean:g} s, lambda = {r.load * r.agents * mu * 3600:.1f}/h)",
        f"{r.arrivals:,} arrivals, first {r.warmup:,} discarded as warm-up, seed {r.seed}; "
        f"95% intervals from {BATCHES} batch means",
        "",
    ]
    rows = [
        [
            "P(wait)",
            f"{r.theory_p_wait:.5f}",
            f"{r.p_wait.value:.5f}",
            f"±{r.p_wait.half_width:.5f} ({r.p_wait.half_width / r.theory_p_wait:.2%})",
            f"{r.p_wait_error:.2%}",
        ],
        [
            "mean wait (s)",
            f"{r.theory_mean_wait:.3f}",
            f"{r.mean_wait.value:.3f}",
            f"±{r.mean_wait.half_width:.3f} ({r.mean_wait.half_width / r.theory_mean_wait:.2%})",
            f"{r.mean_wait_error:.2%}",
        ],
    ]
    lines += _table(["figure", "Erlang C", "simulated", "95% CI", "rel. error"], rows)
    lines.append("")
    if max(r.p_wait.relative_half_width, r.mean_wait.relative_half_width) >= TOLERANCE:
        lines.append(
            f"note: a 95% interval is wider than {TOLERANCE:.0%}: too few arrivals for the "
            "comparison to mean much (raise --arrivals)"
        )
    if r.passed:
        lines.append(f"PASS: P(wait) and mean wait both within {TOLERANCE:.0%} of Erlang C")
    else:
        lines.append(f"FAIL: P(wait) or mean wait more than {TOLERANCE:.0%} from Erlang C")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def report_multi(r: MultiSkillResult) -> str:
    """The multi-skill result: response times per variant and group, then utilisation."""
    lines = [
        f"multi-skill: Vietnamese helpdesk, {len(helpdesk_roster())} agents in 4 teams "
        f"({helpdesk_slots()} slots), channels {', '.join(CHANNELS)}",
        f"{r.arrivals:,} new conversations at {r.rate * 3600:.1f}/h, plus returning customers "
        f"({RETURN_SHARE:.0%} come back after ~{RETURN_MEAN / 60:.0f} min); seed {r.seed}; "
        f"first {r.warmup / 3600:.1f} h discarded",
        "first response = wait until assigned + the agent's modelled first-reply delay "
        f"(exponential, mean {REPLY_MEAN['zalo']:g} s chat / {REPLY_MEAN['email']:g} s email, "
        f"+{CONTEXT_READ:g} s reading the history when a returning customer gets another "
        "agent)",
        f"stickiness: window {STICKY_WINDOW / 3600:g} h; escalation: "
        + ", ".join(
            f"after {s.after:g}s "
            + ("any agent" if s.any_agent else f"skill level <= {s.min_level}")
            for s in LADDER
        ),
        "",
    ]
    header = ["variant", "group", "n", "FRT mean", "FRT p90", "wait mean", "wait p90"]
    rows = []
    for v in r.variants:
        for g in ("all", *GROUPS):
            f, w = v.first_response[g], v.wait[g]
            rows.append(
                [
                    v.name if g == "all" else "",
                    g,
                    f"{f.n:,}",
                    _fmt(f.mean),
                    _fmt(f.p90),
                    _fmt(w.mean),
                    _fmt(w.p90),
                ]
            )
    lines += _table(header, rows)
    lines.append("")
    header = ["variant", "util all", *(f"util {g}" for g in GROUPS), "same agent", "escalated"]
    rows = [
        [
            v.name,
            f"{v.utilisation['all']:.1%}",
            *(f"{v.utilisation[g]:.1%}" for g in GROUPS),
            f"{v.same_agent_share:.1%} of {v.returning_in_window:,}",
            f"{v.escalated:,}",
        ]
        for v in r.variants
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "utilisation: busy slot-time / available slot-time of each team (teams: agents' "
        "main skill); same agent: returning customers within the sticky window served by "
        "their previous agent; escalated: assignments made under a relaxed step",
        "every arrival assigned or still queued, no agent over capacity: "
        + ("yes" if r.sane else "NO"),
    ]
    return "\n".join(lines)


def run_command(
    scenario: str, *, agents: int, load: float, arrivals: int | None, seed: int
) -> tuple[str, int]:
    """What ``omnigw simulate`` prints (a report, then one JSON line) and its exit status:
    for erlang-c, 0 when both figures are within 5 % of Erlang C."""
    try:
        if scenario == "erlang-c":
            er = simulate_erlang_c(agents, load, arrivals or 2_000_000, seed)
            return report_erlang(er) + "\n" + json.dumps(er.as_dict()), 0 if er.passed else 1
        if scenario == "multi-skill":
            ms = simulate_multi_skill(arrivals or 50_000, seed)
            return report_multi(ms) + "\n" + json.dumps(ms.as_dict()), 0 if ms.sane else 1
    except ValueError as exc:
        return f"simulate {scenario}: {exc}", 2
    return f"unknown scenario {scenario!r} (erlang-c, multi-skill)", 2
