"""``pyrt_channel``: the session's server is shared by every test, its channels too; the fixture
gives each test a channel of its own. Run in a throw-away project (``pytester``), as a user's
suite runs."""

from __future__ import annotations

import re

import pytest

from pyrt.pytest_plugin.plugin import channel_name
from pyrt.wire.names import is_channel_name

pytest_plugins = ["pytester"]

SHARED_TESTS = """
import json
import urllib.request

SEEN = {}

def publish(server, channel, data):
    body = json.dumps({"channel": channel, "data": data}).encode()
    request = urllib.request.Request(server.url + "/publish", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()

def history(server, channel):
    with urllib.request.urlopen(f"{server.url}/history?channel={channel}", timeout=10) as answer:
        return [p["data"] for p in json.loads(answer.read())["publications"]]

def test_first(pyrt_server, pyrt_channel, request):
    assert request.getfixturevalue("pyrt_channel") == pyrt_channel  # one name for the whole test
    SEEN["first"] = pyrt_channel
    publish(pyrt_server, "room", "from the first test")
    publish(pyrt_server, pyrt_channel, "from the first test")

def test_second(pyrt_server, pyrt_channel):
    publish(pyrt_server, "room", "from the second test")
    print("@@shared", history(pyrt_server, "room"))
    print("@@own", history(pyrt_server, pyrt_channel))
    print("@@names", SEEN["first"], pyrt_channel)
"""


def test_tests_on_one_channel_see_each_other_and_pyrt_channel_keeps_them_apart(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_shared=SHARED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", timeout=120)
    result.assert_outcomes(passed=2)
    printed = [re.search(r"(@@\w+) (.*)", line) for line in result.outlines]
    lines = {found[1]: found[2] for found in printed if found is not None}
    # One server for the session: the second test finds the first one's message in "room".
    assert lines["@@shared"] == "['from the first test', 'from the second test']"
    assert lines["@@own"] == "[]"  # its own channel: nothing of the first test's
    first, second = lines["@@names"].split()
    assert first != second
    assert first.startswith("test_first-")
    assert second.startswith("test_second-")


@pytest.mark.parametrize("test_name", ["test_chat", "test_x[ws-1]", "test_ünïcode[a b/c]", "x" * 300, "[]"])
def test_channel_names_are_valid_and_fresh(test_name: str) -> None:
    names = {channel_name(test_name) for _ in range(50)}
    assert len(names) == 50
    assert all(is_channel_name(name) and len(name) <= 64 for name in names)
