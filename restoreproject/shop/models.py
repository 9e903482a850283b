"""A small shop whose models cover every kind of column a restore has to handle."""

import uuid

from django.db import models


class Category(models.Model):
    """Self-referential tree (nullable self FK)."""

    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200)
    external_id = models.UUIDField(default=uuid.uuid4, unique=True)
    joined_at = models.DateTimeField()
    birth_date = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    referred_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="referrals")
    avatar = models.BinaryField(null=True, blank=True)
    # With Order.customer this makes an FK cycle between two tables, as real schemas have.
    last_order = models.ForeignKey("Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return self.email


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    attributes = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")
    released_on = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.sku


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    number = models.UUIDField(default=uuid.uuid4, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    placed_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    gift_for = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="gifts")

    def __str__(self) -> str:
        return str(self.number)


class OrderItem(models.Model):
    """The big table: 7 columns, two FKs, a decimal and a datetime."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_items")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    added_at = models.DateTimeField()
    is_gift = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.order_id}/{self.product_id}"
