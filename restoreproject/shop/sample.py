"""Deterministic sample data for the demo shop, as backup rows keyed by column.

The same ``rows`` and ``seed`` always give the same rows. About ``rows`` rows in all, spread over
every model; some self references point forward (a customer referred by a later one), as real
data does, so the restore cannot rely on file order.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import models

from .models import Category, Customer, Order, OrderItem, Product, Tag

BASE_TIME = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
WORDS = ["alpha", "brisk", "cobalt", "delta", "ember", "fjord", "gala", "hazel", "iris", "jade", "koi", "lumen"]
STATUSES = [choice.value for choice in Order.Status]


@dataclass
class SampleSizes:
    categories: int
    tags: int
    customers: int
    products: int
    orders: int
    order_items: int

    @classmethod
    def for_rows(cls, rows: int) -> SampleSizes:
        rows = max(rows, 20)
        categories = max(3, rows // 500)
        tags = max(3, rows // 500)
        customers = max(3, rows // 10)
        products = max(3, rows // 25)
        orders = max(3, rows // 5)
        links = products * 2
        items = max(3, rows - categories - tags - customers - products - orders - links)
        return cls(categories, tags, customers, products, orders, items)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _cents(rng: random.Random, low: int, high: int) -> str:
    return str(Decimal(rng.randint(low, high)) / 100)


def categories(n: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        # A few categories point at a later parent: self references in no particular order.
        parent = None if i <= 2 else (i + 1 if i % 7 == 0 and i < n else rng.randint(1, i - 1))
        yield {"id": i, "name": f"Category {i}", "parent_id": parent}


def tags(n: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {"id": i, "name": f"{WORDS[i % len(WORDS)]}-{i}"}


def customers(n: int, n_orders: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        joined = BASE_TIME + datetime.timedelta(
            seconds=rng.randint(0, 3 * 365 * 86400), microseconds=rng.randint(0, 999999)
        )
        birth = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 20000)) if i % 4 else None
        referred = rng.randint(1, n) if i % 3 == 0 and n > 1 else None
        if referred == i:
            referred = None
        avatar = rng.randbytes(16) if i % 5 == 0 else None
        yield {
            "id": i,
            "email": f"customer{i}@example.com",
            "name": f"{WORDS[i % len(WORDS)].title()} Müller-{i}",
            "external_id": _uuid(rng),
            "joined_at": joined,
            "birth_date": birth,
            "is_active": i % 11 != 0,
            "notes": "" if i % 2 else f"Likes {WORDS[(i * 7) % len(WORDS)]} ☕\nline two",
            "referred_by_id": referred,
            "avatar": avatar,
            "last_order_id": rng.randint(1, n_orders) if i % 2 == 0 else None,
        }


def products(n: int, n_categories: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {
            "id": i,
            "sku": f"SKU-{i:08d}",
            "name": f"{WORDS[i % len(WORDS)].title()} widget {i}",
            "price": _cents(rng, 100, 99999),
            "category_id": rng.randint(1, n_categories),
            "attributes": {
                "color": WORDS[i % len(WORDS)],
                "sizes": [rng.randint(1, 5) for _ in range(i % 3)],
                "weight": i % 17 / 4,
            },
            "released_on": (datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 1500)) if i % 6 else None,
        }


def product_tags(n_products: int, n_tags: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    pk = 0
    for product in range(1, n_products + 1):
        for tag in sorted(rng.sample(range(1, n_tags + 1), min(2, n_tags))):
            pk += 1
            yield {"id": pk, "product_id": product, "tag_id": tag}


def orders(n: int, n_customers: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {
            "id": i,
            "number": _uuid(rng),
            "customer_id": rng.randint(1, n_customers),
            "placed_at": BASE_TIME + datetime.timedelta(minutes=i, seconds=rng.randint(0, 59)),
            "status": STATUSES[i % len(STATUSES)],
            "total": _cents(rng, 100, 999999),
            "gift_for_id": rng.randint(1, n_customers) if i % 13 == 0 else None,
        }


def order_items(n: int, n_orders: int, n_products: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {
            "id": i,
            "order_id": (i - 1) % n_orders + 1,
            "product_id": rng.randint(1, n_products),
            "quantity": rng.randint(1, 9),
            "unit_price": _cents(rng, 100, 99999),
            "added_at": BASE_TIME + datetime.timedelta(seconds=i * 7),
            "is_gift": i % 19 == 0,
        }


def sample_tables(rows: int, seed: int = 42) -> Iterator[tuple[type[models.Model], Iterator[dict[str, Any]]]]:
    """``(model, rows)`` pairs, parents first; each table gets its own seeded generator."""
    sizes = SampleSizes.for_rows(rows)

    def rng(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    yield Category, categories(sizes.categories, rng("category"))
    yield Tag, tags(sizes.tags, rng("tag"))
    yield Customer, customers(sizes.customers, sizes.orders, rng("customer"))
    yield Product, products(sizes.products, sizes.categories, rng("product"))
    yield Product.tags.through, product_tags(sizes.products, sizes.tags, rng("product_tags"))
    yield Order, orders(sizes.orders, sizes.customers, rng("order"))
    yield OrderItem, order_items(sizes.order_items, sizes.orders, sizes.products, rng("order_item"))
