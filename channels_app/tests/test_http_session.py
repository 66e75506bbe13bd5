"""Provider HTTP calls share one pooled session per thread, which never carries cookies."""

import threading

import responses

from channels_app.providers.base import http_session


def test_a_thread_reuses_its_session_and_another_thread_gets_its_own():
    # given
    mine = http_session()
    theirs: list[object] = []

    # when
    worker = threading.Thread(target=lambda: theirs.append(http_session()))
    worker.start()
    worker.join()

    # then
    assert http_session() is mine
    assert theirs and theirs[0] is not mine


@responses.activate
def test_a_cookie_set_by_one_provider_answer_is_never_sent_again():
    # given: an API answer that tries to set a cookie
    responses.post(
        "https://graph.facebook.test/v22.0/1/messages",
        json={"messages": [{"id": "wamid.1"}]},
        headers={"Set-Cookie": "session=tenant-a; Domain=graph.facebook.test; Path=/"},
    )
    responses.post("https://graph.facebook.test/v22.0/2/messages", json={})

    # when
    http_session().post("https://graph.facebook.test/v22.0/1/messages", json={}, timeout=1)
    http_session().post("https://graph.facebook.test/v22.0/2/messages", json={}, timeout=1)

    # then
    assert len(http_session().cookies) == 0
    assert "Cookie" not in responses.calls[1].request.headers


def test_the_session_never_retries_by_itself():
    adapter = http_session().get_adapter("https://graph.facebook.test/")
    assert adapter.max_retries.total == 0


def test_twilio_client_refuses_cookies_too():
    from http.cookiejar import DefaultCookiePolicy

    from channels_app.providers.twilio import _http_client

    policy = _http_client().session.cookies.get_policy()
    assert isinstance(policy, DefaultCookiePolicy)
    assert policy.allowed_domains() == ()
