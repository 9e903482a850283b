"""The fixture corpus of the loaddata differential test (``tests/restore/test_loaddata_fidelity.py``).

Each fixture is a list of dumpdata objects over ``restoreproject.fidelity`` and django.contrib
models, written as JSON, JSON Lines (with blank lines) or compressed. Between them they cover
every built-in field type, the value spellings Django's ``to_python`` accepts, naive and aware
datetimes, multi-table inheritance on three levels, a proxy, an abstract base, natural keys
(forward references, a cycle, self references, natural primary keys), a GenericForeignKey with
its content type by natural key, M2M with and without a custom ``through`` (a symmetrical self
M2M too), a composite primary key, ``pk`` omitted, and auth/admin/sites/flatpages/redirects
fixtures. ``BAD`` fixtures are ones loaddata refuses: the restore must not store them silently.
"""

from __future__ import annotations

BIG = 2**70

ALL_FIELDS = {
    "char": "plain",
    "text": "multi\nline \u00e9\u4e2d",
    "slug": "a-slug",
    "email": "a@example.com",
    "url": "https://example.com/x",
    "path": "/tmp/x",
    "upload": "files/a.txt",
    "ip": "192.168.0.1",
    "flag": True,
    "maybe": None,
    "small": -32768,
    "integer": 2147483647,
    "big": -9223372036854775808,
    "positive": 0,
    "positive_small": 32767,
    "positive_big": 9223372036854775807,
    "ratio": 0.1,
    "amount": "12345678.90",
    "day": "2020-02-29",
    "moment": "23:59:59.999999",
    "when": "2021-03-04T05:06:07.123456",
    "span": "1 02:03:04.000005",
    "ident": "12345678-1234-5678-1234-567812345678",
    "blob": "AAEC/w==",
    "created": "2020-01-01T00:00:00",
    "note": "abstract base",
    "data": {"nested": [1, 2.5, "x", None, True], "big": BIG, "float": 1e100},
}


def _all(pk, **changes):
    return {"model": "fidelity.allfields", "pk": pk, "fields": {**ALL_FIELDS, **changes}}


FIXTURES: dict[str, tuple[str, list[dict]]] = {}

FIXTURES["all_fields_naive"] = (
    "json",
    [
        _all(1),
        _all(
            2,
            char="",
            text="",
            slug="",
            email="",
            url="",
            path="",
            ip=None,
            small=None,
            integer=None,
            big=None,
            positive=None,
            positive_small=None,
            positive_big=None,
            ratio=None,
            amount=None,
            day=None,
            moment=None,
            when=None,
            span=None,
            ident=None,
            blob=None,
            data=None,
            created=None,
        ),
        _all(3, data=1e100),
        _all(4, data=BIG),
        _all(5, data="a string"),
        _all(6, data=[1.5, -0.0, 1e-300]),
        _all(7, data=False, when="2021-12-31T23:30:00", day="2021-12-31"),
        _all(8, when="1970-01-01T00:00:00", ratio=-1e308, amount="-0.01"),
    ],
)

FIXTURES["spellings"] = (
    "json",
    [
        _all(10, day="2009-7-8", when="20200102T030405", moment="10:20"),
        _all(11, day="20090708", when="2020-01-02 03:04", moment="102030"),
        _all(12, day="2020-W01-1", when="2020-01-02", moment="10:20:30.5"),
        _all(13, when="2020-01-02T03:04:05.1", span="P1DT2H", amount=7, ratio=3, integer="12", small=" 13 ", big=14.0),
        _all(14, span="00:01:00", amount="1.5", ratio="1e3", flag="t", maybe="False", positive="1_000"),
        _all(
            15,
            span="-1 day, 0:00:01",
            flag="1",
            maybe="f",
            ident="{12345678-1234-5678-1234-567812345678}",
            ip="::ffff:10.0.0.1",
        ),
        _all(
            16,
            ident="urn:uuid:12345678-1234-5678-1234-567812345678",
            ip="2001:0db8:0000:0000:0000:0000:0000:0001",
            char=5,
            text=1.5,
            blob="AA EC",
            flag=0,
            maybe=1,
        ),
        _all(17, ip="", path=7, slug="x-y", integer=1.0, note=True),  # 1.9 was here: now in MANGLED
    ],
)

FIXTURES["aware_datetimes"] = (
    "json",
    [
        _all(20, when="2021-03-04T05:06:07+02:00", created="2021-03-04T05:06:07Z"),
        _all(21, when="2021-03-04T05:06:07.5-09:30", created="2021-03-04T23:59:59+05:30"),
    ],
)

