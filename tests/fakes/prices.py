"""A fake Azure Retail Prices API on loopback: the rows Azure returns for GPU sizes and Standard SSD disks.

Shape of a response (https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices):
`{"BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items": [...], "NextPageLink", "Count"}`;
`$filter` is `field eq 'value'` terms joined by `and`, values case-sensitive; pages follow NextPageLink.
"""

import json
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.serving import serve, stop

PATH = "/api/retail/prices"
TERM = re.compile(r"^(\w+) eq '([^']*)'$")
FIELDS = {"priceType": "type"}  # the filter's name for a row's field, where the two differ


def vm_row(region: str, size: str, product: str, sku: str, meter: str, price: float) -> dict:
    return {
        "currencyCode": "USD",
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": "US East",
        "effectiveStartDate": "2025-06-01T00:00:00Z",
        "meterName": meter,
        "productName": product,
        "skuName": sku,
        "serviceName": "Virtual Machines",
        "serviceFamily": "Compute",
        "unitOfMeasure": "1 Hour",
        "type": "Consumption",
        "isPrimaryMeterRegion": True,
        "armSkuName": size,
    }


def disk_row(region: str, tier: str, meter: str, unit: str, price: float) -> dict:
    return {
        "currencyCode": "USD",
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": "US East",
        "effectiveStartDate": "2020-07-01T00:00:00Z",
        "meterName": meter,
        "productName": "Standard SSD Managed Disks",
        "skuName": f"{tier} LRS",
        "serviceName": "Storage",
        "serviceFamily": "Storage",
        "unitOfMeasure": unit,
        "type": "Consumption",
        "isPrimaryMeterRegion": True,
        "armSkuName": "",
    }


T4, H100 = "Standard_NC4as_T4_v3", "Standard_NC40ads_H100_v5"
# Prices chosen apart from the shipped table's, so that a test can tell which source answered. Each Linux row comes
# before the rows it must beat (Windows, Low Priority, the disk's operations meter); tests serve them reversed too,
# so that a filter the client lacks shows in one order or the other.
ROWS = [
    vm_row("eastus", T4, "Virtual Machines NCasT4_v3 Series", "NC4as T4 v3", "NC4as T4 v3", 0.5),
    vm_row("eastus", T4, "Virtual Machines NCasT4_v3 Series Windows", "NC4as T4 v3", "NC4as T4 v3", 0.71),
    vm_row(
        "eastus", T4, "Virtual Machines NCasT4_v3 Series", "NC4as T4 v3 Low Priority", "NC4as T4 v3 Low Priority", 0.05
    ),
    vm_row("eastus", T4, "Virtual Machines NCasT4_v3 Series", "NC4as T4 v3 Spot", "NC4as T4 v3 Spot", 0.0789),
    vm_row("eastus", T4, "Virtual Machines NCasT4_v3 Series Windows", "NC4as T4 v3 Spot", "NC4as T4 v3 Spot", 0.2),
    vm_row("eastus", H100, "Virtual Machines NCadsH100v5 Series", "NC40ads H100 v5", "NC40ads H100 v5", 6.9),
    vm_row("eastus", H100, "Virtual Machines NCadsH100v5 Series Win", "NC40ads H100 v5", "NC40ads H100 v5", 9.9),
    disk_row("eastus", "E15", "E15 LRS Disk", "1/Month", 18.5),
    disk_row("eastus", "E15", "E15 LRS Disk Operations", "10K", 0.002),
]


class FakePrices:
    """Serves ROWS `page_size` at a time; `fail(n)` answers the next n requests with a 500."""

    def __init__(self, rows: list[dict] | None = None, page_size: int = 2):
        self.rows = list(ROWS if rows is None else rows)
        self.page_size = page_size
        self.requests: list[str] = []
        self._failures = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def fail(self, times: int) -> None:
        self._failures = times

    def __enter__(self) -> "FakePrices":
        serve(self._server)
        return self

    def __exit__(self, *exc) -> None:
        stop(self._server)

    def answer(self, path: str) -> tuple[int, dict]:
        self.requests.append(path)
        url = urllib.parse.urlsplit(path)
        if url.path != PATH:
            return 404, {"Error": {"Code": "NotFound", "Message": "Not found"}}
        if self._failures:
            self._failures -= 1
            return 500, {"Error": {"Code": "InternalServerError", "Message": "Internal server error"}}
        query = urllib.parse.parse_qs(url.query)
        terms = {}
        for term in query.get("$filter", [""])[0].split(" and "):
            match = TERM.match(term.strip())
            if not match:
                return 400, {"Error": {"Code": "BadRequest", "Message": f"Invalid OData filter: {term!r}"}}
            terms[FIELDS.get(match[1], match[1])] = match[2]
        found = [row for row in self.rows if all(row.get(field) == value for field, value in terms.items())]
        skip = int(query.get("$skip", ["0"])[0])
        page = found[skip : skip + self.page_size]
        more = skip + self.page_size < len(found)
        next_query = urllib.parse.urlencode({**{k: v[0] for k, v in query.items()}, "$skip": skip + self.page_size})
        return 200, {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": page,
            "NextPageLink": f"{self.url}?{next_query}" if more else None,
            "Count": len(page),
        }

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = fake.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler
