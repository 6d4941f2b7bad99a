"""Satisfaction surveys running: the sweep that sends those due (one replica at a time on
a shared store, by the named lease ``surveys``), and the survey page's reads and answers
by signed token (rules in gateway.domain.surveys)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from config.schema import SurveySettings
from gateway.channels import LiveChannels
from gateway.domain import surveys
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import SurveyRecord, opt_dt
from gateway.store.transaction import Tx
from kernel.errors import Invalid
from kernel.models import ReplyWindow
from kernel.secrets import Keyring

log = logging.getLogger(__name__)

LEASE = "surveys"


def window_of(channels: LiveChannels) -> surveys.WindowOf:
    """Reply windows by the running channels' own rules."""

    def window(channel_id: str, last_inbound_at: int | None) -> ReplyWindow | None:
        connector = channels.get(channel_id)
        if connector is None:
            return None
        return connector.reply_window(opt_dt(last_inbound_at), phone=None)

    return window


def plan(
    settings: SurveySettings, public_url: str, keys: Keyring, window: surveys.WindowOf
) -> surveys.Plan:
    questions = ("csat", *(("nps",) if settings.nps else ()), *(("ces",) if settings.ces else ()))
    return surveys.Plan(
        delay=settings.delay,
        expire_after=settings.expire_after,
        questions=questions,
        channels=frozenset(settings.channels),
        public_url=public_url,
        keys=keys.derive(surveys.KEY_PURPOSE) if keys else keys,
        window=window,
    )


class Surveys:
    def __init__(
        self,
        store: Store,
        settings: SurveySettings,
        public_url: str,
        keys: Keyring,
        window: surveys.WindowOf,
        *,
        wake_sender: Callable[[], None],
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.plan = plan(settings, public_url, keys, window)
        self._wake_sender = wake_sender
        self.keeper = keeper  # None: the only process on its store
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self.settings.enabled:
            self._task = asyncio.create_task(self._run(), name="survey-sweep")

    def kick(self) -> None:
        """Look for due surveys now (a resolution with no delay)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.keeper is not None:
            await self.keeper.release(LEASE)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("the survey sweep failed; tried again at the next one")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.sweep_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def sweep(self) -> int:
        """Send every survey due (if this process holds the sweep); messages written."""
        if self.keeper is not None and not await self.keeper.claim(LEASE, _nothing):
            return 0
        chosen = self.plan
        total = 0
        while True:

            async def work(tx: Tx) -> tuple[int, bool]:
                return await surveys.send_due(tx, chosen)

            written, more = await self.store.transact(work)
            total += written
            if written:
                self._wake_sender()
            if not more:
                return total

    def _survey_id(self, token: str) -> str:
        survey_id, _expires = surveys.verify(self.plan.keys, token)
        return survey_id

    async def view(self, token: str) -> tuple[str, SurveyRecord | None]:
        """What the page shows: ``open``, ``answered`` (nothing left to give), ``late``,
        or ``unknown`` (a link not signed here, or of no survey)."""
        try:
            survey_id = self._survey_id(token)
        except Invalid:
            return "unknown", None

        async def work(tx: Tx) -> SurveyRecord | None:
            return await surveys.read(tx, survey_id)

        survey = await self.store.transact(work)
        if survey is None or survey.status not in ("sent", "answered"):
            return "unknown", None
        if survey.expires_at is not None and time.time_ns() // 1000 > survey.expires_at:
            return "late", survey
        left = [q for q in survey.asked() if survey.score(q) is None]
        if not left and survey.comment is not None:
            return "answered", survey
        return "open", survey

    async def of_conversation(self, conversation_id: str) -> SurveyRecord | None:
        async def work(tx: Tx) -> SurveyRecord | None:
            return await tx.surveys.of_conversation(conversation_id)

        return await self.store.transact(work)

    async def answer(
        self, token: str, scores: dict[str, int], comment: str | None
    ) -> tuple[str, SurveyRecord | None]:
        """An answer sent from the page (see gateway.domain.surveys.answer)."""
        try:
            survey_id = self._survey_id(token)
        except Invalid:
            return "unknown", None

        async def work(tx: Tx) -> tuple[str, SurveyRecord | None]:
            return await surveys.answer(tx, survey_id, scores, comment)

        return await self.store.transact(work)


async def _nothing() -> None:
    """The sweep's lease went: each sweep is one unit of work, nothing to stop."""
