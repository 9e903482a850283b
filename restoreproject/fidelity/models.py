"""Models covering what Django's serializers can express: every built-in field type, abstract
bases, multi-table inheritance over several levels, proxies, natural keys (forward references,
cycles, self references, natural primary keys), a GenericForeignKey, M2M with and without a
custom ``through``, and a composite primary key. ``tests/restore/test_loaddata_fidelity.py`` loads
fixtures of them through ``loaddata`` and ``restore_backup`` and compares the results."""

import json
import uuid

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class NaturalManager(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class Stamped(models.Model):
    """An abstract base: its fields are the child's own."""

    created = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        abstract = True


class AllFields(Stamped):
    id = models.BigAutoField(primary_key=True)
    char = models.CharField(max_length=50, blank=True)
    text = models.TextField(blank=True)
    slug = models.SlugField(blank=True)
    email = models.EmailField(blank=True)
    url = models.URLField(blank=True)
    path = models.FilePathField(path="/tmp", blank=True)
    upload = models.FileField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    small = models.SmallIntegerField(null=True)
    integer = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    positive_small = models.PositiveSmallIntegerField(null=True)
    positive_big = models.PositiveBigIntegerField(null=True)
    ratio = models.FloatField(null=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    day = models.DateField(null=True)
    moment = models.TimeField(null=True)
    when = models.DateTimeField(null=True)
    span = models.DurationField(null=True)
    ident = models.UUIDField(null=True)
    blob = models.BinaryField(null=True)
    data = models.JSONField(null=True)


class Counter(models.Model):
    id = models.SmallAutoField(primary_key=True)
    hits = models.PositiveBigIntegerField(default=0)


class Person(models.Model):
    """Natural key, self reference (a boss may come later in the fixture)."""

    name = models.CharField(max_length=50, unique=True)
    boss = models.ForeignKey("self", null=True, on_delete=models.SET_NULL, related_name="reports")

    objects = NaturalManager()

    def natural_key(self):
        return (self.name,)


class Country(models.Model):
    """A natural-key cycle with City: a country's capital is a city of it."""

    name = models.CharField(max_length=50, unique=True)
    capital = models.ForeignKey("City", null=True, on_delete=models.SET_NULL, related_name="+")

    objects = NaturalManager()

    def natural_key(self):
        return (self.name,)


class City(models.Model):
    name = models.CharField(max_length=50, unique=True)
    country = models.ForeignKey(Country, on_delete=models.CASCADE)

    objects = NaturalManager()

    def natural_key(self):
        return (self.name,)


class Label(models.Model):
    """Dumped with --natural-primary: no pk in the fixture."""

    name = models.CharField(max_length=50, unique=True)

    objects = NaturalManager()

    def natural_key(self):
        return (self.name,)


class Place(models.Model):
    name = models.CharField(max_length=50)
    labels = models.ManyToManyField(Label, blank=True)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class Pizzeria(Restaurant):
    oven = models.CharField(max_length=20, blank=True)


class BigPlace(Place):
    class Meta:
        proxy = True


class TaggedItem(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    tag = models.CharField(max_length=30)


class Club(models.Model):
    name = models.CharField(max_length=50)
    members: "models.ManyToManyField[Member, Membership]" = models.ManyToManyField(
        "Member", through="Membership", related_name="clubs"
    )


class Member(models.Model):
    name = models.CharField(max_length=50)
    friends = models.ManyToManyField("self", blank=True)
    people = models.ManyToManyField(Person, blank=True)


class Membership(models.Model):
    club = models.ForeignKey(Club, on_delete=models.CASCADE)
    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="member")


class Enrollment(models.Model):
    """A composite primary key (Django 5.2)."""

    pk = models.CompositePrimaryKey("club", "member")
    club = models.ForeignKey(Club, on_delete=models.CASCADE)
    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    since = models.DateField()
    token = models.UUIDField(default=uuid.uuid4)


class TextJSONField(models.Field):
    """A JSON field as third-party apps write them (a CMS's stream field): not
    ``models.JSONField``, no ``encoder``, JSON text in and out through methods of its own."""

    def get_internal_type(self):
        return "JSONField"

    def db_type(self, connection):
        return "jsonb" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value, expression, connection):
        return json.loads(value) if isinstance(value, str) else value

    def to_python(self, value):
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True)

    def value_to_string(self, obj):
        return self.value_from_object(obj)


class ReversedTextField(models.TextField):
    """Stored reversed, read back the right way round: the shape of an encrypted field (its own
    ``get_prep_value`` and ``from_db_value``)."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value[::-1] if value else value

    def from_db_value(self, value, expression, connection):
        return value[::-1] if value else value


class Document(models.Model):
    """Fields of classes that are not Django's, restored through their own methods."""

    body = TextJSONField(null=True)
    secret = ReversedTextField(blank=True, default="")
