"""Every natural-key lookup that cannot find its row is a counted reject naming the key (issue 26,
item 3): a missing target, several matches, a key of the wrong length or type, a manager of
project code raising another model's DoesNotExist or anything else. Before, a permission by a
content type that does not exist ended the restore with ``ContentType.DoesNotExist`` and a
traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import MultipleObjectsReturned

from restoreproject.fidelity.models import NaturalManager, Person

pytestmark = pytest.mark.django_db(transaction=True)


def fixture(objects: list[dict], tmp_path: Path) -> Path:
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(objects))
    return path


def test_a_permission_of_a_content_type_that_does_not_exist_is_a_reject(tmp_path, restore_outcome):
    status, message, report, rejects = restore_outcome(
        fixture(
            [
                {
                    "model": "auth.group",
                    "pk": 1,
                    "fields": {
                        "name": "editors",
                        "permissions": [["add_x", "noapp", "nomodel"], ["change_person", "fidelity", "person"]],
                    },
                },
            ],
            tmp_path,
        )
    )
    assert status == 3, message
    assert list(Group.objects.get().permissions.values_list("codename", flat=True)) == ["change_person"]
    [record] = rejects
    assert "no auth.Permission with natural key ['add_x', 'noapp', 'nomodel']" in record["reason"]
    assert "ContentType matching query does not exist" in record["reason"]
    table = report["tables"]["auth.Group_permissions"]
    assert (table["total"], table["inserted"], table["rejected"]) == (2, 1, 1)


@pytest.mark.parametrize(
    "raised, reason",
    [
        (MultipleObjectsReturned("two of them"), "more than one fidelity.Person with natural key ['ann']"),
        (
            RuntimeError("the manager broke"),
            "natural key ['ann'] of fidelity.Person could not be looked up: RuntimeError: the manager broke",
        ),
        (KeyError("name"), "could not be looked up: KeyError"),
    ],
)
def test_whatever_a_manager_raises_is_a_reject_naming_the_key(tmp_path, monkeypatch, raised, reason, restore_outcome):
    def get_by_natural_key(self, name):
        if name == "ann":
            raise raised
        return self.get(name=name)

    monkeypatch.setattr(NaturalManager, "get_by_natural_key", get_by_natural_key)
    status, message, _, rejects = restore_outcome(
        fixture(
            [
                {"model": "fidelity.person", "pk": 1, "fields": {"name": "bob", "boss": None}},
                {"model": "fidelity.country", "pk": 1, "fields": {"name": "France", "capital": None}},
                {"model": "fidelity.city", "pk": 1, "fields": {"name": "Paris", "country": ["France"]}},
                {
                    "model": "fidelity.taggeditem",
                    "pk": 1,
                    "fields": {"content_type": ["fidelity", "person"], "object_id": 1, "tag": "t"},
                },
                {
                    "model": "admin.logentry",
                    "pk": 1,
                    "fields": {
                        "action_time": "2020-01-02T03:04:05",
                        "user": None,
                        "content_type": ["fidelity", "person"],
                        "object_id": "1",
                        "object_repr": "x",
                        "action_flag": 1,
                        "change_message": "",
                    },
                },
                {
                    "model": "fidelity.member",
                    "pk": 1,
                    "fields": {"name": "m", "friends": [], "people": [["ann"], ["bob"]]},
                },
            ],
            tmp_path,
        )
    )
    assert status == 3, message
    assert [record["reason"] for record in rejects if reason in record["reason"]], rejects
    assert list(Person.objects.values_list("name", flat=True)) == ["bob"]


@pytest.mark.parametrize("key", [["bob", "extra"], [], [["nested"]], [{"a": 1}]])
def test_a_key_of_the_wrong_length_or_type_is_a_reject(tmp_path, key, restore_outcome):
    status, message, _, rejects = restore_outcome(
        fixture(
            [
                {"model": "fidelity.person", "pk": 1, "fields": {"name": "bob", "boss": None}},
                {"model": "fidelity.member", "pk": 1, "fields": {"name": "m", "friends": [], "people": [key, ["bob"]]}},
            ],
            tmp_path,
        )
    )
    assert status == 3, message
    [record] = rejects
    assert "natural key" in record["reason"] and "Traceback" not in record["reason"], record
