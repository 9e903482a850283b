"""Mapping backup tables to models and ordering them from the FK graph."""

from __future__ import annotations

import pytest

from dbrestore.exceptions import UnknownTableError
from dbrestore.plan.build import ModelIndex, order_parents_first
from restoreproject.shop.models import Category, Customer, Order, OrderItem, Product, Tag


@pytest.mark.parametrize(
    "name",
    [
        "shop.OrderItem",
        "shop.orderitem",
        "shop_orderitem",
        "SHOP_ORDERITEM",
        "OrderItem",
        "order_item",
        "orderItems",
        "order-items",
        "orderitems",
    ],
)
def test_table_names_map_to_models(name):
    assert ModelIndex().lookup(name) is OrderItem


def test_plural_and_auto_created_through_table():
    index = ModelIndex()
    assert index.lookup("customers") is Customer
    assert index.lookup("categories") is Category
    assert index.lookup("shop_categories") is Category
    assert index.lookup("shop_product_tags") is Product.tags.through


def test_unknown_and_ambiguous_names():
    index = ModelIndex()
    assert index.lookup("no_such_thing") is None
    with pytest.raises(UnknownTableError, match="ambiguous"):
        ModelIndex(
            [
                Tag,
                type(
                    "Tag",
                    (Tag,),
                    {"__module__": __name__, "Meta": type("Meta", (), {"app_label": "other", "proxy": True})},
                ),
            ]
        ).lookup("tag")


def test_parents_first_whatever_the_input_order():
    ordered, cycles = order_parents_first([OrderItem, Order, Product, Customer, Category, Tag])
    position = {model: i for i, model in enumerate(ordered)}
    assert position[Customer] < position[Order] < position[OrderItem]
    assert position[Category] < position[Product] < position[OrderItem]
    # Customer.last_order <-> Order.customer is a cycle, broken at the nullable side; self
    # references (Category.parent, Customer.referred_by) are not cycles.
    assert cycles == [["shop.Customer", "shop.Order"]]
