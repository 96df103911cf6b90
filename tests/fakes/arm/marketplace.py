"""Microsoft.MarketplaceOrdering: a subscription's acceptance of a marketplace image's terms.

Shapes follow GetMarketplaceTerms.json and SetMarketplaceTerms.json (api-version 2021-01-01):
GET and PUT `.../offerTypes/virtualmachine/publishers/{p}/offers/{o}/plans/{plan}/agreements/current`.
Terms start unaccepted; a PUT with `properties.accepted` true accepts them for this subscription
(as `az vm image terms accept` does: azure-cli's accept_market_ordering_terms gets, then creates).
"""

from __future__ import annotations

from .errors import InvalidRequestContent
from .models import ArmState, utc_now


class MarketplaceModel:
    def __init__(self, state: ArmState):
        self.state = state
        self.accepted: set[tuple[str, str, str]] = set()  # (publisher, offer, plan), lower case

    @staticmethod
    def _key(publisher: str, offer: str, plan: str) -> tuple[str, str, str]:
        return publisher.lower(), offer.lower(), plan.lower()

    def is_accepted(self, publisher: str, offer: str, plan: str) -> bool:
        with self.state.lock:
            return self._key(publisher, offer, plan) in self.accepted

    def get_terms(self, publisher: str, offer: str, plan: str) -> dict:
        with self.state.lock:
            accepted = self._key(publisher, offer, plan) in self.accepted
        return self._body(publisher, offer, plan, accepted)

    def put_terms(self, publisher: str, offer: str, plan: str, body: dict) -> dict:
        accepted = (body.get("properties") or {}).get("accepted")
        if not isinstance(accepted, bool):
            raise InvalidRequestContent("The request content is invalid: properties.accepted must be a boolean.")
        with self.state.lock:
            key = self._key(publisher, offer, plan)
            if accepted:
                self.accepted.add(key)
            else:
                self.accepted.discard(key)
        return self._body(publisher, offer, plan, accepted)

    def _body(self, publisher: str, offer: str, plan: str, accepted: bool) -> dict:
        path = (
            f"/subscriptions/{self.state.subscription_id}/providers/Microsoft.MarketplaceOrdering/offerTypes/"
            f"VirtualMachine/publishers/{publisher}/offers/{offer}/plans/{plan}/agreements/current"
        )
        terms = f"https://mpcprodsa.blob.core.windows.net/legalterms/3E5ED_legalterms_{publisher}_{offer}_{plan}.txt"
        return {
            "id": path,
            "name": plan,
            "type": "Microsoft.MarketplaceOrdering/offertypes",
            "properties": {
                "publisher": publisher,
                "product": offer,
                "plan": plan,
                "licenseTextLink": terms,
                "privacyPolicyLink": "https://www.microsoft.com/privacy",
                "marketplaceTermsLink": "https://mpcprodsa.blob.core.windows.net/marketplaceterms/3EDEF_marketplaceterms.txt",
                "retrieveDatetime": utc_now(),
                "signature": "FAKESIGNATURE" + plan.upper(),
                "accepted": accepted,
            },
        }
