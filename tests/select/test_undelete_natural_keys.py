"""``--select`` on a backup written by ``dumpdata --natural-foreign``, where rows name their parents
by natural key: a parent gone from the database comes back from the backup, and rows that name a
selected row by its natural key belong to it. The fidelity models' natural keys (a country and
its capital city naming each other, a person's boss, an M2M to persons) on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from dbrestore.models import RestoreRun
from restoreproject.fidelity.models import City, Country, Member, Person

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(model, **lookup) -> list[dict]:
    return list(model.objects.filter(**lookup).order_by("name").values())


@pytest.fixture
def world():
    france, italy = Country.objects.create(name="France"), Country.objects.create(name="Italy")
    paris = City.objects.create(name="Paris", country=france)
    City.objects.create(name="Lyon", country=france)
    rome = City.objects.create(name="Rome", country=italy)
    france.capital, italy.capital = paris, rome
    france.save()
    italy.save()
    ada = Person.objects.create(name="Ada")
    bob = Person.objects.create(name="Bob", boss=ada)
    Person.objects.create(name="Cy", boss=bob)
    member = Member.objects.create(name="reader")
    member.people.set([ada, bob])


def _dump(path, *labels) -> str:
    call_command("dumpdata", *labels, "--natural-foreign", "--output", str(path))
    cities = [o for o in json.loads(path.read_text()) if o["model"] == "fidelity.city"]
    assert cities and all(isinstance(o["fields"]["country"], list) for o in cities)  # by natural key
    return str(path)


@pytest.fixture
def nightly(world, tmp_path):
    return _dump(tmp_path / "nightly.json", "fidelity.country", "fidelity.city", "fidelity.person", "fidelity.member")


def test_a_country_comes_back_with_its_cities_named_by_natural_key(nightly, run_command, tmp_path):
    france = _rows(Country, name="France")
    cities = _rows(City, country__name="France")
    italy = (_rows(Country, name="Italy"), _rows(City, country__name="Italy"))
    Country.objects.get(name="France").delete()  # Paris and Lyon cascade
    Country.objects.create(name="Spain")  # the database moves on
    report = tmp_path / "report.json"

    run_command(
        "restore_backup", nightly, "--select", "fidelity.Country:name=France", "--noinput", "--report-json", report
    )

    assert _rows(Country, name="France") == france  # its capital is Paris again, by primary key
    assert _rows(City, country__name="France") == cities
    assert (_rows(Country, name="Italy"), _rows(City, country__name="Italy")) == italy
    assert Country.objects.filter(name="Spain").exists()
    tables = json.loads(report.read_text())["selection"]["tables"]
    assert tables["fidelity.Country"]["added"] == 1 and tables["fidelity.City"]["added"] == 2


def test_a_person_comes_back_with_the_boss_it_needs_and_its_own_m2m_rows(nightly, run_command):
    bob = _rows(Person, name="Bob")
    ada = _rows(Person, name="Ada")
    Person.objects.filter(name="Bob").delete()  # Cy's boss is set to NULL, Bob's M2M row cascades
    Person.objects.filter(name="Ada").delete()
    member = Member.objects.get(name="reader")
    assert not member.people.exists()

    run_command("restore_backup", nightly, "--select", "fidelity.Person:name=Bob", "--noinput")

    assert _rows(Person, name="Bob") == bob  # its boss by primary key: Ada's, brought back
    assert _rows(Person, name="Ada") == ada  # needed by Bob; not selected, so without her M2M row
    assert list(member.people.values_list("name", flat=True)) == ["Bob"]
    assert Person.objects.get(name="Cy").boss is None  # a row the delete changed is not touched


def test_a_natural_key_found_nowhere_is_refused_and_nothing_written(world, run_command, tmp_path):
    cities_only = _dump(tmp_path / "cities.json", "fidelity.city")
    Country.objects.get(name="France").delete()
    runs = RestoreRun.objects.count()

    with pytest.raises(CommandError) as error:
        run_command("restore_backup", cities_only, "--select", "fidelity.City:name=Lyon", "--noinput")

    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert "fidelity.City" in message and "cities.json" in message
    assert "the fidelity.Country with natural key ['France'], which neither the database nor the backup" in message
    assert not City.objects.filter(name="Lyon").exists()
    assert RestoreRun.objects.count() in (runs, runs + 1)


def test_rows_without_a_primary_key_are_refused(world, run_command, tmp_path):
    backup = tmp_path / "natural-primary.json"
    call_command("dumpdata", "fidelity.person", "--natural-foreign", "--natural-primary", "--output", str(backup))
    Person.objects.filter(name="Cy").delete()

    with pytest.raises(CommandError, match="row 3: the row has no primary key .*--select restores rows by primary key"):
        run_command("restore_backup", backup, "--select", "fidelity.Person:name=Cy", "--noinput")
    assert not Person.objects.filter(name="Cy").exists()
