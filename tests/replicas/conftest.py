"""Fixtures the replica tests borrow from the channels' test folders."""

from tests.email.conftest import mail_server, mailboxes  # noqa: F401
from tests.zalo.conftest import zalo  # noqa: F401