FIXTURES["pk_omitted"] = (
    "json",
    [
        {"model": "fidelity.allfields", "fields": {**ALL_FIELDS, "char": "no pk"}},
        {"model": "fidelity.counter", "fields": {"hits": 3}},
    ],
)
FIXTURES["small_auto_field"] = (
    "json",
    [
        {"model": "fidelity.counter", "pk": 32767, "fields": {"hits": 9223372036854775807}},
        {"model": "fidelity.counter", "pk": -32768, "fields": {"hits": "0"}},
    ],
)

_NATURAL = [
    # A boss who comes later (forward reference) and one who is the row itself (self reference).
    {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": ["bob"]}},
    {"model": "fidelity.person", "pk": 2, "fields": {"name": "bob", "boss": ["bob"]}},
    {"model": "fidelity.person", "pk": 3, "fields": {"name": "cid", "boss": None}},
    # A cycle: the country's capital comes after it.
    {"model": "fidelity.country", "pk": 1, "fields": {"name": "France", "capital": ["Paris"]}},
    {"model": "fidelity.city", "pk": 1, "fields": {"name": "Paris", "country": ["France"]}},
    {"model": "fidelity.city", "pk": 2, "fields": {"name": "Lyon", "country": ["France"]}},
    # Natural primary keys: no pk.
    {"model": "fidelity.label", "fields": {"name": "cosy"}},
    {"model": "fidelity.label", "fields": {"name": "cheap"}},
    # Multi-table inheritance on three levels, and a proxy.
    {"model": "fidelity.place", "pk": 1, "fields": {"name": "a park", "labels": [["cosy"]]}},
    {"model": "fidelity.place", "pk": 2, "fields": {"name": "Chez Nous", "labels": [["cosy"], ["cheap"]]}},
    {"model": "fidelity.restaurant", "pk": 2, "fields": {"serves_pizza": False}},
    {"model": "fidelity.place", "pk": 3, "fields": {"name": "Luigi", "labels": []}},
    {"model": "fidelity.restaurant", "pk": 3, "fields": {"serves_pizza": True}},
    {"model": "fidelity.pizzeria", "pk": 3, "fields": {"oven": "wood"}},
    {"model": "fidelity.bigplace", "pk": 4, "fields": {"name": "a stadium", "labels": [["cheap"]]}},
    # A GenericForeignKey with its content type by natural key.
    {
        "model": "fidelity.taggeditem",
        "pk": 1,
        "fields": {"content_type": ["fidelity", "person"], "object_id": 1, "tag": "boss-less"},
    },
    {
        "model": "fidelity.taggeditem",
        "pk": 2,
        "fields": {"content_type": ["fidelity", "place"], "object_id": 3, "tag": "pizza"},
    },
]
FIXTURES["natural_keys"] = ("json", _NATURAL)
FIXTURES["natural_keys_jsonl_blank_lines"] = ("jsonl", _NATURAL)

FIXTURES["many_to_many"] = (
    "json",
    [
        {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": None}},
        {"model": "fidelity.club", "pk": 1, "fields": {"name": "chess"}},
        {"model": "fidelity.club", "pk": 2, "fields": {"name": "go"}},
        {"model": "fidelity.member", "pk": 1, "fields": {"name": "m1", "friends": [2, 3], "people": [["ann"]]}},
        {"model": "fidelity.member", "pk": 2, "fields": {"name": "m2", "friends": [1], "people": []}},
        {"model": "fidelity.member", "pk": 3, "fields": {"name": "m3", "friends": [1], "people": [["ann"]]}},
        {"model": "fidelity.membership", "pk": 1, "fields": {"club": 1, "member": 1, "role": "captain"}},
        {"model": "fidelity.membership", "pk": 2, "fields": {"club": 2, "member": 1, "role": "member"}},
        {
            "model": "fidelity.enrollment",
            "pk": [1, 2],
            "fields": {"club": 1, "member": 2, "since": "2020-1-2", "token": "12345678-1234-5678-1234-567812345678"},
        },
        {
            "model": "fidelity.enrollment",
            "pk": [2, 1],
            "fields": {"club": 2, "member": 1, "since": "2021-02-03", "token": "12345678123456781234567812345678"},
        },
    ],
)

FIXTURES["contrib"] = (
    "json",
    [
        {
            "model": "auth.group",
            "fields": {
                "name": "editors",
                "permissions": [["add_logentry", "admin", "logentry"], ["change_person", "fidelity", "person"]],
            },
        },
        {
            "model": "auth.user",
            "pk": 1,
            "fields": {
                "password": "!",
                "last_login": None,
                "is_superuser": True,
                "username": "admin",
                "first_name": "",
                "last_name": "",
                "email": "admin@example.com",
                "is_staff": True,
                "is_active": True,
                "date_joined": "2020-01-01T10:00:00",
                "groups": [["editors"]],
                "user_permissions": [["view_person", "fidelity", "person"]],
            },
        },
        {
            "model": "admin.logentry",
            "pk": 1,
            "fields": {
                "action_time": "2020-01-02T03:04:05",
                "user": ["admin"],
                "content_type": ["fidelity", "person"],
                "object_id": "1",
                "object_repr": "ann",
                "action_flag": 1,
                "change_message": "[]",
            },
        },
        {"model": "sites.site", "pk": 1, "fields": {"domain": "example.org", "name": "example"}},
        {"model": "sites.site", "pk": 2, "fields": {"domain": "other.example.org", "name": "other"}},
        {
            "model": "flatpages.flatpage",
            "pk": 1,
            "fields": {
                "url": "/about/",
                "title": "About",
                "content": "hi",
                "enable_comments": False,
                "template_name": "",
                "registration_required": False,
                "sites": [1, 2],
            },
        },
        {"model": "redirects.redirect", "pk": 1, "fields": {"site": 1, "old_path": "/old/", "new_path": "/new/"}},
    ],
)

for _suffix in ("gz", "bz2", "xz", "lzma"):
    FIXTURES[f"compressed_{_suffix}"] = (f"json.{_suffix}", FIXTURES["all_fields_naive"][1][:3])
FIXTURES["compressed_jsonl_xz"] = ("jsonl.xz", FIXTURES["natural_keys"][1])

#: Fixtures loaddata refuses (a row Django cannot take): the restore must fail or reject them.
BAD: dict[str, tuple[str, list[dict]]] = {
    "bad_date": ("json", [_all(30), _all(31, day="2020-13-01")]),
    "bad_boolean": ("json", [_all(32, flag="yes")]),
    "bad_integer": ("json", [_all(33, integer="1.5")]),
    "bad_uuid": ("json", [_all(34, ident="not-a-uuid")]),
    "missing_natural_key": (
        "json",
        [{"model": "fidelity.city", "pk": 9, "fields": {"name": "X", "country": ["Nowhere"]}}],
    ),
}
#: NUL in text: SQLite stores it (so do loaddata and the restore), PostgreSQL cannot.
FIXTURES["nul_in_text"] = ("json", [_all(40, text="a\x00b")])

# Objects without pk whose natural keys point forward or round a cycle (Django's own
# fixtures/forward_reference_fk_natural_key.json and circular_reference_natural_key.json, on
# these models): loaddata saves them with NULL there, then fills it in, finding each object
# again by its own natural key.
FIXTURES["natural_keys_no_pk_forward"] = (
    "json",
    [
        {"model": "fidelity.person", "fields": {"name": "t1", "boss": ["t2"]}},
        {"model": "fidelity.person", "fields": {"name": "t2", "boss": ["t1"]}},
    ],
)
FIXTURES["natural_keys_no_pk_cycle"] = (
    "jsonl",
    [
        {"model": "fidelity.country", "fields": {"name": "France", "capital": ["Paris"]}},
        {"model": "fidelity.city", "fields": {"name": "Paris", "country": ["France"]}},
    ],
)

_ADMIN = {
    "password": "!",
    "last_login": None,
    "is_superuser": False,
    "first_name": "",
    "last_name": "",
    "email": "",
    "is_staff": False,
    "is_active": True,
    "date_joined": "2020-01-01T10:00:00",
}


def _user(pk, username, groups, **fields):
    user = {
        "model": "auth.user",
        "fields": {**_ADMIN, "username": username, "groups": groups, "user_permissions": [], **fields},
    }
    return {**user, "pk": pk} if pk is not None else user


#: Fixtures restored onto a database that already holds rows, as real projects do: ``(kind,
#: seed, fixture)``; the seed is loaded first (by loaddata) on both sides. Rows outside the
#: fixture stay, rows it names by pk or natural key are updated in place, and each object's
#: M2M list becomes exactly the fixture's.
SEEDED: dict[str, tuple[str, list[dict], list[dict]]] = {
    # dumpdata auth.group alone: the users in those groups keep their memberships.
    "group_alone_keeps_memberships": (
        "json",
        [
            {"model": "auth.group", "pk": 1, "fields": {"name": "editors", "permissions": []}},
            {"model": "auth.group", "pk": 2, "fields": {"name": "viewers", "permissions": []}},
            _user(5, "ann", [1, 2]),
            _user(6, "bob", [1]),
        ],
        [
            {
                "model": "auth.group",
                "pk": 1,
                "fields": {
                    "name": "editors",
                    "permissions": [["add_logentry", "admin", "logentry"], ["change_person", "fidelity", "person"]],
                },
            },
        ],
    ),
    # dumpdata auth.group auth.user: the users it does not hold stay; each user's groups are set.
    "users_and_groups_keep_other_users": (
        "jsonl",
        [
            {"model": "auth.group", "pk": 1, "fields": {"name": "editors", "permissions": []}},
            {"model": "auth.group", "pk": 2, "fields": {"name": "viewers", "permissions": []}},
            _user(1, "admin", [2], email="old@example.com"),
            _user(5, "ann", [1, 2]),
        ],
        [
            {"model": "auth.group", "pk": 1, "fields": {"name": "editors", "permissions": []}},
            _user(1, "admin", [1], is_superuser=True),
        ],
    ),
    # --natural-foreign --natural-primary: rows that migrations or signals made under the same
    # natural key are found and updated, never inserted again under a new pk.
    "natural_primary_matches_existing_rows": (
        "json",
        [
            {"model": "fidelity.label", "pk": 7, "fields": {"name": "cosy"}},
            {"model": "fidelity.label", "pk": 8, "fields": {"name": "kept"}},
            {"model": "fidelity.person", "pk": 4, "fields": {"name": "ann", "boss": None}},
            {"model": "auth.group", "pk": 3, "fields": {"name": "editors", "permissions": []}},
            _user(9, "admin", [3]),
        ],
        [
            {"model": "fidelity.label", "fields": {"name": "cosy"}},
            {"model": "fidelity.label", "fields": {"name": "new"}},
            {"model": "fidelity.person", "fields": {"name": "ann", "boss": ["bob"]}},
            {"model": "fidelity.person", "fields": {"name": "bob", "boss": None}},
            {"model": "fidelity.place", "pk": 1, "fields": {"name": "a park", "labels": [["cosy"], ["new"]]}},
            {
                "model": "auth.group",
                "fields": {"name": "editors", "permissions": [["view_person", "fidelity", "person"]]},
            },
            _user(None, "admin", [["editors"]], email="admin@example.com"),
        ],
    ),
    # Each object's M2M list set exactly (a symmetrical self M2M both ways); an object that does
    # not give the field keeps its list.
    "many_to_many_lists_set_exactly": (
        "json",
        [
            {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": None}},
            {"model": "fidelity.member", "pk": 1, "fields": {"name": "m1", "friends": [2, 3], "people": [1]}},
            {"model": "fidelity.member", "pk": 2, "fields": {"name": "m2", "friends": [1], "people": [1]}},
            {"model": "fidelity.member", "pk": 3, "fields": {"name": "m3", "friends": [1], "people": []}},
        ],
        [
            {"model": "fidelity.member", "pk": 1, "fields": {"name": "m1", "friends": [2], "people": []}},
            {"model": "fidelity.member", "pk": 3, "fields": {"name": "m3 renamed"}},
        ],
    ),
}

# Field classes that are not Django's (a CMS's JSON field, an encrypted-style text field): their
# own to_python and get_db_prep_save, on every write path.
FIXTURES["custom_field_classes"] = (
    "json",
    [
        {
            "model": "fidelity.document",
            "pk": 1,
            "fields": {"body": {"blocks": [{"type": "text", "value": "hi"}]}, "secret": "s3cret"},
        },
        {"model": "fidelity.document", "pk": 2, "fields": {"body": "[1, 2.5, null]", "secret": ""}},
        {"model": "fidelity.document", "pk": 3, "fields": {"body": None, "secret": "\u00e9t\u00e9"}},
    ],
)


#: Values loaddata stores changed, with no error (issue 26): Django's ``to_python`` calls ``str()``
#: and ``int()``, so a container is stored as its Python repr, a fraction is cut off, a foreign key
#: points at another row. The restore rejects exactly these objects, with the reason, and stores
#: the others as loaddata does.
MANGLED: dict[str, tuple[str, list[dict]]] = {
    "mangled_values": (
        "json",
        [
            _all(50),
            _all(51, char=["x"]),
            _all(52, text={"a": 1}),
            _all(53, note={}),
            _all(54, integer=1.5),
            _all(55, positive=2.5),
            _all(56, ratio=2**53 + 1),
            _all(57, amount=12345678.901),
            _all(58, ident=True),
            _all(59, big=1e15 + 0.5),
        ],
    ),
    "mangled_values_jsonl": ("jsonl", [_all(60), _all(61, email=["x"]), _all(62, small=-1.5), _all(63, amount=0.125)]),
    "mangled_foreign_key": (
        "json",
        [
            {"model": "fidelity.person", "pk": 1, "fields": {"name": "ann", "boss": None}},
            {"model": "fidelity.person", "pk": 2, "fields": {"name": "bob", "boss": 1.5}},
        ],
    ),
}
