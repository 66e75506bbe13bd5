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


def test_twilio_sends_through_the_same_pooled_session():
    from channels_app.providers.twilio import _http_client

    assert _http_client().session is http_session()


def test_the_environment_is_read_once_per_host_and_its_proxies_still_apply(monkeypatch):
    # given: a proxy for every host but one, and a session that counts environment scans
    import urllib.request

    from channels_app.providers.base import ProviderSession

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "graph.internal.test")
    scans = []
    real = urllib.request.getproxies_environment
    monkeypatch.setattr(urllib.request, "getproxies_environment", lambda: scans.append(1) or real())
    session = ProviderSession()

    # when
    settings = [
        session.merge_environment_settings(url, {}, None, None, None)
        for url in (
            "https://api.twilio.test/2010-04-01/Accounts/AC1/Messages.json",
            "https://api.twilio.test/2010-04-01/Accounts/AC2/Messages.json",
            "https://graph.internal.test/v22.0/1/messages",
        )
    ]

    # then: the proxy applies where the environment says, and each host was read once
    assert settings[0]["proxies"]["https"] == "http://proxy.example.test:3128"
    assert settings[1] == settings[0]
    assert "https" not in settings[2]["proxies"]
    scans_after_two_hosts = len(scans)
    assert scans_after_two_hosts >= 1
    session.merge_environment_settings(
        "https://api.twilio.test/2010-04-01/Accounts/AC3/Messages.json", {}, None, None, None
    )
    assert len(scans) == scans_after_two_hosts
    # a caller's own settings are never replaced by the memo
    mine = session.merge_environment_settings(
        "https://api.twilio.test/x", {"https": "http://mine.test:1"}, None, False, None
    )
    assert (mine["proxies"]["https"], mine["verify"]) == ("http://mine.test:1", False)
    # and the memo's answers cannot be changed through a returned copy
    settings[0]["proxies"]["https"] = "http://changed.test"
    again = session.merge_environment_settings("https://api.twilio.test/y", {}, None, None, None)
    assert again["proxies"]["https"] == "http://proxy.example.test:3128"
