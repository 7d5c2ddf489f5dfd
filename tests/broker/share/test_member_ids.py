"""Share member ids as clients send them: Kafka's Uuid.fromString takes the base64 form
with or without its padding (franz-go sends it padded, the Java client without)."""

from __future__ import annotations

import base64
import uuid

import pytest

from strom.broker.share.requests import valid_member_id


def test_padded_and_unpadded_base64_uuids_are_member_ids() -> None:
    raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()
    assert len(raw) == 24 and valid_member_id(raw)
    assert valid_member_id(raw.rstrip("="))


@pytest.mark.parametrize("bad", ["", "short", "A" * 23, "A" * 24, "A" * 25,
                                 str(uuid.uuid4()), "!" * 22])
def test_other_strings_are_not(bad: str) -> None:
    assert not valid_member_id(bad)
