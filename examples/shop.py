"""Modal's web endpoints, served by the runner with a bearer token of their own.

    nbremote deploy examples/shop.py         # prints each endpoint's URL
    nbremote endpoints show shop/total       # its URL and token
    curl -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
         -d '{"price": 2.5, "quantity": 4}' $URL     # {"total":10.0}

`nbremote endpoints logs shop/total` shows the requests; `nbremote apps stop shop` ends them.
"""

from __future__ import annotations

from pydantic import BaseModel

import nbremote as modal

app = modal.App("shop")


@app.function()
@modal.fastapi_endpoint(method="POST")
def total(price: float, quantity: int = 1) -> dict:
    """A JSON body {"price": ..., "quantity": ...}, checked against the type hints (422 if not)."""
    return {"total": price * quantity}


@app.function()
@modal.fastapi_endpoint(label="shop-hello", requires_auth=False)
def hello(name: str = "world") -> dict:
    """GET ?name=...: public (no token), named by its label."""
    return {"hello": name}


class Order(BaseModel):
    item: str
    count: int


@app.function()
@modal.fastapi_endpoint(method="POST")
def order(order: Order) -> dict:
    """A JSON body that is an Order: {"item": "pen", "count": 2} (422 naming a bad field)."""
    return {"ordered": f"{order.count} x {order.item}"}
