"""Copying an arena's votes into another store (SQLite → SQLite or PostgreSQL)."""

import pytest
import sqlalchemy as sa

from restoration.arena.copy_votes import main
from restoration.arena.store import VoteStore
from tests.test_store import battle


def all_votes(store):
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM votes ORDER BY id"))]


def test_every_vote_is_copied_with_its_id_and_new_votes_continue_after_them(tmp_path, votes_target, capsys):
    source = VoteStore(tmp_path / "old.db")
    for i in range(7):
        source.add(battle(token=f"t{i}", session=f"s-{i % 3}"), "A" if i % 2 else "tie", 3.5 + i)
    with source.engine.begin() as conn:  # a gap in the ids, as a deleted vote would leave
        conn.execute(sa.text("DELETE FROM votes WHERE id = 3"))
    main([str(source.path), str(votes_target)])
    assert "votes: 6 rows copied" in capsys.readouterr().out
    target = VoteStore(votes_target)
    assert all_votes(target) == all_votes(source)
    assert target.add(battle(token="new"), "B", 2.5) == 8  # after the copied ids, not over them
    with pytest.raises(SystemExit, match="already holds votes: copy into an empty store"):
        main([str(source.path), str(votes_target)])
    assert target.count() == 7  # the refused copy added nothing


def test_a_missing_source_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="not a vote store file"):
        main([str(tmp_path / "nothing.db"), str(tmp_path / "new.db")])
    assert not (tmp_path / "new.db").exists()
