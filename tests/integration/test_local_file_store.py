"""The local file store: atomic, idempotent writes inside its root, and the links to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgpipe_processor.keys import image_key
from imgpipe_runtime.files import InvalidKey, LocalFileStore

REQUEST = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files", "http://localhost:8010/")


async def test_a_written_file_reads_back_with_the_same_bytes(store: LocalFileStore) -> None:
    await store.write("images/r/1.jpg", b"\xff\xd8jpeg", "image/jpeg")

    assert await store.read("images/r/1.jpg") == b"\xff\xd8jpeg"
    assert (store.root / "images" / "r" / "1.jpg").read_bytes() == b"\xff\xd8jpeg"


async def test_writing_a_key_again_replaces_it_and_leaves_no_temporary_files(
    store: LocalFileStore,
) -> None:
    await store.write("outputs/output_x.csv", b"old", "text/csv; charset=utf-8")
    await store.write("outputs/output_x.csv", b"new", "text/csv; charset=utf-8")

    assert await store.read("outputs/output_x.csv") == b"new"
    assert [p.name for p in (store.root / "outputs").iterdir()] == ["output_x.csv"]


async def test_reading_a_missing_key_raises_file_not_found(store: LocalFileStore) -> None:
    with pytest.raises(FileNotFoundError):
        await store.read("images/none.jpg")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "images/../../x", "a//b", "./a"])
async def test_a_key_that_could_leave_the_root_is_refused(store: LocalFileStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.write(key, b"x", "image/jpeg")
    with pytest.raises(InvalidKey):
        await store.url_for(key)


@pytest.mark.parametrize(
    "url", ["http://h/../../etc/passwd", "http://h/..%2F..%2Fetc%2Fpasswd", "http://h/%2e%2e"]
)
def test_an_image_key_from_a_hostile_url_stays_inside_the_root(
    store: LocalFileStore, url: str
) -> None:
    path = store.path_for(image_key(REQUEST, 0, 0, url))

    assert path.resolve().is_relative_to(store.root)
    assert path.parent == store.root / "images" / REQUEST


async def test_url_for_joins_the_public_base_url_and_the_key(store: LocalFileStore) -> None:
    assert await store.url_for("images/r/1.jpg") == "http://localhost:8010/files/images/r/1.jpg"


@pytest.mark.parametrize(
    "base", ["https://cdn.example/img", "https://cdn.example/img/", "https://cdn.example/img//"]
)
async def test_url_for_uses_exactly_one_slash_after_the_base(tmp_path: Path, base: str) -> None:
    assert await LocalFileStore(tmp_path, base).url_for("images/k.jpg") == (
        "https://cdn.example/img/files/images/k.jpg"
    )


def test_the_root_is_resolved(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "a" / ".." / "b", "http://x")

    assert store.root == (tmp_path / "b").resolve()
    assert store.path_for("images/k.jpg") == (tmp_path / "b").resolve() / "images" / "k.jpg"
