"""The fake Twilio API answers the real ``twilio`` library as Twilio does: if these fail, tests that use
the fake prove nothing about production."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from madoguchi.notify import twilio_client
from tests.fakes.twilio_api import silent_wav


@pytest.fixture
def client(fake_twilio):
    return twilio_client(fake_twilio.overrides())


def test_creating_a_message(client, fake_twilio):
    message = client.messages.create(to="+819012345678", from_="+815012345678", body="予約を受け付けました。")
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.to, message.from_, message.status) == ("+819012345678", "+815012345678", "queued")
    assert message.num_segments == "1"
    assert fake_twilio.messages[0]["sid"] == message.sid
    (request,) = fake_twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.form == {"To": "+819012345678", "From": "+815012345678", "Body": "予約を受け付けました。"}


@pytest.mark.parametrize(
    "to, sender, code",
    [("09012345678", "+815012345678", 21211), ("+819012345678", "+815099999999", 21606)],
)
def test_a_bad_number_is_refused_as_twilio_does(client, to, sender, code):
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=to, from_=sender, body="x")
    assert (refused.value.status, refused.value.code) == (400, code)
    # Twilio's message echoes the number: the product must never store or log it.
    assert to in refused.value.msg or sender in refused.value.msg


def test_wrong_credentials_get_401(fake_twilio):
    client = twilio_client(dict(fake_twilio.overrides(), TWILIO_AUTH_TOKEN="wrong"))
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+819012345678", from_="+815012345678", body="x")
    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert fake_twilio.messages == []


def test_injected_failures(client, fake_twilio):
    fake_twilio.fail_next(1, status=503)
    fake_twilio.drop_next()
    with pytest.raises(TwilioRestException) as unavailable:
        client.messages.create(to="+819012345678", from_="+815012345678", body="x")
    assert (unavailable.value.status, unavailable.value.code) == (503, 20503)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to="+819012345678", from_="+815012345678", body="x")
    assert client.messages.create(to="+819012345678", from_="+815012345678", body="x").sid
    assert len(fake_twilio.requests) == 3 and len(fake_twilio.messages) == 1


def test_recordings_fetch_list_page_filter_and_delete(client, fake_twilio):
    when = datetime(2026, 3, 10, 1, 2, 3, tzinfo=UTC)
    seeded = [
        fake_twilio.add_recording(
            call_sid="CA" + "1" * 32, date_created=when.replace(day=day), duration=30 + day
        )
        for day in (1, 2, 3, 4, 5)
    ]
    first = seeded[0]["sid"]

    fetched = client.recordings(first).fetch()
    assert (fetched.sid, fetched.call_sid, fetched.duration) == (first, "CA" + "1" * 32, "31")
    assert fetched.date_created == when.replace(day=1)

    every = client.recordings.list(page_size=2)  # three pages, followed through next_page_uri
    assert [r.sid for r in every] == [r["sid"] for r in reversed(seeded)]
    assert client.recordings.list(call_sid="CA" + "2" * 32) == []
    assert len(client.recordings.list(date_created_before=date(2026, 3, 2))) == 2
    assert len(client.recordings.list(date_created_after=date(2026, 3, 4))) == 2
    assert len(client.recordings.list(date_created_after=when.replace(day=4, second=4))) == 1
    assert len(client.recordings.list(date_created=date(2026, 3, 3))) == 1

    assert client.recordings(first).delete() is True  # HTTP 204
    assert fake_twilio.deleted == [first]
    with pytest.raises(TwilioRestException) as gone:
        client.recordings(first).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException):
        client.recordings(first).delete()


def test_recording_media_needs_the_account_credentials(fake_twilio):
    recording = fake_twilio.add_recording(mp3=b"ID3-bytes")
    path = recording["media_url"].removeprefix("https://api.twilio.com")
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    wav = requests.get(f"{fake_twilio.base_url}{path}.wav", auth=auth, timeout=5)
    assert wav.status_code == 200 and wav.content == silent_wav()
    assert wav.headers["Content-Type"] == "audio/x-wav"
    mp3 = requests.get(f"{fake_twilio.base_url}{path}.mp3", auth=auth, timeout=5)
    assert mp3.content == b"ID3-bytes"
    assert requests.get(f"{fake_twilio.base_url}{path}.wav", timeout=5).status_code == 401
