"""Server settings (pyrt/server/settings.py): every option declared once, as a field whose
metadata says which flag sets it, or that only the API does."""

from __future__ import annotations

import dataclasses

import pytest

from pyrt.server.settings import API_ONLY, FLAG, SECTIONS, Flag, Settings, flag


def test_every_field_has_a_flag_or_is_marked_api_only() -> None:
    unmarked = [spec.name for spec in dataclasses.fields(Settings) if FLAG not in spec.metadata]
    assert unmarked == [], "give these fields flag(...) or API_ONLY metadata"
    for spec in dataclasses.fields(Settings):
        option = spec.metadata[FLAG]
        assert option is None or isinstance(option, Flag), spec.name


def test_flags_are_spelled_as_flags_and_never_shared() -> None:
    names = [option.name for spec in dataclasses.fields(Settings) if (option := spec.metadata[FLAG])]
    assert all(name.startswith("--") and name == name.lower() and " " not in name for name in names)
    assert len(names) == len(set(names))


def test_only_the_package_sources_and_the_tracer_provider_are_set_through_the_api_alone() -> None:
    api_only = [spec.name for spec in dataclasses.fields(Settings) if spec.metadata[FLAG] is None]
    assert api_only == ["package_dir", "otel_tracer_provider"]  # an object: no command line gives one


def test_the_help_sections_start_at_fields_in_order_from_the_first() -> None:
    names = [spec.name for spec in dataclasses.fields(Settings)]
    firsts = [first for first, _ in SECTIONS]
    assert firsts[0] == names[0]  # no flag comes before the first group
    assert [names.index(first) for first in firsts] == sorted(names.index(first) for first in firsts)


def test_flag_metadata_holds_what_the_command_line_needs() -> None:
    assert flag("--x-y", "what it does", metavar="N") == {FLAG: Flag("--x-y", "what it does", "N")}
    assert API_ONLY == {FLAG: None}
    with pytest.raises(TypeError):
        API_ONLY[FLAG] = Flag("--no", "")  # type: ignore[index]
