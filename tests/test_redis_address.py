"""REDIS_URL parsing (tasks.redis_address): the Sentinel form's parts, the plain forms left
alone, kombu's spelling of each, and bad URLs refused with the problem named."""

from __future__ import annotations

import pytest

from tasks.redis_address import (
    DEFAULT_SENTINEL_PORT,
    SentinelAddress,
    broker_url,
    redact,
    sentinel_address,
    sentinel_transport_options,
)
from tasks.settings import Settings


def test_sentinel_hosts_master_and_db():
    address = sentinel_address("redis+sentinel://10.0.0.1:26380,sentinel-b:26381/mymaster/3")
    assert address == SentinelAddress(
        sentinels=(("10.0.0.1", 26380), ("sentinel-b", 26381)), master_name="mymaster", db=3
    )


def test_sentinel_port_defaults_to_26379_and_db_to_0():
    address = sentinel_address("redis+sentinel://a,b:1234,c/progress")
    assert address.sentinels == (("a", DEFAULT_SENTINEL_PORT), ("b", 1234), ("c", 26379))
    assert address.db == 0
    assert address.username is None and address.password is None


def test_sentinel_password_alone_and_with_username():
    alone = sentinel_address("redis+sentinel://:s%40cret@h:1/m")
    assert (alone.username, alone.password) == (None, "s@cret")
    both = sentinel_address("redis+sentinel://app:p%3Aw@h:1,h:2/m/1")
    assert (both.username, both.password, both.db) == ("app", "p:w", 1)
    assert both.sentinels == (("h", 1), ("h", 2))


def test_password_with_at_sign_and_comma_is_taken_whole():
    """The last '@' ends the credentials, so a raw '@' or ',' in the password stays in it."""
    address = sentinel_address("redis+sentinel://:a@b,c@h1:1,h2:2/m")
    assert address.password == "a@b,c"
    assert address.sentinels == (("h1", 1), ("h2", 2))


def test_ipv6_sentinel_and_quoted_master_name():
    address = sentinel_address("redis+sentinel://[::1]:26379,[fe80::2]/my%20master")
    assert address.sentinels == (("::1", 26379), ("fe80::2", 26379))
    assert address.master_name == "my master"


def test_sentinel_scheme_alias():
    assert sentinel_address("sentinel://h:1/m").sentinels == (("h", 1),)


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "rediss://:pw@host:6380/2", "unix:///tmp/redis.sock?db=1"],
)
def test_plain_urls_are_not_sentinel(url):
    assert sentinel_address(url) is None
    assert sentinel_transport_options(url, "", 1.0) == {}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "use redis://"),
        ("http://localhost:6379/0", "use redis://"),
        ("", "use redis://"),
        ("redis+sentinel://h:1", "name the master"),
        ("redis+sentinel://h:1/", "name the master"),
        ("redis+sentinel://h:1/m/0/extra", "name the master"),
        ("redis+sentinel://h:1/m/zero", "the database after the master's name is a number"),
        ("redis+sentinel:///m", "at least one sentinel"),
        ("redis+sentinel://,,/m", "at least one sentinel"),
        ("redis+sentinel://h:port/m", "bad sentinel port in 'h:port'"),
        ("redis+sentinel://h:99999/m", "bad sentinel port"),
        ("redis+sentinel://:7000/m", "no host in ':7000'"),
    ],
)
def test_bad_urls_raise_naming_the_problem(url, problem):
    with pytest.raises(ValueError, match="REDIS_URL") as raised:
        sentinel_address(url)
    assert problem in str(raised.value)


def test_errors_never_show_the_password():
    with pytest.raises(ValueError) as raised:
        sentinel_address("redis+sentinel://user:hunter2@h:1")
    assert "hunter2" not in str(raised.value)
    assert "user:***@h:1" in str(raised.value)
    assert redact("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


def test_broker_url_for_sentinel_is_one_kombu_url_per_sentinel():
    url = "redis+sentinel://app:p%40ss@10.0.0.1:26380,[::1]/progress/2"
    assert broker_url(url) == (
        "sentinel://app:p%40ss@10.0.0.1:26380/2;sentinel://app:p%40ss@[::1]:26379/2"
    )
    assert broker_url("redis+sentinel://h1:1,h2:2/m") == "sentinel://h1:1/0;sentinel://h2:2/0"
    assert broker_url("redis+sentinel://:pw@h:1/m") == "sentinel://:pw@h:1/0"


def test_broker_url_for_plain_redis():
    assert broker_url("redis://:pw@host:6379/1") == "redis://:pw@host:6379/1"
    assert broker_url("rediss://host:6380/0") == "rediss://host:6380/0"
    assert broker_url("unix:///var/run/redis.sock") == "redis+socket:///var/run/redis.sock"
    assert broker_url("unix:///r.sock?db=2") == "redis+socket:///r.sock?db=2"


def test_sentinel_transport_options():
    options = sentinel_transport_options("redis+sentinel://h:1/progress/0", "", 1.5)
    assert options == {
        "master_name": "progress",
        "sentinel_kwargs": {"socket_timeout": 1.5, "socket_connect_timeout": 1.5},
    }
    with_password = sentinel_transport_options("redis+sentinel://h:1/m", "sentinel-pw", 1.0)
    assert with_password["sentinel_kwargs"]["password"] == "sentinel-pw"


def test_celery_config_carries_the_sentinel_options():
    from tasks.celery_app import celery_config

    settings = Settings.from_env(
        {"REDIS_URL": "redis+sentinel://h:1,h:2/progress/0", "PROGRESS_SENTINEL_PASSWORD": "x"}
    )
    config = celery_config(settings)
    assert config["broker_url"] == "sentinel://h:1/0;sentinel://h:2/0"
    options = config["broker_transport_options"]
    assert options["master_name"] == "progress"
    assert options["sentinel_kwargs"]["password"] == "x"
    assert options["visibility_timeout"] == 60  # the plain options are still there


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "use redis://"),
        ("redis+sentinel://h:1/", "name the master"),
        ("redis+sentinel://h:x/m", "bad sentinel port"),
    ],
)
def test_settings_from_env_refuses_a_bad_redis_url(url, problem):
    with pytest.raises(ValueError, match=problem):
        Settings.from_env({"REDIS_URL": url})


def test_settings_from_env_takes_a_sentinel_url():
    url = "redis+sentinel://h:1/progress/0"
    settings = Settings.from_env({"REDIS_URL": url})
    assert settings.redis_url == url
    assert settings.broker_url == "sentinel://h:1/0"
