"""Indicative prices shipped with the kit, for when the Azure Retail Prices API cannot be reached.

USD, Linux, list prices (no discounts), as Azure's Retail Prices API and pricing pages gave them on
DATE (DESIGN.md section 8). Prices change: a price from here is always shown with this date.
"""

DATE = "2026-12-01"

# region -> size -> (pay-as-you-go $/hour, spot $/hour or None when no figure was taken)
# Spot prices move daily; the figure is the top of the range seen (DESIGN.md 8), so that the estimate
# errs high.
COMPUTE: dict[str, dict[str, tuple[float, float | None]]] = {
    "eastus": {
        "Standard_NC4as_T4_v3": (0.526, 0.15),
        "Standard_NC8as_T4_v3": (0.752, None),
        "Standard_NC16as_T4_v3": (1.204, None),
        "Standard_NC64as_T4_v3": (4.352, None),
        "Standard_NC24ads_A100_v4": (3.673, 0.68),
        "Standard_NC48ads_A100_v4": (7.346, None),
        "Standard_NC96ads_A100_v4": (14.692, None),
        "Standard_NC40ads_H100_v5": (6.98, None),
        "Standard_NC80adis_H100_v5": (13.96, None),
    },
}

# region -> Standard SSD LRS managed disk tier -> $/month (a disk bills by its tier, whatever it holds).
DISK: dict[str, dict[str, float]] = {
    "eastus": {
        "E1": 0.30,
        "E2": 0.60,
        "E3": 1.20,
        "E4": 2.40,
        "E6": 4.80,
        "E10": 9.60,
        "E15": 19.20,
        "E20": 38.40,
        "E30": 76.80,
        "E40": 153.60,
        "E50": 307.20,
    },
}
