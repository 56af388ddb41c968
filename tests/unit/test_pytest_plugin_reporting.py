"""The registry reports what each live resource did during the current test, and forgets finished ones."""

from __future__ import annotations

from pyrt.pytest_plugin.reporting import Registry, tail


class Log:
    """A resource whose report is the lines it wrote after a mark."""

    def __init__(self, title: str, *, blocked: bool = False) -> None:
        self.report_title = title
        self.lines: list[str] = []
        self.finished = False
        self.blocked = blocked

    def mark(self) -> object:
        return len(self.lines)

    def report(self, since: object | None) -> str:
        return "\n".join(self.lines[since if isinstance(since, int) else 0 :])

    def violations(self, since: object | None) -> list[str]:
        new = self.lines[since if isinstance(since, int) else 0 :]
        return [line for line in new if self.blocked]


def test_a_resource_reports_only_what_happened_since_the_test_began() -> None:
    registry = Registry()
    server = Log("server")
    registry.track(server)
    server.lines.append("before the test")
    registry.begin_test()
    assert registry.sections() == []  # nothing new: no section at all
    server.lines.append("during the test")
    assert registry.sections() == [("server", "during the test")]


def test_a_resource_started_during_the_test_reports_everything() -> None:
    registry = Registry()
    registry.begin_test()
    page = Log("page")
    registry.track(page)
    page.lines += ["one", "two"]
    assert registry.sections() == [("page", "one\ntwo")]


def test_finished_resources_report_once_more_then_are_forgotten() -> None:
    registry = Registry()
    registry.begin_test()
    server = Log("server")
    registry.track(server)
    server.lines.append("stopped by the test")
    server.finished = True
    assert registry.sections() == [("server", "stopped by the test")]  # its test still sees it
    registry.begin_test()
    assert registry.resources() == []


def test_a_skipped_resource_gives_no_section_and_violations_are_listed_per_resource() -> None:
    registry = Registry()
    registry.begin_test()
    told, guarded = Log("told"), Log("guarded", blocked=True)
    for resource in (told, guarded):
        registry.track(resource)
        resource.lines.append(f"GET https://cdn.example/{resource.report_title}.js")
    assert [title for title, _ in registry.sections(skip=(told,))] == ["guarded"]
    assert registry.violations() == [("guarded", ["GET https://cdn.example/guarded.js"])]


def test_tail_keeps_the_last_lines_and_says_how_many_it_left_out() -> None:
    assert tail(["a", "b"], 5) == ["a", "b"]
    assert tail([str(n) for n in range(10)], 3) == ["... 7 earlier lines left out ...", "7", "8", "9"]
